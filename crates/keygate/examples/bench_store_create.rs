//! Token creation through the SQLite store alone, for what a create costs below HTTP:
//! `bench_store_create PATH N` opens a new store at PATH, makes 100 owners, then
//! creates N bearer tokens round-robin over them, twice, and prints for each pass the
//! creates per second and the wall-clock and CPU time (every thread's, from
//! `/proc/self/task/*/schedstat`) per create. Run it pinned to one core, under
//! `perf stat -e context-switches` for the hand-offs: `taskset -c 0 perf stat -e
//! context-switches target/release/examples/bench_store_create /tmp/s.db 3000`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::disallowed_methods)] // durations, not times of day

use std::time::Instant;

use keygate_core::model::{TokenStatus, UserStatus};
use keygate_core::policy::{self, Actor};
use keygate_core::token::TokenDigest;
use keygate_store::{MasterKey, NewBearerToken, NewUser, PortalPatch, SqliteStore, Store};

/// Microseconds every thread of this process has spent on a CPU.
fn cpu_us() -> f64 {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").expect("tasks") {
        let stat = std::fs::read_to_string(task.expect("task").path().join("schedstat"))
            .expect("schedstat");
        ns += stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    ns as f64 / 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("PATH");
    let n: usize = args.next().expect("N").parse().expect("N");
    let store = SqliteStore::open(&path, MasterKey::generate().expect("key"))
        .await
        .expect("open");
    let actor = Actor::local_admin();
    store.bootstrap("x", 1).await.expect("bootstrap");
    let admin = policy::user_admin(&actor).expect("cap");
    let role = store
        .role_by_name("dataingestion")
        .await
        .expect("role")
        .role
        .id;
    let mut caps = Vec::new();
    for i in 0..100 {
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
        let id = store
            .create_user(&admin, &new, None, "bench", 1)
            .await
            .expect("user")
            .id;
        caps.push(policy::token_write(&actor, id).expect("cap"));
    }
    let patch = PortalPatch {
        max_tokens_per_user: Some(i64::MAX),
        ..PortalPatch::default()
    };
    let cap = policy::portal_admin(&actor).expect("cap");
    store.update_portal(&cap, &patch, 1).await.expect("portal");
    for pass in 1..=2 {
        let (cpu, wall) = (cpu_us(), Instant::now());
        for i in 0..n {
            let mut d = [0u8; 32];
            getrandom::fill(&mut d).expect("random");
            let new = NewBearerToken {
                digest: TokenDigest(d),
                access_id: "kgtAAAA**************************************AAAA".into(),
                note: String::new(),
                status: TokenStatus::Enabled,
                created_by: "bench".into(),
            };
            store
                .create_bearer_token(&caps[i % caps.len()], &new, 2)
                .await
                .expect("create");
        }
        let (cpu, wall) = (cpu_us() - cpu, wall.elapsed());
        println!(
            "pass {pass}: {:.0} creates/s, {:.0} us wall and {:.0} us CPU a create",
            n as f64 / wall.as_secs_f64(),
            wall.as_micros() as f64 / n as f64,
            cpu / n as f64
        );
    }
}
