SELECT last_id FROM alarm_checkpoint WHERE stream = $1
