//! Measures the Verifier's memory per bearer token: resident set size growth from
//! before the snapshot is built to after it has been indexed and freed, for N tokens
//! (default 1,000,000).
//!
//! Run: `cargo run --release -p keygate-auth --example index_memory [N]`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keygate_auth::Verifier;
use keygate_core::model::Portal;
use keygate_core::policy::Grants;
use keygate_core::token::TokenDigest;
use keygate_store::{Snapshot, TokenKey, UserKey};

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    // The snapshot is consumed (and its memory returned) while the index is built,
    // so the growth from here to the end is the index alone.
    let before = rss_bytes();
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("random");
    let tokens: Vec<TokenKey> = (0..n)
        .map(|i| {
            // Distinct, uniformly spread keys without a syscall per token.
            let mut d = seed;
            d[..8].copy_from_slice(&(i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
            d[24..32].copy_from_slice(
                &((i as u64) ^ 0xA5A5_A5A5)
                    .wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
                    .to_le_bytes(),
            );
            TokenKey {
                id: i as i64 + 1,
                user_id: 1,
                digest: TokenDigest(d),
                enabled: true,
            }
        })
        .collect();
    let snapshot = Snapshot {
        seq: 0,
        tokens,
        lmv1: Vec::new(),
        users: vec![UserKey {
            id: 1,
            username: "u".into(),
            active: true,
            role_ids: vec![1],
        }],
        roles: vec![(1, Grants::DATAINGESTION)],
        portal: Portal::default(),
    };
    let v = Verifier::from_snapshot(snapshot);
    let after = rss_bytes();
    assert_eq!(v.token_count(), n);
    println!(
        "tokens={n} rss_before={before} rss_after={after} index_bytes={} bytes_per_token={:.1}",
        after.saturating_sub(before),
        after.saturating_sub(before) as f64 / n as f64
    );
}
