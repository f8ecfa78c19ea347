-- Transitions not yet notified, oldest first.
SELECT id, body FROM alarm_events WHERE NOT sent ORDER BY id LIMIT $1
