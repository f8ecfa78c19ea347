-- A new rule; nothing when the name is taken (the caller says so).
INSERT INTO alarm_rules (name, spec, enabled) VALUES ($1, $2, $3)
ON CONFLICT (name) DO NOTHING
RETURNING id, name, spec, enabled, created_at, updated_at
