-- Replaces a rule; its series start over (the evaluator sees a changed rule).
UPDATE alarm_rules SET name = $2, spec = $3, enabled = $4, updated_at = now()
WHERE id = $1
RETURNING id, name, spec, enabled, created_at, updated_at
