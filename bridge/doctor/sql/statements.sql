-- The statements that cost the most in total among those slower than $1 ms
-- on average (pg_stat_statements, PostgreSQL 13 or later).
SELECT calls, mean_exec_time::float8 AS mean_ms, total_exec_time::float8 AS total_ms,
       left(query, 160) AS query
FROM pg_stat_statements
WHERE mean_exec_time > $1
ORDER BY total_exec_time DESC
LIMIT 5
