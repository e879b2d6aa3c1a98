//! Bearer verification against its floor, measured in one run.
//!
//! Floor: SHA-256 of a 49-byte token plus a lookup in a std `HashMap` holding the
//! same number of random 32-byte keys. Verifier: the whole `verify_bearer` (digest,
//! sharded index, owner state, usage record), hit and miss, at 1,000 and 1,000,000
//! tokens. Run: `cargo bench -p keygate-auth --bench verify`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use keygate_auth::Verifier;
use keygate_core::model::Portal;
use keygate_core::policy::Grants;
use keygate_core::token::{BearerToken, TokenDigest};
use keygate_store::{Snapshot, TokenKey, UserKey};
use sha2::{Digest, Sha256};

/// Real tokens to look up (the rest of the index is random digests).
const SAMPLES: usize = 1024;

struct Fixture {
    verifier: Verifier,
    floor: HashMap<[u8; 32], u64>,
    hits: Vec<BearerToken>,
    misses: Vec<BearerToken>,
}

fn random_digest() -> TokenDigest {
    let mut d = [0u8; 32];
    getrandom::fill(&mut d).expect("random");
    TokenDigest(d)
}

fn fixture(n: usize) -> Fixture {
    let hits: Vec<BearerToken> = (0..SAMPLES.min(n))
        .map(|_| BearerToken::generate().expect("token"))
        .collect();
    let misses: Vec<BearerToken> = (0..SAMPLES)
        .map(|_| BearerToken::generate().expect("token"))
        .collect();
    let mut digests: Vec<TokenDigest> = hits.iter().map(BearerToken::digest).collect();
    digests.extend((digests.len()..n).map(|_| random_digest()));
    let tokens = digests
        .iter()
        .enumerate()
        .map(|(i, d)| TokenKey {
            id: i as i64 + 1,
            user_id: 1 + (i as i64 % 100),
            digest: *d,
            enabled: true,
        })
        .collect();
    let users = (1..=100)
        .map(|id| UserKey {
            id,
            username: format!("user{id}"),
            active: true,
            role_ids: vec![1],
        })
        .collect();
    let verifier = Verifier::from_snapshot(Snapshot {
        seq: 0,
        tokens,
        lmv1: Vec::new(),
        users,
        roles: vec![(1, Grants::DATAINGESTION.union(Grants::APITOKEN_WRITE))],
        portal: Portal::default(),
    });
    let floor = digests
        .iter()
        .enumerate()
        .map(|(i, d)| (d.0, i as u64))
        .collect();
    Fixture {
        verifier,
        floor,
        hits,
        misses,
    }
}

fn bench(c: &mut Criterion) {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut group = c.benchmark_group("bearer");
    group.measurement_time(Duration::from_secs(4));
    for n in [1_000usize, 1_000_000] {
        let f = fixture(n);
        let mut i = 0usize;
        group.bench_with_input(BenchmarkId::new("floor_sha256_hashmap", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) % f.hits.len();
                let d: [u8; 32] = Sha256::digest(f.hits[i].expose_secret().as_bytes()).into();
                black_box(f.floor.get(&d))
            })
        });
        group.bench_with_input(BenchmarkId::new("verify_hit", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) % f.hits.len();
                black_box(f.verifier.verify_bearer(&f.hits[i], ip, 1_700_000_000)).expect("hit")
            })
        });
        group.bench_with_input(BenchmarkId::new("verify_miss", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) % f.misses.len();
                black_box(f.verifier.verify_bearer(&f.misses[i], ip, 1_700_000_000))
                    .expect_err("miss")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
