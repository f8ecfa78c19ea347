"""The sink's SQL statements (bridge.sink.timescale says when each runs)."""

STAGING = "bridge_staging"
CREATE_STAGING = f"""
CREATE TEMPORARY TABLE IF NOT EXISTS {STAGING} (
    time_us bigint NOT NULL, device_id text NOT NULL, metric text NOT NULL,
    value double precision NOT NULL
) ON COMMIT DELETE ROWS"""
INSERT = f"""
INSERT INTO telemetry (time, device_id, metric, value)
SELECT TIMESTAMPTZ 'epoch' + time_us * INTERVAL '1 microsecond', device_id, metric, value
FROM {STAGING}
ON CONFLICT DO NOTHING"""
# Text values, few per batch: one statement from arrays (db/migrations/0006).
INSERT_TEXT = """
INSERT INTO telemetry_text (time, device_id, metric, text)
SELECT TIMESTAMPTZ 'epoch' + t * INTERVAL '1 microsecond', d, m, x
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS u(t, d, m, x)
ON CONFLICT DO NOTHING"""
# Idempotent under redelivery: the natural key of db/migrations/0005_dead_letter_key.sql.
DEAD_LETTER = """
INSERT INTO rejected_messages
    (received_at, topic, reason, detail, payload, payload_size, dedup_key)
SELECT TIMESTAMPTZ 'epoch' + r * INTERVAL '1 microsecond', t, reason, detail, p, size, k.now
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::int[])
     AS u(r, t, reason, detail, p, size),
LATERAL (
    SELECT sha256(what || int8send(CASE WHEN exact THEN r ELSE r / 3600000000 END)) AS now,
           sha256(what || int8send(CASE WHEN exact THEN r ELSE r / 3600000000 - 1 END)) AS before
    FROM (SELECT int4send(octet_length(t)) || convert_to(t, 'UTF8')
                 || int4send(octet_length(reason)) || convert_to(reason, 'UTF8')
                 || int4send(octet_length(coalesce(detail, '')))
                 || convert_to(coalesce(detail, ''), 'UTF8')
                 || int4send(size) || coalesce(p, ''::bytea) AS what,
                 reason = 'db_rejected' AS exact) AS w
) AS k
WHERE NOT EXISTS (SELECT 1 FROM rejected_messages x WHERE x.dedup_key = k.before)
ON CONFLICT (dedup_key) DO NOTHING"""
# last_seen is refreshed at most this often per device: far finer than the
# API's online threshold (api.online_after_s, 300 s), and coarse enough that a
# fleet reporting every few seconds does not rewrite its registry rows (three
# indexes each) once a message (at 5 s, in a bench of 100,000 devices each
# reporting every ~6 s, every message did: bench/README.md, cardinality).
REGISTRY_REFRESH_S = 30
# Touches a device row only when something changed or last_seen is stale, so
# a busy fleet does not rewrite its registry rows on every batch. The NOT
# EXISTS leaves out, with one index lookup, the devices the DO UPDATE's WHERE
# would leave alone: ON CONFLICT locks the row before it reads that WHERE,
# which dirties its page. It makes a device the worker's registry cache has
# forgotten cheap.
REGISTRY = f"""
INSERT INTO devices AS d (device_id, site_id, first_seen, last_seen, status)
SELECT id, site, now(), now(), 'online' FROM unnest($1::text[], $2::text[]) AS u(id, site)
WHERE NOT EXISTS (
    SELECT 1 FROM devices x
    WHERE x.device_id = u.id AND x.status = 'online'
      AND x.last_seen >= now() - INTERVAL '{REGISTRY_REFRESH_S} seconds'
      AND (u.site IS NULL OR x.site_id = u.site))
ON CONFLICT (device_id) DO UPDATE
SET last_seen = excluded.last_seen, status = 'online',
    site_id = coalesce(excluded.site_id, d.site_id)
WHERE d.last_seen IS NULL
   OR d.last_seen < excluded.last_seen - INTERVAL '{REGISTRY_REFRESH_S} seconds'
   OR d.status <> 'online' OR d.site_id IS DISTINCT FROM coalesce(excluded.site_id, d.site_id)"""

# Points and registry as one statement: one round trip, atomic on its own.
# Data-modifying CTEs all run.
ONE_STATEMENT = f"""
WITH registry AS ({REGISTRY.strip()}),
stored AS (
    INSERT INTO telemetry (time, device_id, metric, value)
    SELECT TIMESTAMPTZ 'epoch' + t * INTERVAL '1 microsecond', d, m, v
    FROM unnest($3::bigint[], $4::text[], $5::text[], $6::float8[]) AS u(t, d, m, v)
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT count(*) FROM stored"""
# The same without ON CONFLICT: cheaper for the database per row (it neither
# probes the unique index before each insert nor confirms a speculative
# one), and right whenever no point of the batch is stored yet, which is
# nearly always. A batch that meets a stored point fails whole (one
# statement: nothing of it stays) and is written again with ONE_STATEMENT.
ONE_STATEMENT_FIRST_TIME = f"""
WITH registry AS ({REGISTRY.strip()})
INSERT INTO telemetry (time, device_id, metric, value)
SELECT TIMESTAMPTZ 'epoch' + t * INTERVAL '1 microsecond', d, m, v
FROM unnest($3::bigint[], $4::text[], $5::text[], $6::float8[]) AS u(t, d, m, v)"""
