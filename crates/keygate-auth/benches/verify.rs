//! Bearer verification against its floor, measured in one run.
//!
//! Floor: SHA-256 of a 49-byte token plus a lookup in a std `HashMap` holding the
//! same number of random 32-byte keys. Verifier: the whole `verify_bearer` (digest,
//! sharded index, owner state, usage record), hit and miss, at 1,000 and 1,000,000
//! tokens; and LMv1 verification of a 1 KiB body against raw HMAC-SHA256 of it.
//! Run: `cargo bench -p keygate-auth --bench verify` (add `-- lmv1` for LMv1 only).
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

/// LMv1: HMAC-SHA256 of a 1 KiB body with a 40-byte key (the floor) against the whole
/// verification of a signed 1 KiB POST through the Verifier (access-id lookup, window
/// check, HMAC over verb + timestamp + body + path, hex + base64, constant-time
/// compare, owner state, usage record).
fn bench_lmv1(c: &mut Criterion) {
    use hmac::{Hmac, Mac};
    use keygate_core::credentials::Lmv1Credential;
    use keygate_core::lmv1::{self, AccessKey};
    use keygate_store::Lmv1Key;

    let key = AccessKey::generate().expect("key");
    let access_id = lmv1::generate_access_id().expect("id");
    let body = vec![b'x'; 1024];
    let path = "/setting/admins/1/apitokens";
    let ts = 1_700_000_000_000;
    let verifier = Verifier::from_snapshot(Snapshot {
        seq: 0,
        tokens: Vec::new(),
        lmv1: vec![Lmv1Key {
            id: 1,
            user_id: 1,
            access_id: access_id.clone(),
            key: key.clone(),
            enabled: true,
        }],
        users: vec![UserKey {
            id: 1,
            username: "u".into(),
            active: true,
            role_ids: vec![1],
        }],
        roles: vec![(1, Grants::APITOKEN_WRITE)],
        portal: Portal::default(),
    });
    let cred = Lmv1Credential {
        access_id,
        signature: lmv1::sign(&key, "POST", ts, &body, path),
        epoch_millis: ts,
    };
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut group = c.benchmark_group("lmv1_1KiB");
    group.measurement_time(Duration::from_secs(4));
    group.bench_function("floor_hmac_sha256", |b| {
        b.iter(|| {
            let mut mac =
                <Hmac<Sha256> as Mac>::new_from_slice(key.expose_secret().as_bytes()).expect("key");
            mac.update(black_box(&body));
            black_box(mac.finalize().into_bytes())
        })
    });
    group.bench_function("verify", |b| {
        b.iter(|| {
            let mut p = verifier
                .lmv1_begin(black_box(&cred), "POST", ts)
                .expect("begin");
            p.update(black_box(&body));
            black_box(verifier.lmv1_finish(p, path, ip, ts)).expect("verified")
        })
    });
    group.finish();
}

criterion_group!(benches, bench, bench_lmv1);
criterion_main!(benches);
