-- Token use by time (SQLite version 9, PostgreSQL version 7): every node keeps token
-- rows in memory for management reads, and picks up what other nodes recorded of
-- their tokens' use with a range read on last_used_on instead of a scan of every row.
-- The text reads alike in both dialects.
CREATE INDEX IF NOT EXISTS api_tokens_last_used ON api_tokens(last_used_on);
