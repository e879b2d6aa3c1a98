//! Revocation propagation across keygate nodes sharing one PostgreSQL, and token
//! creation throughput with one and three nodes. Run through `scripts/bench-propagation`.
//!
//! Three nodes run in this process on ephemeral ports, over a freshly created database
//! (dropped at the end). For each of N revocations a random node disables a token
//! while the two other nodes are polled continuously with it; the time from the
//! disable response to the first refusal on each other node is one sample. The
//! baseline, measured in the same run, is the median latency of one authenticated
//! request on an idle node.
// A benchmark times itself with the monotonic clock; the service reads time only
// through keygate_core::clock.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

use std::time::{Duration, Instant};

use keygate_core::model::TokenStatus;
use keygate_core::policy::Actor;
use keygate_server::manage::TokenInput;
use keygate_server::{Manager, ServerConfig};
use keygate_store::{MasterKey, PgStore, Store};
use serde_json::{Value, json};
use sqlx::Connection as _;

struct Node {
    base: String,
}

async fn start_node(url: &str, key: &MasterKey) -> Node {
    let store = PgStore::open(url, key.clone(), 10, Duration::from_millis(1500))
        .await
        .expect("open");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
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
    Node {
        base: format!("http://{addr}/santaba/rest"),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let admin_url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let n: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(500);
    let mut suffix = [0u8; 6];
    getrandom::fill(&mut suffix).expect("random");
    let name: String = format!(
        "kg_bench_{}",
        suffix
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("connect");
    // Our own hex name, never input.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create db");
    let url = format!("{}/{name}", admin_url.rsplit_once('/').expect("url").0);
    let key = MasterKey::generate().expect("key");

    let store = PgStore::open(&url, key.clone(), 4, Duration::from_secs(2))
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
    let (_, admin_token) = m
        .create_bearer_token(&Actor::local_admin(), admin_id, input)
        .await
        .expect("token");
    let admin_token = admin_token.expose_secret().to_owned();
    let nodes = [
        start_node(&url, &key).await,
        start_node(&url, &key).await,
        start_node(&url, &key).await,
    ];
    let http = reqwest::Client::new();
    let auth = format!("Bearer {admin_token}");
    let call = |method: reqwest::Method, base: &str, path: &str, body: Option<Value>| {
        let mut rb = http
            .request(method, format!("{base}{path}"))
            .header("Authorization", &auth);
        if let Some(b) = body {
            rb = rb
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        rb.send()
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    call(
        reqwest::Method::PATCH,
        &nodes[0].base,
        "/setting/portal",
        Some(json!({"maxTokensPerUser": 1000})),
    )
    .await
    .expect("portal");

    // Creates/s: one node, then three nodes at once (three owners, so the per-user
    // count is the same work in both).
    let mut owners = Vec::new();
    for i in 0..3 {
        let body = json!({"username": format!("ingest{i}"), "email": format!("i{i}@x.io"), "roles": [{"id": 2}]});
        let r: Value = call(
            reqwest::Method::POST,
            &nodes[0].base,
            "/setting/admins",
            Some(body),
        )
        .await
        .expect("user")
        .json()
        .await
        .expect("json");
        owners.push(r["id"].as_i64().expect("id"));
    }
    let per = 150;
    let t = Instant::now();
    for _ in 0..per {
        call(
            reqwest::Method::POST,
            &nodes[0].base,
            &format!("/setting/admins/{}/apitokens?type=bearer", owners[0]),
            Some(json!({})),
        )
        .await
        .expect("create");
    }
    let one_node = per as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut tasks = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let (http, base, auth, owner) = (
            http.clone(),
            node.base.clone(),
            auth.clone(),
            owners[(i + 1) % 3],
        );
        tasks.push(tokio::spawn(async move {
            for _ in 0..per {
                http.post(format!(
                    "{base}/setting/admins/{owner}/apitokens?type=bearer"
                ))
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .body("{}")
                .send()
                .await
                .expect("create");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let three_nodes = (3 * per) as f64 / t.elapsed().as_secs_f64();

    // Baseline: one authenticated request on an idle node.
    let mut base_ms = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        call(
            reqwest::Method::GET,
            &nodes[1].base,
            "/setting/portal",
            None,
        )
        .await
        .expect("get");
        base_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    base_ms.sort_by(f64::total_cmp);

    // Revocations.
    let owner = owners[0];
    let listed: Value = call(
        reqwest::Method::GET,
        &nodes[0].base,
        &format!("/setting/admins/{owner}/apitokens?size=1"),
        None,
    )
    .await
    .expect("list")
    .json()
    .await
    .expect("json");
    assert!(listed["total"].as_i64().unwrap_or(0) > 0);
    let mut samples = Vec::new();
    for i in 0..n {
        // A fresh token each time, known to every node before it is revoked.
        let r: Value = call(
            reqwest::Method::POST,
            &nodes[i % 3].base,
            &format!("/setting/admins/{}/apitokens?type=bearer", owners[2]),
            Some(json!({})),
        )
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
        let (id, secret) = (
            r["id"].as_i64().expect("id"),
            r["accessKey"].as_str().expect("secret").to_owned(),
        );
        let mut rnd = [0u8; 1];
        getrandom::fill(&mut rnd).expect("random");
        let on = usize::from(rnd[0]) % 3;
        let others: Vec<String> = (0..3)
            .filter(|&j| j != on)
            .map(|j| nodes[j].base.clone())
            .collect();
        for base in &others {
            loop {
                let s = http
                    .get(format!("{base}/setting/portal"))
                    .header("Authorization", format!("Bearer {secret}"))
                    .send()
                    .await
                    .expect("poll")
                    .status();
                if s == reqwest::StatusCode::OK {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        let start = std::sync::Arc::new(tokio::sync::OnceCell::<Instant>::new());
        let mut pollers = Vec::new();
        for base in others {
            let (http, secret, start) = (http.clone(), secret.clone(), start.clone());
            pollers.push(tokio::spawn(async move {
                loop {
                    let s = http
                        .get(format!("{base}/setting/portal"))
                        .header("Authorization", format!("Bearer {secret}"))
                        .send()
                        .await
                        .expect("poll")
                        .status();
                    if s == reqwest::StatusCode::UNAUTHORIZED {
                        let refused = Instant::now();
                        // Wait for the disable response's time, then measure from it.
                        loop {
                            if let Some(t0) = start.get() {
                                return refused.saturating_duration_since(*t0);
                            }
                            tokio::time::sleep(Duration::from_micros(200)).await;
                        }
                    }
                }
            }));
        }
        let r = call(
            reqwest::Method::PATCH,
            &nodes[on].base,
            &format!("/setting/admins/{}/apitokens/{id}", owners[2]),
            Some(json!({"status": 1})),
        )
        .await
        .expect("disable");
        let _ = start.set(Instant::now());
        assert!(r.status().is_success());
        for p in pollers {
            samples.push(p.await.expect("poller").as_secs_f64() * 1000.0);
        }
        // Keep the owner under the token limit.
        call(
            reqwest::Method::DELETE,
            &nodes[on].base,
            &format!("/setting/admins/{}/apitokens/{id}", owners[2]),
            None,
        )
        .await
        .expect("delete");
    }
    samples.sort_by(f64::total_cmp);
    let base_p50 = percentile(&base_ms, 0.5);
    println!(
        "nodes: 3, one PostgreSQL; revocations: {n}; samples (other nodes): {}",
        samples.len()
    );
    println!(
        "time from disable response to first refusal on another node: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples[samples.len() - 1]
    );
    println!(
        "baseline (same run): one authenticated request on an idle node, p50 {base_p50:.2} ms"
    );
    println!(
        "p99 / baseline p50: {:.1}x",
        percentile(&samples, 0.99) / base_p50
    );
    println!(
        "token creates/s on PostgreSQL: 1 node {one_node:.0}/s, 3 nodes {three_nodes:.0}/s (ratio {:.2})",
        three_nodes / one_node
    );
    drop(admin);
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("connect");
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await;
}
