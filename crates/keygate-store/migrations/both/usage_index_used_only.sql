-- Token use by time, for used tokens only (SQLite version 10, PostgreSQL version 8):
-- a new token (last_used_on 0) no longer writes an index page when it is created, one
-- of the dozen pages a create writes and syncs. The range read that follows other
-- nodes' use asks for last_used_on > 0, so it still reads this index. The text reads
-- alike in both dialects.
DROP INDEX IF EXISTS api_tokens_last_used;
CREATE INDEX api_tokens_last_used ON api_tokens(last_used_on) WHERE last_used_on > 0;
