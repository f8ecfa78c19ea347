-- Client connections to this server by user, application and database, with
-- how many are busy (not idle) and how many wait on a lock.
SELECT usename, application_name, datname,
       count(*) AS total,
       count(*) FILTER (WHERE state <> 'idle') AS busy,
       count(*) FILTER (WHERE wait_event_type = 'Lock') AS waiting_on_locks
FROM pg_stat_activity
WHERE backend_type = 'client backend'
GROUP BY usename, application_name, datname
ORDER BY total DESC
