//! The floor `scripts/bench-ingest` holds ingestion against: the least a durable write
//! of a batch of values can cost on this disk. `bench_ingest_floor PATH N BATCH` opens a
//! SQLite file as keygate does (WAL, `synchronous=FULL`, the same SQLite library), then
//! runs N transactions one after another, each `BEGIN IMMEDIATE`, BATCH inserts of
//! (series, time, value) into a table keyed like keygate's values, `COMMIT`, on one
//! thread, and prints the items a second and the p50 and p99 of one transaction, in
//! microseconds. `bench_ingest_floor PATH N BATCH logs` writes log rows instead: the
//! columns and indexes of keygate's `data_logs` (the table and its time and resource
//! indexes), each row what `scripts/bench-ingest` pushes as a log line — the floor of
//! storing that row, whatever serves it.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::disallowed_methods)] // durations, not times of day

use std::time::Instant;

#[path = "common/floor_db.rs"]
mod floor_db;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("PATH");
    let n: usize = args.next().expect("N").parse().expect("N");
    let batch: usize = args.next().expect("BATCH").parse().expect("BATCH");
    let logs = args.next().as_deref() == Some("logs");
    let conn = floor_db::open(&path);
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS floor (series INTEGER NOT NULL, at_ms INTEGER NOT NULL, \
         value DOUBLE PRECISION NOT NULL, PRIMARY KEY (series, at_ms)) WITHOUT ROWID; \
         CREATE TABLE IF NOT EXISTS floor_logs (id INTEGER PRIMARY KEY, resource_id INTEGER, \
         resource_key TEXT NOT NULL, at_ms INTEGER NOT NULL, level TEXT NOT NULL, \
         message TEXT NOT NULL, metadata TEXT NOT NULL, sent_by INTEGER NOT NULL); \
         CREATE INDEX IF NOT EXISTS floor_logs_at ON floor_logs(at_ms); \
         CREATE INDEX IF NOT EXISTS floor_logs_resource ON floor_logs(resource_id, at_ms)",
    )
    .expect("tables");
    let mut took = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
        if logs {
            let mut insert = conn
                .prepare_cached(
                    "INSERT INTO floor_logs (resource_id, resource_key, at_ms, level, message, \
                     metadata, sent_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .expect("prepare");
            for j in 0..batch {
                insert
                    .execute(rusqlite::params![
                        1_i64,
                        r#"{"system.hostname":"bench"}"#,
                        (1_700_000_000_000 + i * 1000) as i64,
                        "info",
                        format!("request {i}-{j} served in 12 ms"),
                        "{}",
                        2_i64
                    ])
                    .expect("insert");
            }
        } else {
            let mut insert = conn
                .prepare_cached("INSERT INTO floor (series, at_ms, value) VALUES (?1, ?2, ?3)")
                .expect("prepare");
            for j in 0..batch {
                insert
                    .execute(rusqlite::params![
                        (j % 10) as i64,
                        (i * batch + j) as i64,
                        j as f64
                    ])
                    .expect("insert");
            }
        }
        conn.execute_batch("COMMIT").expect("commit");
        took.push(t.elapsed().as_micros() as u64);
    }
    let secs = start.elapsed().as_secs_f64();
    took.sort_unstable();
    println!(
        "{:.0} {} {}",
        (n * batch) as f64 / secs,
        took[n / 2],
        took[(n * 99 / 100).min(n - 1)]
    );
}
