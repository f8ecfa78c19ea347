-- Closes the open alarm of a (rule, series), if there is one.
UPDATE alerts SET status = 'resolved', resolved_at = $4, resolved_by = $5,
                  peak_value = coalesce($6, peak_value), updated_at = now()
WHERE rule_id = $1 AND device_id = $2 AND metric = $3
  AND status IN ('active', 'acknowledged')
RETURNING id
