-- String values (a line-protocol string field, a Sparkplug String/Text
-- metric) as a TimescaleDB hypertable: the same keys and the same
-- idempotency as telemetry, written by the sink in the same transaction as
-- the batch's numeric points. The plain-PostgreSQL twin of this file gives
-- the same table and columns.
--
-- Invariants:
--   * (device_id, metric, time) is unique: a redelivered or republished value
--     is stored once (INSERT ... ON CONFLICT DO NOTHING relies on it).
--   * Not compressed and not aggregated (text has no average); retention is
--     telemetry's, kept equal to the config by `bridge db maintain`.
--   * The codecs bound a text's length (limits.max_text_bytes) and refuse
--     NUL, which PostgreSQL text cannot hold; the CHECK is the last guard.

CREATE TABLE telemetry_text (
    time      timestamptz NOT NULL,
    device_id text        NOT NULL,
    metric    text        NOT NULL,
    text      text        NOT NULL CHECK (octet_length(text) <= 65536),
    CONSTRAINT telemetry_text_device_metric_time_key UNIQUE (device_id, metric, time)
);
SELECT create_hypertable('telemetry_text', 'time', chunk_time_interval => INTERVAL '7 days');

SELECT add_retention_policy('telemetry_text',
    drop_after => make_interval(days => current_setting('bridge.retention_days')::int));
