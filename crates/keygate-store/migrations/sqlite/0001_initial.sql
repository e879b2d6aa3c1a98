-- keygate schema, version 1 (SQLite).
CREATE TABLE portal (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    company_name TEXT NOT NULL,
    traces_enabled INTEGER NOT NULL,
    max_tokens_per_user INTEGER NOT NULL,
    lmv1_clock_skew_seconds INTEGER NOT NULL
);

CREATE TABLE roles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    description TEXT NOT NULL
);

CREATE TABLE role_privileges (
    role_id INTEGER NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    object_type TEXT NOT NULL,
    object_id TEXT NOT NULL,
    operation TEXT NOT NULL,
    PRIMARY KEY (role_id, position)
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE COLLATE NOCASE,
    email TEXT NOT NULL,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    api_only INTEGER NOT NULL,
    note TEXT NOT NULL,
    password_hash TEXT,
    created_by TEXT NOT NULL,
    created_on INTEGER NOT NULL,
    last_login_on INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE user_roles (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role_id INTEGER NOT NULL REFERENCES roles(id) ON DELETE RESTRICT,
    position INTEGER NOT NULL,
    PRIMARY KEY (user_id, role_id)
);
CREATE INDEX user_roles_role ON user_roles(role_id);

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    type TEXT NOT NULL CHECK (type IN ('bearer', 'lmv1')),
    access_id TEXT NOT NULL,
    -- SHA-256 of a bearer token; the token itself is never stored.
    secret_hash BLOB UNIQUE,
    note TEXT NOT NULL,
    status INTEGER NOT NULL CHECK (status IN (1, 2)),
    created_on INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    last_used_on INTEGER NOT NULL DEFAULT 0,
    last_auth_ip TEXT NOT NULL DEFAULT ''
);
CREATE INDEX api_tokens_user ON api_tokens(user_id);

-- Every committed change, in commit order: how each Verifier (this process, the
-- admin CLI's writes, other nodes) learns what to re-read.
CREATE TABLE change_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    entity TEXT NOT NULL,
    entity_id INTEGER NOT NULL,
    digest BLOB,
    changed_on INTEGER NOT NULL
);
