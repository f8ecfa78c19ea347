-- Plain PostgreSQL: the day partitions of telemetry (telemetry_pYYYYMMDD) and
-- the rows waiting in the default partition (counted up to 100,000).
SELECT array(SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'telemetry'::regclass AND c.relname ~ '^telemetry_p[0-9]{8}$'
             ORDER BY c.relname) AS days,
       (SELECT count(*) FROM (SELECT 1 FROM telemetry_default LIMIT 100000) AS d) AS default_rows
