//! Services that verify keygate tokens themselves: the index endpoint and the LMv1
//! check as a follower sees them, and the example service (keygate-tower in remote
//! mode) in front of a real keygate server — revocation, keygate going away past the
//! max staleness, and coming back.

use std::net::SocketAddr;
use std::time::Duration;

use keygate_auth::feed::{self, Frame};
use keygate_core::clock::Clock;
use keygate_tower::{Gate, RemoteConfig};
use reqwest::StatusCode;
use serde_json::json;

use super::support::*;

/// A user holding only the verifier role (plus DataIngestion, which a bearer token's
/// owner needs) and a bearer token for it.
async fn service_account(s: &Server) -> String {
    let id = s.user("svc", &[VERIFIER, DATAINGESTION]).await;
    s.token_for(id, "the service's index token").await.1
}

async fn index(s: &Server, token: &str, query: &str) -> (StatusCode, Vec<u8>, String) {
    let r = s
        .client
        .get(format!("{}{query}", s.url("/keygate/index")))
        .bearer_auth(token)
        .send()
        .await
        .expect("index request");
    let status = r.status();
    let kind = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, r.bytes().await.expect("body").to_vec(), kind)
}

#[tokio::test]
async fn the_index_needs_its_privilege_and_carries_digests_never_secrets() {
    let Some(s) = Server::start().await else {
        return;
    };
    let svc = service_account(&s).await;
    let alice = s.user("alice", &[DATAINGESTION]).await;
    let (_, secret) = s.token_for(alice, "alice's").await;
    let (_, access_id, key) = s.lmv1_for(alice, "alice's lmv1").await;

    // Without the privilege: 403 naming it, and no frame.
    let (status, body, _) = index(&s, &secret, "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        String::from_utf8_lossy(&body).contains("setting tokenindex read"),
        "{}",
        String::from_utf8_lossy(&body)
    );

    let (status, body, kind) = index(&s, &svc, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(kind, feed::MEDIA_TYPE);
    let Frame::Snapshot(snap) = feed::decode(&body).expect("a snapshot frame") else {
        panic!("not a snapshot")
    };
    let digest = keygate_core::token::BearerToken::parse(&secret)
        .unwrap()
        .digest();
    assert!(
        snap.tokens
            .iter()
            .any(|t| t.digest == digest && t.user_id == alice)
    );
    assert!(snap.users.iter().any(|u| u.username == "alice"));
    // Neither a bearer secret nor an LMv1 key or access id is on the wire.
    for secret in [secret.as_bytes(), key.as_bytes(), access_id.as_bytes()] {
        assert!(
            !body.windows(secret.len()).any(|w| w == secret),
            "a secret is in the index frame"
        );
    }

    // Changes after the snapshot's position: a disable arrives as the token's new state.
    let position = snap.seq;
    let (id, _) = s.token_for(alice, "another").await;
    s.patch(
        &s.admin_token,
        &format!("/setting/admins/{alice}/apitokens/{id}"),
        json!({"status": 1}),
    )
    .await;
    let (status, body, _) = index(&s, &svc, &format!("?after={position}&waitMillis=2000")).await;
    assert_eq!(status, StatusCode::OK);
    let Frame::Changes(next, updates) = feed::decode(&body).unwrap() else {
        panic!("not changes")
    };
    assert!(next > position);
    let last = updates
        .iter()
        .rev()
        .find_map(|u| match u {
            feed::Update::Bearer(k) if k.id == id => Some(k.enabled),
            _ => None,
        })
        .expect("the new token's state");
    assert!(!last, "the token arrives disabled");

    // Nothing after the latest position: an empty frame once the wait is over.
    let (_, body, _) = index(&s, &svc, &format!("?after={next}&waitMillis=50")).await;
    let Frame::Changes(same, none) = feed::decode(&body).unwrap() else {
        panic!("not changes")
    };
    assert_eq!((same, none.len()), (next, 0));

    // A position the change log never reached (a restored backup): a fresh snapshot.
    let (_, body, _) = index(&s, &svc, "?after=999999999").await;
    assert!(matches!(feed::decode(&body), Ok(Frame::Snapshot(_))));

    // Bad input: a clear 400.
    for q in ["?after=x", "?after=-1", "?after=1&waitMillis=soon"] {
        let (status, body, _) = index(&s, &svc, q).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}");
        assert!(String::from_utf8_lossy(&body).contains("must be a non-negative integer"));
    }
}

#[tokio::test]
async fn a_long_poll_answers_as_soon_as_something_changes() {
    let Some(s) = Server::start().await else {
        return;
    };
    let svc = service_account(&s).await;
    let (_, body, _) = index(&s, &svc, "").await;
    let Ok(Frame::Snapshot(snap)) = feed::decode(&body) else {
        panic!("no snapshot")
    };
    let query = format!("?after={}&waitMillis=15000", snap.seq);
    let poll = index(&s, &svc, &query);
    let change = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        s.user("bob", &[READONLY]).await
    };
    let started = tokio::time::Instant::now();
    let ((_, body, _), bob) = tokio::join!(poll, change);
    // Answered by the change, long before the 15 s wait was over.
    assert!(started.elapsed() < Duration::from_secs(10));
    let Ok(Frame::Changes(_, updates)) = feed::decode(&body) else {
        panic!("no changes")
    };
    assert!(
        updates
            .iter()
            .any(|u| matches!(u, feed::Update::User(k) if k.id == bob && k.username == "bob")),
        "{updates:?}"
    );
}

/// The example service, in this process, in front of keygate at `keygate`.
async fn service(keygate: SocketAddr, token: &str, clock: Clock) -> (SocketAddr, Gate) {
    let mut config = RemoteConfig::new(format!("http://{keygate}"), token);
    config.max_staleness = Duration::from_secs(30);
    config.clock = clock;
    let gate = Gate::remote(config)
        .await
        .expect("the service follows keygate");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app =
        protected_service::app(gate.clone()).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, gate)
}

async fn whoami(c: &reqwest::Client, at: SocketAddr, token: &str) -> Resp {
    send(
        c.get(format!("http://{at}/whoami"))
            .bearer_auth(token)
            .timeout(Duration::from_secs(5)),
    )
    .await
}

#[tokio::test]
async fn the_example_service_follows_revocation_fails_closed_and_recovers() {
    let Some(s) = Server::start().await else {
        return;
    };
    let svc = service_account(&s).await;
    let alice = s.user("alice", &[DATAINGESTION]).await;
    let (id, secret) = s.token_for(alice, "alice's").await;
    let (_, other) = s.token_for(alice, "alice's other").await;
    let clock = Clock::fixed(now_millis());
    let (at, _gate) = service(s.addr, &svc, clock.clone()).await;
    let c = reqwest::Client::new();

    // A token works, with its owner's privileges as of now.
    let r = whoami(&c, at, &secret).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["username"], "alice");
    assert_eq!(r.body["tokenId"], id);
    assert_eq!(r.body["tokenType"], "bearer");
    assert!(
        r.body["privileges"]
            .to_string()
            .contains("dataingestion * write")
    );
    // No token, or a made-up one: 401 with keygate's reason.
    let r = send(c.get(format!("http://{at}/whoami"))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.message().contains("no credentials"), "{}", r.text);
    assert!(r.headers.contains_key("www-authenticate"));

    // Disabled on keygate → refused by the service (propagation is measured in
    // docs/benchmarks.md; here only that it arrives).
    s.patch(
        &s.admin_token,
        &format!("/setting/admins/{alice}/apitokens/{id}"),
        json!({"status": 1}),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            whoami(&c, at, &secret).await.status == StatusCode::UNAUTHORIZED
        })
        .await,
        "the disable never reached the service"
    );
    let r = whoami(&c, at, &secret).await;
    assert!(r.message().contains("disabled"), "{}", r.text);

    // DataIngestion taken away on keygate → the service's /ingest (which requires it)
    // refuses with 403.
    let ok = send(
        c.post(format!("http://{at}/ingest"))
            .bearer_auth(&other)
            .body("x"),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    s.patch(
        &s.admin_token,
        &format!("/setting/admins/{alice}"),
        json!({"roles": [{"id": READONLY}]}),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            send(
                c.post(format!("http://{at}/ingest"))
                    .bearer_auth(&other)
                    .body("x"),
            )
            .await
            .status
                == StatusCode::FORBIDDEN
        })
        .await
    );
    s.patch(
        &s.admin_token,
        &format!("/setting/admins/{alice}"),
        json!({"roles": [{"id": DATAINGESTION}]}),
    )
    .await;

    // keygate stopped: known tokens keep working from memory...
    let mut s = s;
    s.stop().await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            whoami(&c, at, &other).await.status == StatusCode::OK
        })
        .await
    );
    clock.advance(20_000);
    let r = whoami(&c, at, &other).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "inside the max staleness: {}",
        r.text
    );
    // ...until the max staleness passes: then 503, saying why.
    assert!(
        eventually(Duration::from_secs(10), || async {
            clock.advance(31_000);
            whoami(&c, at, &other).await.status == StatusCode::SERVICE_UNAVAILABLE
        })
        .await
    );
    let r = whoami(&c, at, &other).await;
    assert!(
        r.message().contains("keygate server is unreachable"),
        "{}",
        r.text
    );
    assert!(r.headers.contains_key("retry-after"));

    // keygate back on the same address → the service recovers by itself, and what
    // changed meanwhile is applied.
    let _keygate = s.relaunch().await;
    assert!(
        eventually(Duration::from_secs(15), || async {
            whoami(&c, at, &other).await.status == StatusCode::OK
        })
        .await,
        "the service did not recover"
    );
    assert_eq!(
        whoami(&c, at, &secret).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn lmv1_requests_to_the_service_are_checked_by_keygate() {
    let Some(s) = Server::start().await else {
        return;
    };
    let svc = service_account(&s).await;
    let alice = s.user("alice", &[DATAINGESTION]).await;
    let (_, access_id, key) = s.lmv1_for(alice, "alice's lmv1").await;
    let (at, _gate) = service(s.addr, &svc, Clock::System).await;
    let c = reqwest::Client::new();
    let signed = |method: &str, path: &str, body: &str, key: &str| {
        let k = keygate_core::lmv1::AccessKey::from_secret(key.to_owned());
        let t = now_millis();
        let sig = keygate_core::lmv1::sign(&k, method, t, body.as_bytes(), path);
        format!("LMv1 {access_id}:{sig}:{t}")
    };
    let r = send(
        c.post(format!("http://{at}/ingest"))
            .header("authorization", signed("POST", "/ingest", "payload", &key))
            .body("payload"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, json!({"accepted": 7, "by": "alice"}));
    // Signed over another body: keygate's own refusal, passed on.
    let r = send(
        c.post(format!("http://{at}/ingest"))
            .header("authorization", signed("POST", "/ingest", "other", &key))
            .body("payload"),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.message().contains("signature does not match"),
        "{}",
        r.text
    );
    // The service's own token without the privilege cannot ask.
    let r = s
        .client
        .post(s.url("/keygate/lmv1/check"))
        .bearer_auth(s.token_for(alice, "no privilege").await.1)
        .header(
            "x-keygate-authorization",
            signed("GET", "/whoami", "", &key),
        )
        .header("x-keygate-method", "GET")
        .header("x-keygate-path", "/whoami")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // A check request missing what it checks: 400 naming the header.
    let r = send(
        s.client
            .post(s.url("/keygate/lmv1/check"))
            .bearer_auth(&svc)
            .header("x-keygate-method", "GET"),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.message().contains("X-Keygate-Authorization"),
        "{}",
        r.text
    );
}
