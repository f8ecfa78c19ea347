-- A rule by name, created or replaced (the seed file).
INSERT INTO alarm_rules (name, spec, enabled) VALUES ($1, $2, $3)
ON CONFLICT (name) DO UPDATE
    SET spec = EXCLUDED.spec, enabled = EXCLUDED.enabled, updated_at = now()
    WHERE alarm_rules.spec IS DISTINCT FROM EXCLUDED.spec
       OR alarm_rules.enabled IS DISTINCT FROM EXCLUDED.enabled
RETURNING id
