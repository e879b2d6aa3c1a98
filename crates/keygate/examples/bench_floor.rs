//! The floor `scripts/bench-writes` holds token creation against: the least any
//! durable create can cost on this disk. `bench_floor PATH N` opens a SQLite file as
//! keygate does (WAL, `synchronous=FULL`, the same SQLite library), then runs N
//! times, one after another, `BEGIN IMMEDIATE; INSERT` of a 32-byte value `; COMMIT`
//! on that one thread (no hand-off to any other), and prints the rate and the p50 and
//! p99 of one such transaction, in microseconds.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::disallowed_methods)] // durations, not times of day

use std::time::Instant;

#[path = "common/floor_db.rs"]
mod floor_db;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("PATH");
    let n: usize = args.next().expect("N").parse().expect("N");
    let conn = floor_db::open(&path);
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS floor (id INTEGER PRIMARY KEY, v BLOB NOT NULL)",
    )
    .expect("table");
    let mut took = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        let mut v = [0u8; 32];
        v[..8].copy_from_slice(&(i as u64).to_le_bytes());
        conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
        conn.prepare_cached("INSERT INTO floor (v) VALUES (?1)")
            .expect("prepare")
            .execute([&v[..]])
            .expect("insert");
        conn.execute_batch("COMMIT").expect("commit");
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
