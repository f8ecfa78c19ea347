-- Telemetry as a TimescaleDB hypertable, with compression, continuous
-- aggregates and retention. The plain-PostgreSQL twin of this file gives the
-- same tables and columns, so queries and dashboards work in both modes.
-- bridge.retention_days is set by the migration runner from the config.

CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE telemetry (
    time      timestamptz      NOT NULL,
    device_id text             NOT NULL,
    metric    text             NOT NULL,
    value     double precision NOT NULL,
    -- Idempotent writes (INSERT ... ON CONFLICT DO NOTHING) rely on this.
    CONSTRAINT telemetry_device_metric_time_key UNIQUE (device_id, metric, time)
);
SELECT create_hypertable('telemetry', 'time', chunk_time_interval => INTERVAL '1 day');

ALTER TABLE telemetry SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'device_id, metric',
    timescaledb.compress_orderby = 'time DESC'
);
SELECT add_compression_policy('telemetry', INTERVAL '7 days');

-- Real-time aggregation (materialized_only = false): the newest buckets that
-- the policy has not refreshed yet are computed from raw rows at query time.
CREATE MATERIALIZED VIEW telemetry_1m
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 minute', time) AS bucket,
       device_id, metric,
       avg(value) AS avg, sum(value) AS sum, min(value) AS min, max(value) AS max,
       count(*) AS count, first(value, time) AS first, last(value, time) AS last
FROM telemetry
GROUP BY bucket, device_id, metric
WITH NO DATA;

CREATE MATERIALIZED VIEW telemetry_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', time) AS bucket,
       device_id, metric,
       avg(value) AS avg, sum(value) AS sum, min(value) AS min, max(value) AS max,
       count(*) AS count, first(value, time) AS first, last(value, time) AS last
FROM telemetry
GROUP BY bucket, device_id, metric
WITH NO DATA;

-- Refresh windows stay well inside retention, so dropping old raw chunks never
-- erases aggregates.
SELECT add_continuous_aggregate_policy('telemetry_1m',
    start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 minute',
    schedule_interval => INTERVAL '1 minute');
SELECT add_continuous_aggregate_policy('telemetry_1h',
    start_offset => INTERVAL '7 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '15 minutes');

SELECT add_retention_policy('telemetry',
    drop_after => make_interval(days => current_setting('bridge.retention_days')::int));
