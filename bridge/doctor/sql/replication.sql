-- Streaming replicas of this primary and how far behind each replays.
SELECT application_name, coalesce(client_addr::text, 'local') AS client, state,
       coalesce(extract(epoch FROM replay_lag), 0)::float8 AS replay_lag_s,
       coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::float8 AS behind_bytes
FROM pg_stat_replication
