-- TimescaleDB: the telemetry hypertable's chunks, how many are compressed,
-- and the oldest chunk and the oldest uncompressed one.
SELECT count(*) AS chunks,
       count(*) FILTER (WHERE is_compressed) AS compressed,
       min(range_start) AS oldest,
       min(range_end) FILTER (WHERE NOT is_compressed) AS oldest_uncompressed_end
FROM timescaledb_information.chunks
WHERE hypertable_name = 'telemetry'
