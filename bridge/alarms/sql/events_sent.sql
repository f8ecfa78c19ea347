UPDATE alarm_events SET sent = true WHERE id = ANY($1::bigint[])
