//! What the floor benchmarks share: a SQLite file opened as keygate opens its own
//! (WAL, `synchronous=FULL`, the same SQLite library).

/// Opens (or creates) the floor's database at `path`.
pub fn open(path: &str) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).expect("open");
    conn.pragma_update(None, "journal_mode", "WAL")
        .or_else(|_| conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(())))
        .expect("wal");
    conn.pragma_update(None, "synchronous", "FULL")
        .expect("full");
    conn
}
