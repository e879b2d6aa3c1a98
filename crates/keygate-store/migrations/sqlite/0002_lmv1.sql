-- keygate schema, version 2 (SQLite): LMv1 tokens.
-- The access key, sealed with AES-256-GCM under the master key (token id as
-- associated data); NULL for bearer tokens.
ALTER TABLE api_tokens ADD COLUMN sealed_key BLOB;
CREATE UNIQUE INDEX api_tokens_lmv1_access_id ON api_tokens(access_id) WHERE type = 'lmv1';
-- For a deleted LMv1 token, so every index can drop it.
ALTER TABLE change_log ADD COLUMN access_id TEXT;
ALTER TABLE portal ADD COLUMN lmv1_replay_protection INTEGER NOT NULL DEFAULT 0;
-- Store-wide facts, such as the master key's check value (never the key).
CREATE TABLE meta (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
