"""The SQL of the Sparkplug birth store (bridge.sparkplug.store)."""

# One bigint key for the Sparkplug role: whoever holds it reads spBv1.0/.
ROLE_LOCK = 0x5350_4256_3130  # "SPBV10"

TAKE_ROLE = "SELECT pg_try_advisory_lock($1)"

LOAD = """
SELECT group_id, edge_node_id, device, bd_seq, metrics::text
FROM sparkplug_births ORDER BY group_id, edge_node_id, device"""

FORGET_DEVICES = """
DELETE FROM sparkplug_births WHERE group_id = $1 AND edge_node_id = $2 AND device <> ''"""

SAVE_BIRTH = """
INSERT INTO sparkplug_births (group_id, edge_node_id, device, bd_seq, metrics, born_at)
VALUES ($1, $2, $3, $4, $5::jsonb, now())
ON CONFLICT (group_id, edge_node_id, device) DO UPDATE
SET bd_seq = excluded.bd_seq, metrics = excluded.metrics, born_at = excluded.born_at"""

SAVE_STATUS = """
INSERT INTO devices AS d (device_id, site_id, first_seen, lifecycle, lifecycle_at)
VALUES ($1, $2, now(), $3, now())
ON CONFLICT (device_id) DO UPDATE
SET lifecycle = excluded.lifecycle, lifecycle_at = excluded.lifecycle_at,
    site_id = coalesce(d.site_id, excluded.site_id)"""
