-- Telemetry on plain PostgreSQL: native range partitions by UTC day, and
-- rollup tables with the same names and columns as TimescaleDB's continuous
-- aggregates, kept exact by `bridge db maintain` (bridge_maintain()).
--
-- Invariants:
--   * telemetry_pYYYYMMDD holds [day 00:00 UTC, next day 00:00 UTC).
--   * telemetry_default catches rows with no day partition yet; creating that
--     day's partition moves them in, so no write ever fails for want of one.
--   * Every insert records its time range in telemetry_rollup_pending (a
--     statement trigger, in the writer's transaction); a refresh consumes the
--     pending ranges and recomputes whole hours of both rollups from raw rows.

CREATE TABLE telemetry (
    time      timestamptz      NOT NULL,
    device_id text             NOT NULL,
    metric    text             NOT NULL,
    value     double precision NOT NULL,
    -- Idempotent writes (INSERT ... ON CONFLICT DO NOTHING) rely on this.
    CONSTRAINT telemetry_device_metric_time_key UNIQUE (device_id, metric, time)
) PARTITION BY RANGE (time);
CREATE INDEX telemetry_time_idx ON telemetry (time DESC);
CREATE TABLE telemetry_default PARTITION OF telemetry DEFAULT;

CREATE TABLE telemetry_1m (
    bucket    timestamptz NOT NULL,
    device_id text        NOT NULL,
    metric    text        NOT NULL,
    avg double precision, sum double precision, min double precision, max double precision,
    count bigint, first double precision, last double precision,
    PRIMARY KEY (device_id, metric, bucket)
);
CREATE INDEX telemetry_1m_bucket_idx ON telemetry_1m (bucket DESC);

CREATE TABLE telemetry_1h (LIKE telemetry_1m INCLUDING ALL);

CREATE TABLE telemetry_rollup_pending (
    lo timestamptz NOT NULL,
    hi timestamptz NOT NULL
);

CREATE FUNCTION bridge_note_rollup_pending() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO telemetry_rollup_pending (lo, hi)
    SELECT min(time), max(time) FROM new_rows HAVING count(*) > 0;
    RETURN NULL;
END $$;

CREATE TRIGGER telemetry_rollup_pending_trg
    AFTER INSERT ON telemetry REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION bridge_note_rollup_pending();

-- Creates the partition for one UTC day, moving in any rows that wait in the
-- default partition. Returns false when it already exists.
CREATE FUNCTION bridge_create_partition(day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    part text := 'telemetry_p' || to_char(day, 'YYYYMMDD');
    lo timestamptz := day::timestamp AT TIME ZONE 'UTC';
    hi timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE telemetry INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
    EXECUTE format(
        'WITH moved AS (DELETE FROM telemetry_default WHERE time >= $1 AND time < $2 RETURNING *) '
        'INSERT INTO %I SELECT * FROM moved', part) USING lo, hi;
    EXECUTE format('ALTER TABLE telemetry ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   part, lo, hi);
    RETURN true;
END $$;

-- Drops day partitions that end on or before the cutoff, and deletes older
-- rows from the default partition. Returns the number of partitions dropped.
CREATE FUNCTION bridge_drop_partitions_before(cutoff date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    part record;
    dropped integer := 0;
BEGIN
    FOR part IN
        SELECT c.relname
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'telemetry'::regclass
          AND c.relname ~ '^telemetry_p[0-9]{8}$'
          AND to_date(substr(c.relname, 12), 'YYYYMMDD') + 1 <= cutoff
    LOOP
        EXECUTE format('DROP TABLE %I', part.relname);
        dropped := dropped + 1;
    END LOOP;
    DELETE FROM telemetry_default WHERE time < cutoff::timestamp AT TIME ZONE 'UTC';
    RETURN dropped;
END $$;

-- Recomputes every hour touched since the last refresh, in both rollups.
-- Serialised by an advisory lock. A writer that commits during a refresh
-- leaves its pending range for the next one, so nothing is missed.
CREATE FUNCTION bridge_refresh_rollups() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    hours integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('bridge_refresh_rollups'));
    FOR r IN
        WITH taken AS (
            DELETE FROM telemetry_rollup_pending RETURNING lo, hi
        ), spans AS (
            SELECT date_trunc('hour', lo, 'UTC') AS lo,
                   date_trunc('hour', hi, 'UTC') + INTERVAL '1 hour' AS hi
            FROM taken
        ), marked AS (
            SELECT lo, hi,
                   CASE WHEN lo <= max(hi) OVER (ORDER BY lo, hi ROWS BETWEEN UNBOUNDED PRECEDING
                                                  AND 1 PRECEDING)
                        THEN 0 ELSE 1 END AS starts
            FROM spans
        ), grouped AS (
            SELECT lo, hi, sum(starts) OVER (ORDER BY lo, hi) AS grp FROM marked
        )
        SELECT min(lo) AS lo, max(hi) AS hi FROM grouped GROUP BY grp
    LOOP
        DELETE FROM telemetry_1m WHERE bucket >= r.lo AND bucket < r.hi;
        INSERT INTO telemetry_1m
        SELECT date_trunc('minute', time, 'UTC'), device_id, metric,
               avg(value), sum(value), min(value), max(value), count(*),
               (array_agg(value ORDER BY time))[1], (array_agg(value ORDER BY time DESC))[1]
        FROM telemetry WHERE time >= r.lo AND time < r.hi
        GROUP BY 1, 2, 3;

        DELETE FROM telemetry_1h WHERE bucket >= r.lo AND bucket < r.hi;
        INSERT INTO telemetry_1h
        SELECT date_trunc('hour', time, 'UTC'), device_id, metric,
               avg(value), sum(value), min(value), max(value), count(*),
               (array_agg(value ORDER BY time))[1], (array_agg(value ORDER BY time DESC))[1]
        FROM telemetry WHERE time >= r.lo AND time < r.hi
        GROUP BY 1, 2, 3;

        hours := hours + (extract(epoch FROM r.hi - r.lo) / 3600)::integer;
    END LOOP;
    RETURN hours;
END $$;

-- Partitions around today, so the first writes land in place.
SELECT bridge_create_partition(d::date)
FROM generate_series((now() AT TIME ZONE 'UTC')::date - 1, (now() AT TIME ZONE 'UTC')::date + 7,
                     INTERVAL '1 day') AS d;
