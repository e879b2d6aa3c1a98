//! The baselines `scripts/bench-http` measures keygate against, served side by side on
//! one single-threaded runtime (one core, one thread, as the benchmark pins it):
//!
//! - `bare=ADDR`: an axum server answering a 20-byte body, nothing checked;
//! - `anchor=ADDR`: the same, after the least a token check can do: the one
//!   `Authorization` header's `Bearer` token hashed with SHA-256 and looked up in an
//!   in-memory map of 100,000 digests (401 without it);
//! - `loop=ADDR`: the bare server's router behind keygate's own connection loop
//!   (`keygate_server::listen::serve` with its default limits: head size and
//!   deadline, connections per client, query repair, graceful shutdown) instead of
//!   `axum::serve` on plain hyper-util, so the loop's cost is measured on its own.
//!
//! The token the anchor accepts is printed on the first line of stdout, then the three
//! addresses.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::get;
use keygate_core::token::{BearerToken, TokenDigest, digest_of};

const BODY: &str = "hello, keygate bench";

async fn bare() -> &'static str {
    BODY
}

async fn anchored(
    State(tokens): State<Arc<HashMap<TokenDigest, i64>>>,
    headers: HeaderMap,
) -> Result<&'static str, StatusCode> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .ok_or(StatusCode::UNAUTHORIZED)?;
    tokens
        .get(&digest_of(token))
        .map(|_| BODY)
        .ok_or(StatusCode::UNAUTHORIZED)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let token = BearerToken::generate().unwrap();
    let mut tokens: HashMap<TokenDigest, i64> = (1..100_000)
        .map(|i: i64| {
            let mut d = [0u8; 32];
            d[..8].copy_from_slice(&i.to_le_bytes());
            (TokenDigest(d), i)
        })
        .collect();
    tokens.insert(token.digest(), 100_000);
    let bare_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let anchor_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let loop_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("{}", token.expose_secret());
    println!("bare={}", bare_l.local_addr().unwrap());
    println!("anchor={}", anchor_l.local_addr().unwrap());
    println!("loop={}", loop_l.local_addr().unwrap());
    let a = axum::serve(bare_l, Router::new().route("/", get(bare)));
    let b = axum::serve(
        anchor_l,
        Router::new()
            .route("/", get(anchored))
            .with_state(Arc::new(tokens)),
    );
    let c = keygate_server::listen::serve(
        loop_l,
        Router::new().route("/", get(bare)),
        keygate_server::listen::Plain,
        keygate_server::listen::Limits::default(),
        Arc::from(Vec::new()),
        std::future::pending(),
    );
    let _ = tokio::join!(a, b, c);
}
