SELECT a.id, a.device_id, a.metric, a.severity, a.status, a.created_at, a.resolved_at,
       a.details, a.rule_id, a.site_id, a.peak_value, a.trigger_value, a.acknowledged_by,
       a.acknowledged_at, a.ack_note, a.resolved_by, a.updated_at
FROM alerts a WHERE a.id = $1
