INSERT INTO alarm_events (alert_id, transition, at, body) VALUES ($1, $2, $3, $4)
