-- Where the evaluator's changed series are copied before one merge
-- (series_merge.sql): COPY is many times faster than a row at a time.
CREATE TEMP TABLE IF NOT EXISTS alarm_series_in (
    rule_id   bigint,
    device_id text,
    metric    text,
    state     jsonb
) ON COMMIT DELETE ROWS
