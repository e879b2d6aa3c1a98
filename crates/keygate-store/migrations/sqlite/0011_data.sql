-- Ingested data (SQLite version 11; PostgreSQL version 9 has the same shape): what
-- tokens with DataIngestion push through /rest. Resources are keyed by their
-- resourceIds (canonical JSON, keys sorted); values by datapoint and time, so a value
-- sent again replaces the first. Logs keep the resourceIds they were sent with, and the
-- resource they matched when one existed.
CREATE TABLE data_resources (
    id INTEGER PRIMARY KEY,
    resource_key TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    properties TEXT NOT NULL,
    created_by INTEGER NOT NULL,
    created_on INTEGER NOT NULL,
    updated_on INTEGER NOT NULL
);
CREATE TABLE data_instances (
    id INTEGER PRIMARY KEY,
    resource_id INTEGER NOT NULL REFERENCES data_resources(id) ON DELETE CASCADE,
    datasource TEXT NOT NULL,
    datasource_display TEXT NOT NULL,
    datasource_group TEXT NOT NULL,
    instance TEXT NOT NULL,
    instance_display TEXT NOT NULL,
    properties TEXT NOT NULL,
    updated_on INTEGER NOT NULL,
    UNIQUE (resource_id, datasource, instance)
);
CREATE TABLE data_datapoints (
    id INTEGER PRIMARY KEY,
    instance_id INTEGER NOT NULL REFERENCES data_instances(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    aggregation TEXT NOT NULL,
    percentile INTEGER,
    UNIQUE (instance_id, name)
);
CREATE TABLE data_values (
    datapoint_id INTEGER NOT NULL REFERENCES data_datapoints(id) ON DELETE CASCADE,
    at_ms INTEGER NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (datapoint_id, at_ms)
) WITHOUT ROWID;
CREATE INDEX data_values_at ON data_values(at_ms);
CREATE TABLE data_logs (
    id INTEGER PRIMARY KEY,
    resource_id INTEGER REFERENCES data_resources(id) ON DELETE SET NULL,
    resource_key TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    metadata TEXT NOT NULL,
    sent_by INTEGER NOT NULL
);
CREATE INDEX data_logs_at ON data_logs(at_ms);
CREATE INDEX data_logs_resource ON data_logs(resource_id, at_ms);
