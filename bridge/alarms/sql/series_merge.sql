INSERT INTO alarm_series (rule_id, device_id, metric, state, updated_at)
SELECT rule_id, device_id, metric, state, now() FROM alarm_series_in
ON CONFLICT (rule_id, device_id, metric) DO UPDATE
    SET state = EXCLUDED.state, updated_at = now()
