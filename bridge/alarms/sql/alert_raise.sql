-- Opens an alarm; nothing when one is already open for the (rule, series):
-- the unique index idx_alerts_open_per_series is the guard.
INSERT INTO alerts (device_id, metric, severity, status, created_at, details, rule_id,
                    site_id, peak_value, trigger_value, updated_at)
VALUES ($1, $2, $3, 'active', $4, $5, $6, $7, $8, $8, now())
ON CONFLICT (rule_id, device_id, metric)
    WHERE status IN ('active', 'acknowledged') AND rule_id IS NOT NULL
    DO NOTHING
RETURNING id
