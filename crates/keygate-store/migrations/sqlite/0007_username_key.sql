-- keygate schema, version 7 (SQLite): a username's identity and look, computed by
-- keygate (keygate_core::username) so both backends agree; filled in for existing
-- users and indexed by the start-up step that follows the migrations.
ALTER TABLE users ADD COLUMN username_key TEXT;
ALTER TABLE users ADD COLUMN username_skeleton TEXT;
