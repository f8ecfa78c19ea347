-- time_bucket(interval, timestamptz) as TimescaleDB defines it, for plain
-- PostgreSQL: so the same SQL runs in both modes, including Grafana's
-- $__timeGroup macros, which a PostgreSQL datasource with the TimescaleDB flag
-- expands to time_bucket('60.000s', col).
--
-- Buckets are aligned like TimescaleDB's default: on 2000-01-03 00:00 UTC (a
-- Monday; 946857600 s after the epoch), so weekly buckets start on Mondays and
-- every width that divides a day starts at midnight UTC. Fixed widths only
-- (seconds to weeks): TimescaleDB's calendar months have no twin here, and no
-- query of ours needs them. Exact to the microsecond (numeric arithmetic).
CREATE FUNCTION time_bucket(bucket_width interval, ts timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT TIMESTAMPTZ 'epoch' + (
        (946857600 + floor((extract(epoch FROM ts) - 946857600) / extract(epoch FROM bucket_width))
                     * extract(epoch FROM bucket_width)) * 1000000
    )::bigint * INTERVAL '1 microsecond'
$$;
