-- TimescaleDB brings time_bucket(interval, timestamptz) itself; its plain
-- PostgreSQL twin defines one that buckets the same way. This only checks that
-- the function the dashboards rely on is there.
SELECT 'time_bucket(interval, timestamptz)'::regprocedure;
