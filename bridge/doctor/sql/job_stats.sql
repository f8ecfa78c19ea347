-- TimescaleDB jobs whose last run failed (job_stats may list a job once per
-- hypertable it touches: one row per job).
SELECT DISTINCT ON (j.job_id) j.job_id, j.proc_name, j.hypertable_name, s.total_failures, s.last_successful_finish
FROM timescaledb_information.jobs j
JOIN timescaledb_information.job_stats s ON s.job_id = j.job_id
WHERE s.last_run_status = 'Failed'
