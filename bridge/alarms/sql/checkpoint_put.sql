INSERT INTO alarm_checkpoint (stream, last_id, updated_at) VALUES ($1, $2, now())
ON CONFLICT (stream) DO UPDATE SET last_id = EXCLUDED.last_id, updated_at = now()
