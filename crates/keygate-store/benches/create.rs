//! Bearer token creation through the SQLite store, against its floor, in one run.
//!
//! Floor: one `BEGIN IMMEDIATE; INSERT; COMMIT` of a 32-byte value into a bare table
//! of the same database (same WAL + synchronous=FULL settings): the least any durable
//! create can cost. Store: `create_bearer_token` with its owner checks, limit count,
//! insert and change-log entry, round-robin over 1,000 owners (so no owner's token
//! count grows past what `maxTokensPerUser` allows in production).
//! Run: `cargo bench -p keygate-store --bench create`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use keygate_core::model::{TokenStatus, UserStatus};
use keygate_core::policy::{self, Actor};
use keygate_core::token::TokenDigest;
use keygate_store::{MasterKey, NewBearerToken, NewUser, PortalPatch, SqliteStore, Store};

const OWNERS: i64 = 1000;

fn digest() -> TokenDigest {
    let mut d = [0u8; 32];
    getrandom::fill(&mut d).expect("random");
    TokenDigest(d)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("bench.db");
    let store = rt
        .block_on(SqliteStore::open(
            path.to_str().expect("path"),
            MasterKey::generate().expect("key"),
        ))
        .expect("open");
    let actor = Actor::local_admin();
    let owners: Vec<i64> = rt.block_on(async {
        store.bootstrap("x", 1).await.expect("bootstrap");
        let admin = policy::user_admin(&actor).expect("cap");
        let role = store
            .role_by_name("dataingestion")
            .await
            .expect("role")
            .role
            .id;
        let mut owners = Vec::new();
        for i in 0..OWNERS {
            let new = NewUser {
                username: format!("owner{i}"),
                email: format!("owner{i}@example.com"),
                first_name: String::new(),
                last_name: String::new(),
                role_ids: vec![role],
                status: UserStatus::Active,
                api_only: true,
                note: String::new(),
            };
            owners.push(
                store
                    .create_user(&admin, &new, None, "bench", 1)
                    .await
                    .expect("user")
                    .id,
            );
        }
        let cap = policy::portal_admin(&actor).expect("cap");
        // The API caps this at 1,000; the benchmark needs room for every iteration.
        let patch = PortalPatch {
            max_tokens_per_user: Some(i64::MAX),
            ..PortalPatch::default()
        };
        store.update_portal(&cap, &patch, 1).await.expect("portal");
        store
            .with_connection(|c| {
                c.execute_batch(
                    "CREATE TABLE bench_floor (id INTEGER PRIMARY KEY, h BLOB NOT NULL)",
                )
            })
            .await
            .expect("floor table");
        owners
    });
    let caps: Vec<_> = owners
        .iter()
        .map(|&o| policy::token_write(&actor, o).expect("cap"))
        .collect();
    let mut next = 0usize;
    let mut group = c.benchmark_group("create");
    group
        .measurement_time(Duration::from_secs(5))
        .sample_size(30);
    group.bench_function("floor_insert_commit", |b| {
        b.iter(|| {
            rt.block_on(async {
                store
                    .with_connection(|c| {
                        c.execute_batch("BEGIN IMMEDIATE")?;
                        c.execute("INSERT INTO bench_floor (h) VALUES (?1)", [&digest().0[..]])?;
                        c.execute_batch("COMMIT")
                    })
                    .await
                    .expect("floor");
            })
        })
    });
    group.bench_function("store_create_bearer_token", |b| {
        b.iter(|| {
            let new = NewBearerToken {
                digest: digest(),
                access_id: "kgtAAAA**************************************AAAA".into(),
                note: String::new(),
                status: TokenStatus::Enabled,
                created_by: "bench".into(),
            };
            next = (next + 1) % caps.len();
            black_box(
                rt.block_on(store.create_bearer_token(&caps[next], &new, 1))
                    .expect("create"),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
