-- Recent alarms fleet-wide, newest first, paged by (created_at, id) through
-- idx_alerts_recent. $1..$2: time range; $3..$6: optional filters (NULL:
-- any); $7, $8: the cursor (NULL on the first page); $9: page size + 1.
SELECT a.id, a.device_id, a.metric, a.severity, a.status, a.created_at, a.resolved_at,
       a.details, a.rule_id, a.site_id, a.peak_value, a.trigger_value, a.acknowledged_by,
       a.acknowledged_at, a.ack_note, a.resolved_by, a.updated_at
FROM alerts a
WHERE a.created_at >= $1 AND a.created_at < $2
  AND ($3::text IS NULL OR a.site_id = $3)
  AND ($4::text IS NULL OR a.device_id = $4)
  AND ($5::text IS NULL OR a.severity = $5)
  AND ($6::text IS NULL OR a.status = $6)
  AND ($7::timestamptz IS NULL OR (a.created_at, a.id) < ($7, $8))
ORDER BY a.created_at DESC, a.id DESC
LIMIT $9
