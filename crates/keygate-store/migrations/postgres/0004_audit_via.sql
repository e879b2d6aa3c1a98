-- keygate schema, version 4 (PostgreSQL): the token a change was made with, and that
-- token's creator when it was made for someone else.
ALTER TABLE audit_log ADD COLUMN via_token_id BIGINT;
ALTER TABLE audit_log ADD COLUMN via_token TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_log ADD COLUMN via_token_created_by TEXT NOT NULL DEFAULT '';
