//! Revocation propagation from a keygate server to a service following it
//! (keygate-tower in remote mode). Run through `scripts/bench-remote`.
//!
//! keygate runs in this process on an ephemeral port over a temporary SQLite file; a
//! `Gate::remote` follows it over HTTP. For each of N revocations a fresh token is
//! disabled through the API while the gate is asked about it continuously; the time
//! from the disable response to the gate's first refusal is one sample. The baseline,
//! measured in the same run, is the median latency of one authenticated request to
//! keygate.
// A benchmark times itself with the monotonic clock; the service reads time only
// through keygate_core::clock.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use keygate_core::model::TokenStatus;
use keygate_core::policy::Actor;
use keygate_core::token::BearerToken;
use keygate_server::manage::TokenInput;
use keygate_server::{Manager, ServerConfig};
use keygate_store::{MasterKey, SqliteStore, Store};
use keygate_tower::{Gate, RemoteConfig};
use serde_json::{Value, json};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // reqwest is built without a TLS provider of its own.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300);
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("keygate.db");
    let key = MasterKey::generate().expect("key");
    let store = SqliteStore::open(path.to_str().unwrap(), key)
        .await
        .expect("open");
    store
        .bootstrap(&keygate_core::password::hash("x").expect("hash"), 1)
        .await
        .expect("bootstrap");
    let m = Manager::new(store.clone(), None);
    let admin_id = store.user_by_username("admin").await.expect("admin").id;
    let input = TokenInput {
        note: String::new(),
        status: TokenStatus::Enabled,
    };
    let (_, admin) = m
        .create_bearer_token(&Actor::local_admin(), admin_id, input)
        .await
        .expect("token");
    let admin = admin.expose_secret().to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        keygate_server::serve(
            listener,
            store,
            ServerConfig::default(),
            std::future::pending(),
        )
        .await
        .expect("serve");
    });
    let base = format!("http://{addr}/santaba/rest");
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: String, body: Option<Value>| {
        let mut rb = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(&admin);
        if let Some(b) = body {
            rb = rb
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        rb.send()
    };
    // Wait for the server; raise the per-user token cap for the run.
    for _ in 0..200 {
        if call(reqwest::Method::GET, "/apitokens/self".into(), None)
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    call(
        reqwest::Method::PATCH,
        "/setting/portal".into(),
        Some(json!({"maxTokensPerUser": 1000})),
    )
    .await
    .expect("portal");

    let gate = Gate::remote(RemoteConfig::new(format!("http://{addr}"), admin.clone()))
        .await
        .expect("follow keygate");
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);

    // Baseline: one authenticated request to keygate.
    let mut base_lat = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let r = call(reqwest::Method::GET, "/apitokens/self".into(), None)
            .await
            .unwrap();
        assert!(r.status().is_success());
        let _ = r.bytes().await;
        base_lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    base_lat.sort_by(f64::total_cmp);

    let mut samples = Vec::with_capacity(n);
    let mut disable_lat = Vec::with_capacity(n);
    for i in 0..n {
        let r: Value = call(
            reqwest::Method::POST,
            format!("/setting/admins/{admin_id}/apitokens?type=bearer"),
            Some(json!({"note": format!("p{i}")})),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        let id = r["id"].as_i64().unwrap();
        let token = BearerToken::parse(r["accessKey"].as_str().unwrap()).unwrap();
        // The creation reaches the service first.
        while gate.bearer(&token, ip).is_err() {
            tokio::task::yield_now().await;
        }
        // From the moment the disable is sent: keygate applies it before answering,
        // and the service's long poll is answered at the same moment as the client.
        let t0 = Instant::now();
        let r = call(
            reqwest::Method::PATCH,
            format!("/setting/admins/{admin_id}/apitokens/{id}"),
            Some(json!({"status": 1})),
        )
        .await
        .unwrap();
        assert!(r.status().is_success());
        disable_lat.push(t0.elapsed().as_secs_f64() * 1000.0);
        while gate.bearer(&token, ip).is_ok() {
            tokio::task::yield_now().await;
        }
        samples.push(t0.elapsed().as_secs_f64() * 1000.0);
        // Keep the owner under the per-user token cap.
        let _ = call(
            reqwest::Method::DELETE,
            format!("/setting/admins/{admin_id}/apitokens/{id}"),
            None,
        )
        .await
        .unwrap();
    }
    disable_lat.sort_by(f64::total_cmp);
    samples.sort_by(f64::total_cmp);
    let b50 = percentile(&base_lat, 0.5);
    let (p50, p99, max) = (
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples[samples.len() - 1],
    );
    println!("baseline: one authenticated request to keygate, p50 {b50:.3} ms");
    println!(
        "the disable request itself: p50 {:.3} ms, p99 {:.3} ms",
        percentile(&disable_lat, 0.5),
        percentile(&disable_lat, 0.99)
    );
    println!(
        "remote propagation ({n} revocations, from sending the disable to the service's first refusal): \
         p50 {p50:.3} ms, p99 {p99:.3} ms, max {max:.3} ms"
    );
    println!(
        "ratio to one request: p50 {:.2}x, p99 {:.2}x",
        p50 / b50,
        p99 / b50
    );
}
