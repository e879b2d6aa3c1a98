-- keygate schema, version 2 (PostgreSQL): the audit log.
CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    -- No foreign key: entries outlive the users they name.
    user_id BIGINT,
    username TEXT NOT NULL,
    ip TEXT,
    action TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id BIGINT,
    target TEXT NOT NULL,
    success BOOLEAN NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log(at);
