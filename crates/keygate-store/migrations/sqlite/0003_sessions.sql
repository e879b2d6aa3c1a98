-- keygate schema, version 3 (SQLite): web UI sessions.
CREATE TABLE sessions (
    -- SHA-256 of the session id; the id itself lives only in the browser's cookie.
    id_hash BLOB PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- Sent back in X-CSRF-Token on every change; useless without the cookie.
    csrf TEXT NOT NULL,
    created_on INTEGER NOT NULL,
    last_seen_on INTEGER NOT NULL,
    -- A bearer token generated on the Add page but not saved: digest and mask only.
    pending_digest BLOB,
    pending_access_id TEXT,
    pending_owner INTEGER
);
CREATE INDEX sessions_user ON sessions(user_id);
