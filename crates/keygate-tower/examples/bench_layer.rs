//! The layer in process: an axum hello handler behind `KeygateLayer` vs the same
//! handler without it, served side by side for `scripts/bench-layer` to load with wrk.
//!
//! The index is built in memory (100,000 bearer tokens, or `BENCH_TOKENS`; one owner
//! holding every privilege); the token wrk sends is printed on the first line of stdout, then the
//! three addresses: `bare=ADDR`, `layered=ADDR` (`Router::layer`, around each route)
//! and `outer=ADDR` (the layer around the whole router).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use axum::Router;
use axum::routing::get;
use keygate_auth::Verifier;
use keygate_core::clock::Clock;
use keygate_core::model::Portal;
use keygate_core::policy::Grants;
use keygate_core::token::{BearerToken, TokenDigest};
use keygate_store::{Snapshot, TokenKey, UserKey};
use keygate_tower::{Gate, KeygateLayer};

fn hello() -> Router {
    Router::new().route("/", get(|| async { "hello, world\n" }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let token = BearerToken::generate().unwrap();
    // How many tokens the index holds (100,000 unless BENCH_TOKENS says otherwise).
    let count: i64 = std::env::var("BENCH_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let mut tokens: Vec<TokenKey> = (1..count)
        .map(|i: i64| {
            let mut d = [0u8; 32];
            d[..8].copy_from_slice(&i.to_le_bytes());
            d[31] = (i % 251) as u8;
            TokenKey {
                id: i,
                user_id: 1,
                digest: TokenDigest(d),
                enabled: true,
            }
        })
        .collect();
    tokens.push(TokenKey {
        id: count,
        user_id: 1,
        digest: token.digest(),
        enabled: true,
    });
    let verifier = Verifier::from_snapshot(Snapshot {
        seq: 1,
        tokens,
        lmv1: Vec::new(),
        users: vec![UserKey {
            id: 1,
            username: "bench".to_owned(),
            active: true,
            role_ids: vec![1],
        }],
        roles: vec![(1, Grants::ALL)],
        portal: Portal::default(),
    });
    verifier.confirm(i64::MAX / 2);
    let gate = Gate::local(verifier, Clock::System);
    let bare = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let layered = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let outer = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("{}", token.expose_secret());
    println!("bare={}", bare.local_addr().unwrap());
    println!("layered={}", layered.local_addr().unwrap());
    println!("outer={}", outer.local_addr().unwrap());
    let a = axum::serve(bare, hello());
    // `Router::layer`: the layer around each route (axum boxes each wrapped route).
    let b = axum::serve(layered, hello().layer(KeygateLayer::new(gate.clone())));
    // The layer around the whole router, as one service.
    let whole = tower_layer::Layer::layer(&KeygateLayer::new(gate), hello());
    let c = axum::serve(
        outer,
        axum::ServiceExt::<axum::extract::Request>::into_make_service(whole),
    );
    let _ = tokio::join!(a, b, c);
}
