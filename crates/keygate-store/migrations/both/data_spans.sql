-- Spans pushed over OTLP (SQLite version 12, PostgreSQL version 10): keyed by trace and
-- span id, so a span sent again (an exporter's retry) is stored once. Times are epoch
-- nanoseconds, as OTLP carries them. The text reads alike in both dialects.
CREATE TABLE data_spans (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_span_id TEXT NOT NULL,
    service TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    start_ns BIGINT NOT NULL,
    end_ns BIGINT NOT NULL,
    status TEXT NOT NULL,
    status_message TEXT NOT NULL,
    attributes TEXT NOT NULL,
    resource TEXT NOT NULL,
    sent_by BIGINT NOT NULL,
    PRIMARY KEY (trace_id, span_id)
);
CREATE INDEX data_spans_start ON data_spans(start_ns);
CREATE INDEX data_spans_service ON data_spans(service, start_ns);
