//! Forward-auth endpoints, each in its proxy's convention, asked directly as the proxy
//! would: identity headers on 200; 401 with `WWW-Authenticate` and the reason in a
//! header; revocation at once; `?require=`; LMv1 with and without the body; throttling.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::support::*;

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

async fn ask(
    s: &Server,
    method: Method,
    endpoint: &str,
    headers: &[(&str, String)],
    body: Option<&str>,
) -> Answer {
    let mut rb = s
        .client
        .request(method, format!("http://{}{endpoint}", s.addr));
    for (k, v) in headers {
        rb = rb.header(*k, v);
    }
    if let Some(b) = body {
        rb = rb.body(b.to_owned());
    }
    let r = rb.send().await.expect("forward-auth request");
    Answer {
        status: r.status(),
        headers: r.headers().clone(),
    }
}

fn bearer(t: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {t}"))
}

#[tokio::test]
async fn each_proxy_convention_allows_a_token_and_names_its_owner() {
    let Some(s) = Server::start().await else {
        return;
    };
    let user = s.user("svc", &[DATAINGESTION]).await;
    let (tid, token) = s.token_for(user, "proxy").await;
    let nginx = [
        bearer(&token),
        ("X-Original-Method", "POST".to_owned()),
        ("X-Original-URI", "/orders?page=2".to_owned()),
    ];
    let traefik = [
        bearer(&token),
        ("X-Forwarded-Method", "DELETE".to_owned()),
        ("X-Forwarded-Uri", "/orders/7".to_owned()),
        ("X-Forwarded-Host", "shop.example".to_owned()),
        ("X-Forwarded-Proto", "https".to_owned()),
    ];
    for (method, endpoint, headers) in [
        (Method::GET, "/forward-auth/nginx", &nginx[..]),
        (Method::POST, "/forward-auth/nginx", &nginx[..]),
        (Method::GET, "/forward-auth/traefik", &traefik[..]),
        (Method::GET, "/forward-auth/caddy", &traefik[..]),
        (
            Method::PUT,
            "/forward-auth/envoy/orders/7",
            &[bearer(&token)][..],
        ),
        (Method::GET, "/forward-auth/envoy", &[bearer(&token)][..]),
    ] {
        let a = ask(&s, method.clone(), endpoint, headers, None).await;
        assert_eq!(a.status, StatusCode::OK, "{method} {endpoint}");
        assert_eq!(a.header("x-keygate-user"), "svc");
        assert_eq!(a.header("x-keygate-user-id"), user.to_string());
        assert_eq!(a.header("x-keygate-token-id"), tid.to_string());
        assert_eq!(a.header("x-keygate-token-type"), "bearer");
    }
    // Usage is recorded as for any request.
    assert!(
        eventually(std::time::Duration::from_secs(5), || async {
            s.get(
                &s.admin_token,
                &format!("/setting/admins/{user}/apitokens/{tid}"),
            )
            .await
            .body["lastUsedOn"]
                .as_i64()
                > Some(0)
        })
        .await,
        "lastUsedOn was recorded"
    );
}

#[tokio::test]
async fn a_renamed_owner_is_named_anew_on_the_next_check() {
    let Some(s) = Server::start().await else {
        return;
    };
    let user = s.user("svc", &[DATAINGESTION]).await;
    let (_, token) = s.token_for(user, "proxy").await;
    let auth = [bearer(&token)];
    let check = || ask(&s, Method::GET, "/forward-auth/nginx", &auth, None);
    // Asked twice, so the second answer is the one kept for the token.
    assert_eq!(check().await.header("x-keygate-user"), "svc");
    assert_eq!(check().await.header("x-keygate-user"), "svc");
    let r = s
        .patch(
            &s.admin_token,
            &format!("/setting/admins/{user}"),
            json!({"username": "svc2"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let a = check().await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header("x-keygate-user"), "svc2", "the new name, at once");
    assert_eq!(a.header("x-keygate-user-id"), user.to_string());
}

#[tokio::test]
async fn refusals_say_why_in_a_header_and_revocation_is_immediate() {
    let Some(s) = Server::start().await else {
        return;
    };
    let user = s.user("svc", &[DATAINGESTION]).await;
    let (tid, token) = s.token_for(user, "proxy").await;
    let endpoint = "/forward-auth/nginx";
    let a = ask(&s, Method::GET, endpoint, &[], None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(
        a.header("www-authenticate")
            .starts_with("Bearer realm=\"keygate\"")
    );
    assert!(
        a.header("x-keygate-error").contains("no credentials"),
        "{}",
        a.header("x-keygate-error")
    );
    let a = ask(&s, Method::GET, endpoint, &[bearer("kgtnotatoken")], None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(!a.header("x-keygate-error").is_empty());
    let a = ask(
        &s,
        Method::GET,
        endpoint,
        &[
            bearer(&token),
            ("X-Original-URI", format!("/x?access_token={token}")),
        ],
        None,
    )
    .await;
    assert_eq!(
        a.status,
        StatusCode::UNAUTHORIZED,
        "a token in the URL is refused"
    );
    assert!(a.header("x-keygate-error").contains("query string"));

    let path = format!("/setting/admins/{user}/apitokens/{tid}");
    assert_eq!(
        s.patch(&s.admin_token, &path, json!({"status": 1}))
            .await
            .status,
        StatusCode::OK
    );
    let a = ask(&s, Method::GET, endpoint, &[bearer(&token)], None).await;
    assert_eq!(
        a.status,
        StatusCode::UNAUTHORIZED,
        "disabled: refused on the very next request"
    );
    assert!(
        a.header("x-keygate-error").contains("disabled"),
        "{}",
        a.header("x-keygate-error")
    );
    assert!(a.header("x-keygate-user").is_empty());
    assert_eq!(
        s.patch(&s.admin_token, &path, json!({"status": 2}))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        ask(&s, Method::GET, endpoint, &[bearer(&token)], None)
            .await
            .status,
        StatusCode::OK
    );
    s.call(Method::DELETE, Some(&s.admin_token), &path, None)
        .await;
    let a = ask(&s, Method::GET, endpoint, &[bearer(&token)], None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "deleted");
    assert!(
        a.header("x-keygate-error").contains("not known"),
        "{}",
        a.header("x-keygate-error")
    );
}

#[tokio::test]
async fn a_required_privilege_the_owner_lacks_is_403() {
    let Some(s) = Server::start().await else {
        return;
    };
    let ingest = s.user("ingest", &[DATAINGESTION]).await;
    let (_, ingest_token) = s.token_for(ingest, "ingestion").await;
    let a = ask(
        &s,
        Method::GET,
        "/forward-auth/traefik?require=useraccess",
        &[bearer(&ingest_token)],
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(
        a.header("x-keygate-error").contains("useraccess"),
        "{}",
        a.header("x-keygate-error")
    );
    for (token, require) in [
        (&s.admin_token, "useraccess"),
        (&ingest_token, "dataingestion"),
    ] {
        let endpoint = format!("/forward-auth/traefik?require={require}");
        let a = ask(&s, Method::GET, &endpoint, &[bearer(token)], None).await;
        assert_eq!(a.status, StatusCode::OK, "{require}");
    }
    // Envoy's query is the client's: the option comes from a header its config adds.
    let a = ask(
        &s,
        Method::GET,
        "/forward-auth/envoy/orders?require=dataingestion",
        &[
            bearer(&ingest_token),
            ("X-Keygate-Require", "useraccess".to_owned()),
        ],
        None,
    )
    .await;
    assert_eq!(
        a.status,
        StatusCode::FORBIDDEN,
        "envoy: the configured requirement"
    );
    let a = ask(
        &s,
        Method::GET,
        "/forward-auth/traefik?require=root",
        &[bearer(&ingest_token)],
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.header("x-keygate-error").contains("not a privilege"));
}

#[tokio::test]
async fn lmv1_is_checked_with_the_body_the_proxy_forwards_and_refused_without_it() {
    let Some(s) = Server::start().await else {
        return;
    };
    let (tid, aid, key) = s.lmv1_for(1, "proxy").await;
    let now = now_millis();
    let k = keygate_core::lmv1::AccessKey::from_secret(key.clone());
    let sign = |verb: &str, body: &str, path: &str| {
        format!(
            "LMv1 {aid}:{}:{now}",
            keygate_core::lmv1::sign(&k, verb, now, body.as_bytes(), path)
        )
    };
    // nginx, a GET: signed over the path after ?base=.
    let a = ask(
        &s,
        Method::GET,
        "/forward-auth/nginx?base=/api",
        &[
            ("Authorization", sign("GET", "", "/orders")),
            ("X-Original-Method", "GET".to_owned()),
            ("X-Original-URI", "/api/orders?page=2".to_owned()),
        ],
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.header("x-keygate-error"));
    assert_eq!(a.header("x-keygate-token-type"), "lmv1");
    assert_eq!(a.header("x-keygate-token-id"), tid.to_string());
    // nginx, a POST whose body nginx does not send: refused, saying why.
    let a = ask(
        &s,
        Method::GET,
        "/forward-auth/nginx?base=/api",
        &[
            ("Authorization", sign("POST", "{\"a\":1}", "/orders")),
            ("X-Original-Method", "POST".to_owned()),
            ("X-Original-URI", "/api/orders".to_owned()),
            ("X-Original-Content-Length", "7".to_owned()),
        ],
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(
        a.header("x-keygate-error").contains("does not send"),
        "{}",
        a.header("x-keygate-error")
    );
    // Envoy with_request_body: the body arrives and is checked.
    let a = ask(
        &s,
        Method::POST,
        "/forward-auth/envoy/orders",
        &[("Authorization", sign("POST", "{\"a\":1}", "/orders"))],
        Some("{\"a\":1}"),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.header("x-keygate-error"));
    let a = ask(
        &s,
        Method::POST,
        "/forward-auth/envoy/orders",
        &[("Authorization", sign("POST", "{\"a\":1}", "/orders"))],
        Some("{\"a\":2}"),
    )
    .await;
    assert_eq!(
        a.status,
        StatusCode::UNAUTHORIZED,
        "another body than signed"
    );
    assert!(
        a.header("x-keygate-error")
            .contains("signature does not match")
    );
}

#[tokio::test]
async fn refusals_feed_the_same_throttle_as_the_api() {
    let mut config = test_config();
    config.throttle = keygate_auth::throttle::ThrottleConfig {
        burst: 3.0,
        ..Default::default()
    };
    let Some(s) = Server::start_with(config).await else {
        return;
    };
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let a = ask(
            &s,
            Method::GET,
            "/forward-auth/nginx",
            &[bearer("kgtwrong")],
            None,
        )
        .await;
        statuses.push(a.status);
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(a.headers.contains_key("retry-after"));
        }
    }
    assert_eq!(statuses[..3], [StatusCode::UNAUTHORIZED; 3], "{statuses:?}");
    assert_eq!(statuses[3], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
    // The API answers that client the same way now.
    let r = s.get("kgtwrong", "/setting/portal").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
}
