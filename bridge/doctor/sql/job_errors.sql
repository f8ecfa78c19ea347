-- TimescaleDB background jobs that failed in the last day (2.9 or later).
SELECT job_id, proc_name, start_time, finish_time, sqlerrcode, err_message
FROM timescaledb_information.job_errors
WHERE finish_time > now() - interval '1 day'
ORDER BY finish_time DESC
LIMIT 10
