-- keygate schema, version 1 (PostgreSQL): the same shape as SQLite's migrations 1–3.
CREATE TABLE portal (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    company_name TEXT NOT NULL,
    traces_enabled BOOLEAN NOT NULL,
    max_tokens_per_user BIGINT NOT NULL,
    lmv1_clock_skew_seconds BIGINT NOT NULL,
    lmv1_replay_protection BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE roles (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL
);
CREATE UNIQUE INDEX roles_name ON roles (lower(name));

CREATE TABLE role_privileges (
    role_id BIGINT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    object_type TEXT NOT NULL,
    object_id TEXT NOT NULL,
    operation TEXT NOT NULL,
    PRIMARY KEY (role_id, position)
);

CREATE TABLE users (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username TEXT NOT NULL,
    email TEXT NOT NULL,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    api_only BOOLEAN NOT NULL,
    note TEXT NOT NULL,
    password_hash TEXT,
    created_by TEXT NOT NULL,
    created_on BIGINT NOT NULL,
    last_login_on BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX users_username ON users (lower(username));

CREATE TABLE user_roles (
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role_id BIGINT NOT NULL REFERENCES roles(id) ON DELETE RESTRICT,
    position BIGINT NOT NULL,
    PRIMARY KEY (user_id, role_id)
);
CREATE INDEX user_roles_role ON user_roles(role_id);

CREATE TABLE api_tokens (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    type TEXT NOT NULL CHECK (type IN ('bearer', 'lmv1')),
    access_id TEXT NOT NULL,
    -- SHA-256 of a bearer token; the token itself is never stored.
    secret_hash BYTEA UNIQUE,
    -- An LMv1 access key sealed with AES-256-GCM under the master key.
    sealed_key BYTEA,
    note TEXT NOT NULL,
    status BIGINT NOT NULL CHECK (status IN (1, 2)),
    created_on BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    last_used_on BIGINT NOT NULL DEFAULT 0,
    last_auth_ip TEXT NOT NULL DEFAULT ''
);
CREATE INDEX api_tokens_user ON api_tokens(user_id);
CREATE UNIQUE INDEX api_tokens_lmv1_access_id ON api_tokens(access_id) WHERE type = 'lmv1';

-- Every committed change, in commit order (writers hold one advisory lock, so the
-- sequence is assigned in commit order): how each node's Verifier learns what to re-read.
CREATE TABLE change_log (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entity TEXT NOT NULL,
    entity_id BIGINT NOT NULL,
    digest BYTEA,
    access_id TEXT,
    changed_on BIGINT NOT NULL
);

CREATE TABLE meta (
    name TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE sessions (
    id_hash BYTEA PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    created_on BIGINT NOT NULL,
    last_seen_on BIGINT NOT NULL,
    pending_digest BYTEA,
    pending_access_id TEXT,
    pending_owner BIGINT
);
CREATE INDEX sessions_user ON sessions(user_id);
