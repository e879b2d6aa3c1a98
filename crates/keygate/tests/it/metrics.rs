//! `/metrics`: Prometheus text with authentications by scheme and outcome, verify
//! latency, tokens by type and status, throttling, reconciliation age and requests by
//! route template — and never a token, user name or raw path.

use std::collections::HashMap;
use std::time::Duration;

use keygate_server::ServerConfig;
use reqwest::StatusCode;
use serde_json::json;

use super::support::*;

/// Every sample of a scrape, by its full name with labels.
async fn scrape(base: &str) -> (String, HashMap<String, f64>) {
    let r = send(reqwest::Client::new().get(format!("{base}/metrics"))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let ctype = r
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let samples = r
        .text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect();
    (r.text, samples)
}

fn get(m: &HashMap<String, f64>, name: &str) -> f64 {
    m.get(name).copied().unwrap_or(0.0)
}

fn auth(scheme: &str, outcome: &str) -> String {
    format!("keygate_authentications_total{{scheme=\"{scheme}\",outcome=\"{outcome}\"}}")
}

#[tokio::test]
async fn counts_authentications_tokens_and_routes_without_secrets() {
    let Some(s) = Server::start().await else {
        return;
    };
    let base = format!("http://{}", s.addr);
    let user = s.user("metrics-owner", &[DATAINGESTION]).await;
    let (id, secret) = s.token_for(user, "n").await;
    let (lmv1_id, access_id, _key) = s.lmv1_for(user, "l").await;
    let _ = lmv1_id;
    let path = format!("/setting/admins/{user}/apitokens/{id}");
    assert_eq!(
        s.patch(&s.admin_token, &path, json!({"status": 1}))
            .await
            .status,
        StatusCode::OK
    );
    // Every token (the administrator's, the bearer and the LMv1 one) is held in memory
    // for management reads once the rows have loaded, and kept current after.
    let held = eventually(std::time::Duration::from_secs(5), || async {
        s.metric("keygate_read_view_tokens").await == Some(3.0)
    })
    .await;
    assert!(held, "{:?}", s.metric("keygate_read_view_tokens").await);
    let (_, before) = scrape(&base).await;

    // 2 successes, 1 disabled, 1 unknown, 1 malformed, 1 bad LMv1 signature, 1 missing.
    assert_eq!(
        s.get(&s.admin_token, "/setting/portal").await.status,
        StatusCode::OK
    );
    assert_eq!(s.get(&s.admin_token, &path).await.status, StatusCode::OK);
    assert_eq!(
        s.get(&secret, "/setting/portal").await.status,
        StatusCode::UNAUTHORIZED
    );
    let unknown = keygate_core::token::BearerToken::generate().expect("token");
    assert_eq!(
        s.get(unknown.expose_secret(), "/setting/portal")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.get("not-a-token", "/setting/portal").await.status,
        StatusCode::UNAUTHORIZED
    );
    let ts = now_millis();
    let r = send(s.client.get(s.url("/setting/portal")).header(
        "Authorization",
        format!("LMv1 {access_id}:{}:{ts}", "A".repeat(44)),
    ))
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let r = send(s.client.get(s.url("/setting/portal"))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let (text, after) = scrape(&base).await;
    let delta = |name: String| get(&after, &name) - get(&before, &name);
    assert_eq!(delta(auth("bearer", "success")), 2.0);
    assert_eq!(delta(auth("bearer", "disabled")), 1.0);
    assert_eq!(delta(auth("bearer", "unknown")), 1.0);
    assert_eq!(delta(auth("bearer", "malformed")), 1.0);
    assert_eq!(delta(auth("lmv1", "bad_signature")), 1.0);
    assert_eq!(delta(auth("none", "missing")), 1.0);
    // Bearer and LMv1 checks that reached the index are timed (2 + 1 + 1 + 1).
    assert_eq!(
        delta("keygate_verify_duration_seconds_count".to_owned()),
        5.0
    );
    assert!(
        get(
            &after,
            "keygate_verify_duration_seconds_bucket{le=\"+Inf\"}"
        ) >= 5.0
    );
    assert_eq!(
        get(
            &after,
            "keygate_tokens{type=\"bearer\",status=\"disabled\"}"
        ),
        1.0
    );
    assert_eq!(
        get(&after, "keygate_tokens{type=\"bearer\",status=\"enabled\"}"),
        1.0
    );
    assert_eq!(
        get(&after, "keygate_tokens{type=\"lmv1\",status=\"enabled\"}"),
        1.0
    );
    assert!(get(&after, "keygate_last_reconciliation_age_seconds") < 60.0);
    let route = "keygate_http_requests_total{method=\"GET\",route=\"/santaba/rest/setting/admins/{adminId}/apitokens/{apitokenId}\",status=\"200\"}";
    assert_eq!(delta(route.to_owned()), 1.0, "{text}");
    assert!(
        get(
            &after,
            "keygate_http_requests_total{method=\"GET\",route=\"/santaba/rest/setting/portal\",status=\"401\"}"
        ) >= 5.0
    );

    for secret_or_name in [
        s.admin_token.as_str(),
        secret.as_str(),
        unknown.expose_secret(),
        "not-a-token",
        access_id.as_str(),
        "metrics-owner",
        &format!("/apitokens/{id}"),
    ] {
        assert!(
            !text.contains(secret_or_name),
            "scrape contains {secret_or_name}"
        );
    }
}

#[tokio::test]
async fn throttled_requests_are_counted() {
    let Some(s) = Server::start_with(ServerConfig {
        throttle: keygate_auth::throttle::ThrottleConfig {
            burst: 2.0,
            refill_per_second: 0.001,
            ..Default::default()
        },
        ..test_config()
    })
    .await
    else {
        return;
    };
    let base = format!("http://{}", s.addr);
    let unknown = keygate_core::token::BearerToken::generate().expect("token");
    let codes: Vec<StatusCode> = futures_free_loop(&s, unknown.expose_secret(), 4).await;
    assert_eq!(
        codes,
        [
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    let (_, m) = scrape(&base).await;
    assert_eq!(get(&m, "keygate_throttled_requests_total"), 2.0);
    assert_eq!(get(&m, &auth("bearer", "throttled")), 2.0);
    assert_eq!(get(&m, &auth("bearer", "unknown")), 2.0);
}

async fn futures_free_loop(s: &Server, token: &str, n: usize) -> Vec<StatusCode> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(s.get(token, "/setting/portal").await.status);
    }
    out
}

#[tokio::test]
async fn metrics_can_move_to_their_own_address() {
    // A free port for the metrics listener.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let Some(s) = Server::start_with(ServerConfig {
        metrics_addr: Some(addr),
        ..test_config()
    })
    .await
    else {
        return;
    };
    assert_eq!(
        s.get(&s.admin_token, "/setting/portal").await.status,
        StatusCode::OK
    );
    let main = send(reqwest::Client::new().get(format!("http://{}/metrics", s.addr))).await;
    assert_eq!(main.status, StatusCode::NOT_FOUND);
    let ready = eventually(Duration::from_secs(5), || async {
        reqwest::get(format!("http://{addr}/metrics")).await.is_ok()
    })
    .await;
    assert!(ready);
    let (_, m) = scrape(&format!("http://{addr}")).await;
    assert!(get(&m, &auth("bearer", "success")) >= 1.0);
    let other =
        send(reqwest::Client::new().get(format!("http://{addr}/santaba/rest/setting/portal")))
            .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_failing_database_is_counted_and_the_change_is_not_made_without_its_audit_entry() {
    let Some(s) = Server::start().await else {
        return;
    };
    let base = format!("http://{}", s.addr);
    let user = s.user("owner", &[DATAINGESTION]).await;
    let (id, _) = s.token_for(user, "kept").await;
    let path = format!("/setting/admins/{user}/apitokens/{id}");
    // Without its audit table the change's transaction cannot commit.
    s.with_key(s.key.clone(), |store| async move {
        store.execute("DROP TABLE audit_log").await;
    })
    .await
    .expect("store");
    let r = s
        .patch(&s.admin_token, &path, json!({"note": "changed"}))
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text);
    assert_eq!(
        r.message(),
        "internal error",
        "no database detail reaches the client"
    );
    assert_eq!(s.get(&s.admin_token, &path).await.body["note"], "kept");
    let (_, m) = scrape(&base).await;
    assert_eq!(get(&m, "keygate_store_errors_total"), 1.0);
}

/// Health checks and nginx's bearer checks are answered before routing: the same
/// answers, headers, counts and authentication outcomes as a routed request; another
/// method, an LMv1 check and an unknown path still go through the router.
#[tokio::test]
async fn requests_answered_before_routing_are_counted_under_their_routes() {
    let Some(s) = Server::start().await else {
        return;
    };
    let base = format!("http://{}", s.addr);
    let user = s.user("lane-owner", &[DATAINGESTION]).await;
    let (_, secret) = s.token_for(user, "n").await;
    let client = reqwest::Client::new();
    let (_, before) = scrape(&base).await;

    for _ in 0..3 {
        let r = send(client.get(format!("{base}/healthz"))).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body, json!({"status": "ok"}));
        assert_eq!(r.headers["content-type"], "application/json");
        assert_eq!(r.headers["x-content-type-options"], "nosniff");
        assert_eq!(r.headers["cache-control"], "no-store");
    }
    let r = send(client.head(format!("{base}/healthz"))).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(client.post(format!("{base}/healthz"))).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);

    let nginx = format!("{base}/forward-auth/nginx");
    let r = send(
        client
            .get(&nginx)
            .header("Authorization", format!("Bearer {secret}"))
            .header("X-Original-URI", "/api/things"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.headers["x-keygate-user"], "lane-owner");
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    let r = send(
        client
            .get(format!("{nginx}?require=portal"))
            .header("Authorization", format!("Bearer {secret}")),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = send(
        client
            .get(&nginx)
            .header("Authorization", "Bearer kgt_not_a_real_token"),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(r.headers.contains_key("www-authenticate"));
    let r = send(client.get(format!("{base}/no/such/path"))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let (text, after) = scrape(&base).await;
    let delta = |name: &str| get(&after, name) - get(&before, name);
    let http = |method: &str, route: &str, status: u16| {
        format!(
            "keygate_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}}"
        )
    };
    assert_eq!(delta(&http("GET", "/healthz", 200)), 3.0, "{text}");
    assert_eq!(delta(&http("HEAD", "/healthz", 200)), 1.0, "{text}");
    // A method a route does not serve is answered by the router's fallback.
    assert_eq!(delta(&http("POST", "unmatched", 405)), 1.0, "{text}");
    assert_eq!(
        delta(&http("GET", "/forward-auth/nginx", 200)),
        1.0,
        "{text}"
    );
    assert_eq!(
        delta(&http("GET", "/forward-auth/nginx", 403)),
        1.0,
        "{text}"
    );
    assert_eq!(
        delta(&http("GET", "/forward-auth/nginx", 401)),
        1.0,
        "{text}"
    );
    assert_eq!(delta(&http("GET", "unmatched", 404)), 1.0, "{text}");
    assert_eq!(delta(&auth("bearer", "success")), 2.0, "{text}");
    assert_eq!(delta(&auth("bearer", "malformed")), 1.0, "{text}");
}

/// A node applies its own creates from what each write returned, while its follower
/// polls the change log: the two never make the log look as if it went backwards,
/// which would cost a full reload of the index (counted in
/// `keygate_index_reloads_total`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_creating_tokens_while_its_follower_polls_never_reloads() {
    let Some(s) = Server::start_with(ServerConfig {
        poll_interval: Duration::from_millis(1),
        ..test_config()
    })
    .await
    else {
        return;
    };
    let base = format!("http://{}", s.addr);
    let r = s
        .patch(
            &s.admin_token,
            "/setting/portal",
            json!({"maxTokensPerUser": 1000}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let user = s.user("busy-owner", &[DATAINGESTION]).await;
    let reloads = "keygate_index_reloads_total";
    let (_, before) = scrape(&base).await;
    let client = reqwest::Client::new();
    let creates = (0..8).map(|_| {
        let (client, url, token) = (
            client.clone(),
            s.url(&format!("/setting/admins/{user}/apitokens")),
            s.admin_token.clone(),
        );
        tokio::spawn(async move {
            for _ in 0..40 {
                let r = send(
                    client
                        .post(&url)
                        .header("Authorization", format!("Bearer {token}"))
                        .json(&json!({"type": "bearer", "note": "busy"})),
                )
                .await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            }
        })
    });
    for t in creates.collect::<Vec<_>>() {
        t.await.expect("creates");
    }
    let r = s
        .get(&s.admin_token, &format!("/setting/admins/{user}/apitokens"))
        .await;
    assert_eq!(r.body["total"], 320, "{}", r.text);
    let (text, after) = scrape(&base).await;
    assert!(after.contains_key(reloads), "{text}");
    assert_eq!(
        get(&after, reloads) - get(&before, reloads),
        0.0,
        "no full reload while the node applied its own writes"
    );
}
