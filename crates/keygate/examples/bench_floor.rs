//! The floor `scripts/bench-writes` holds token creation against: the least any
//! durable create can cost on this disk. `bench_floor PATH N` opens a SQLite file as
//! keygate does (WAL, `synchronous=FULL`), then runs N times, one after another,
//! `BEGIN IMMEDIATE; INSERT` of a 32-byte value `; COMMIT`, and prints the rate and
//! the p50 and p99 of one such transaction, in microseconds.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::disallowed_methods)] // durations, not times of day

use std::str::FromStr;
use std::time::Instant;

use sqlx::ConnectOptions as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("PATH");
    let n: usize = args.next().expect("N").parse().expect("N");
    let mut conn = SqliteConnectOptions::from_str("sqlite:")
        .unwrap()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .connect()
        .await
        .unwrap();
    sqlx::query("CREATE TABLE IF NOT EXISTS floor (id INTEGER PRIMARY KEY, v BLOB NOT NULL)")
        .execute(&mut conn)
        .await
        .unwrap();
    let mut took = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        let mut v = [0u8; 32];
        v[..8].copy_from_slice(&(i as u64).to_le_bytes());
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("INSERT INTO floor (v) VALUES ($1)")
            .bind(&v[..])
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("COMMIT").execute(&mut conn).await.unwrap();
        took.push(t.elapsed().as_micros() as u64);
    }
    let secs = start.elapsed().as_secs_f64();
    took.sort_unstable();
    println!(
        "{:.0} {} {}",
        n as f64 / secs,
        took[n / 2],
        took[(n * 99 / 100).min(n - 1)]
    );
}
