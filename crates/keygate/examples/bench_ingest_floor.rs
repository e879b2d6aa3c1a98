//! The floor `scripts/bench-ingest` holds ingestion against: the least a durable write
//! of a batch of values can cost on this disk. `bench_ingest_floor PATH N BATCH` opens a
//! SQLite file as keygate does (WAL, `synchronous=FULL`, the same SQLite library), then
//! runs N transactions one after another, each `BEGIN IMMEDIATE`, BATCH inserts of
//! (series, time, value) into a table keyed like keygate's values, `COMMIT`, on one
//! thread, and prints the items a second and the p50 and p99 of one transaction, in
//! microseconds.
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
    let conn = floor_db::open(&path);
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS floor (series INTEGER NOT NULL, at_ms INTEGER NOT NULL, \
         value DOUBLE PRECISION NOT NULL, PRIMARY KEY (series, at_ms)) WITHOUT ROWID",
    )
    .expect("table");
    let mut took = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
        {
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
