-- keygate schema, version 4 (SQLite): the audit log.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    -- No foreign key: entries outlive the users they name.
    user_id INTEGER,
    username TEXT NOT NULL,
    ip TEXT,
    action TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id INTEGER,
    target TEXT NOT NULL,
    success INTEGER NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log(at);
