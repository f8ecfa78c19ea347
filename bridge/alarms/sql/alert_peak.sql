UPDATE alerts SET peak_value = $4, updated_at = now()
WHERE rule_id = $1 AND device_id = $2 AND metric = $3
  AND status IN ('active', 'acknowledged') AND peak_value IS DISTINCT FROM $4
