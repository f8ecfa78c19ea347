-- String values (a line-protocol string field, a Sparkplug String/Text
-- metric) on plain PostgreSQL: the same keys and the same idempotency as
-- telemetry, written by the sink in the same transaction as the batch's
-- numeric points.
--
-- Invariants:
--   * (device_id, metric, time) is unique: a redelivered or republished value
--     is stored once (INSERT ... ON CONFLICT DO NOTHING relies on it).
--   * A series is numeric or text by what arrived: a metric may hold both,
--     in the two tables; the API reads each with its own route.
--   * Not partitioned and not rolled up (text has no average): `bridge db
--     maintain` deletes rows past retention, as it does dead letters.
--   * The codecs bound a text's length (limits.max_text_bytes) and refuse
--     NUL, which PostgreSQL text cannot hold; the CHECK is the last guard.

CREATE TABLE telemetry_text (
    time      timestamptz NOT NULL,
    device_id text        NOT NULL,
    metric    text        NOT NULL,
    text      text        NOT NULL CHECK (octet_length(text) <= 65536),
    CONSTRAINT telemetry_text_device_metric_time_key UNIQUE (device_id, metric, time)
);
CREATE INDEX telemetry_text_time_idx ON telemetry_text (time DESC);
