INSERT INTO alarm_series (rule_id, device_id, metric, state, updated_at)
VALUES ($1, $2, $3, $4, now())
ON CONFLICT (rule_id, device_id, metric) DO UPDATE
    SET state = EXCLUDED.state, updated_at = now()
