-- Statements running (or transactions open) for longer than $1 seconds,
-- the doctor's own connection left out.
SELECT pid, usename, application_name, state, wait_event_type,
       extract(epoch FROM clock_timestamp() - coalesce(query_start, xact_start))::float8 AS seconds,
       left(query, 160) AS query
FROM pg_stat_activity
WHERE backend_type = 'client backend'
  AND state <> 'idle'
  AND pid <> pg_backend_pid()
  AND coalesce(query_start, xact_start) < clock_timestamp() - make_interval(secs => $1)
ORDER BY coalesce(query_start, xact_start)
LIMIT 10
