//! Failed-authentication throttling: per client, only for failing requests, and
//! `X-Forwarded-For` only from trusted proxies.

use std::net::IpAddr;

use keygate_auth::throttle::ThrottleConfig;
use keygate_server::ServerConfig;
use reqwest::StatusCode;

use super::support::*;

fn config(burst: f64, trusted: Vec<IpAddr>) -> ServerConfig {
    // No refill worth mentioning during a test: the counts below are exact.
    ServerConfig {
        throttle: ThrottleConfig {
            burst,
            refill_per_second: 1e-6,
            ..Default::default()
        },
        trusted_proxies: trusted,
        ..test_config()
    }
}

async fn get_as(s: &Server, token: &str, client: Option<&str>) -> Resp {
    let mut rb = s
        .client
        .get(s.url("/setting/portal"))
        .header("Authorization", format!("Bearer {token}"));
    if let Some(c) = client {
        rb = rb.header("X-Forwarded-For", format!("198.51.100.9, {c}"));
    }
    send(rb).await
}

#[tokio::test]
async fn failed_authentications_are_throttled_per_client() {
    let Some(s) = Server::start_with(config(5.0, vec![IpAddr::from([127, 0, 0, 1])])).await else {
        return;
    };
    let bad = "kgtAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    for _ in 0..5 {
        assert_eq!(
            get_as(&s, bad, Some("203.0.113.7")).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let r = get_as(&s, bad, Some("203.0.113.7")).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert_eq!(r.body["errorCode"], 429);
    assert!(
        r.message().contains("too many failed authentications"),
        "{}",
        r.text
    );
    let retry: u64 = r
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!(retry >= 1);
    // A request that authenticates is still served for that client...
    assert_eq!(
        get_as(&s, &s.admin_token, Some("203.0.113.7")).await.status,
        StatusCode::OK
    );
    // ...and other clients are unaffected.
    assert_eq!(
        get_as(&s, bad, Some("203.0.113.8")).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Bad LMv1 signatures count the same way.
    let lmv1 = send(
        s.client
            .get(s.url("/setting/portal"))
            .header(
                "Authorization",
                "LMv1 AAAAAAAAAAAAAAAAAAAA:c2ln:1700000000000",
            )
            .header("X-Forwarded-For", "203.0.113.7"),
    )
    .await;
    assert_eq!(lmv1.status, StatusCode::TOO_MANY_REQUESTS);
    // Requests without any credential are not guesses: still a plain 401.
    let none = send(
        s.client
            .get(s.url("/setting/portal"))
            .header("X-Forwarded-For", "203.0.113.7"),
    )
    .await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let Some(s) = Server::start_with(config(3.0, Vec::new())).await else {
        return;
    };
    let bad = "kgtAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    // A client claiming a new address each time is still counted as itself.
    for i in 0..3 {
        assert_eq!(
            get_as(&s, bad, Some(&format!("203.0.113.{i}")))
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        get_as(&s, bad, Some("203.0.113.200")).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_parallel_wrong_passwords_are_checked_exactly_burst_times() {
    let Some(s) = Server::start_with(config(10.0, Vec::new())).await else {
        return;
    };
    let raw = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let page = send(raw.get(format!("http://{}/signin", s.addr))).await;
    let login = page
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("keygate_signin="))
        .and_then(|v| v.split(';').next())
        .expect("sign-in cookie")
        .to_owned();
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(100));
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let (raw, url, login, sem) = (
            raw.clone(),
            format!("http://{}/signin", s.addr),
            login.clone(),
            sem.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await.expect("permit");
            send(
                raw.post(url)
                    .header("Cookie", format!("keygate_signin={login}"))
                    .form(&[
                        ("username", "admin"),
                        ("password", "wrong-password"),
                        ("csrf", login.as_str()),
                    ]),
            )
            .await
            .status
        }));
    }
    let (mut checked, mut throttled) = (0, 0);
    for t in tasks {
        match t.await.expect("task") {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => throttled += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(checked, 10, "exactly the burst reached the password check");
    assert_eq!(throttled, 990);
    // The right password is refused too now (no hashing while over the limit)...
    let r = send(
        raw.post(format!("http://{}/signin", s.addr))
            .header("Cookie", format!("keygate_signin={login}"))
            .form(&[
                ("username", "admin"),
                ("password", "bootstrap-password"),
                ("csrf", login.as_str()),
            ]),
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.text.contains("Too many failed sign-in attempts"));
    // ...while API requests that authenticate are served.
    assert_eq!(
        s.get(&s.admin_token, "/setting/portal").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn throttled_sign_ins_are_counted_in_one_entry() {
    let clock = keygate_server::state::Clock::fixed(now_millis());
    let Some(s) = Server::start_with(ServerConfig {
        throttle: ThrottleConfig {
            burst: 2.0,
            refill_per_second: 2.0,
            ..Default::default()
        },
        clock: clock.clone(),
        ..test_config()
    })
    .await
    else {
        return;
    };
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(
            super::ui_http::signin(&s, "admin", "wrong-password", None)
                .await
                .status,
        );
    }
    let limited = statuses
        .iter()
        .filter(|c| **c == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(limited >= 2, "{statuses:?}");
    // A token comes back (the clock moves on); the next attempt is recorded, and so
    // are the ones turned away.
    clock.advance(700);
    let r = super::ui_http::signin(&s, "admin", "wrong-password", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let items = s
        .get(
            &s.admin_token,
            "/setting/accesslogs?filter=action:suppressed",
        )
        .await;
    let detail = items.body["items"][0]["detail"].as_str().unwrap_or("");
    assert!(
        detail.starts_with(&format!("{limited} more failed authentications")),
        "{}",
        items.text
    );
    assert_eq!(items.body["items"][0]["targetType"], "address");
}
