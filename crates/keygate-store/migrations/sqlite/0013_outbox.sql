-- The forwarding outbox (SQLite version 13): OTLP exports queued in the transaction
-- that stored their data, deleted once delivered. `due_ms` is when an entry may be
-- sent next (a claim's lease or a retry's backoff moves it on); AUTOINCREMENT keeps
-- ids ascending in the order queued, never reused.
CREATE TABLE data_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    signal TEXT NOT NULL,
    content_type TEXT NOT NULL,
    body BLOB NOT NULL,
    queued_ms BIGINT NOT NULL,
    due_ms BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX data_outbox_due ON data_outbox(due_ms, id);
