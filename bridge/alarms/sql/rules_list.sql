-- Every rule, in id order.
SELECT id, name, spec, enabled, created_at, updated_at FROM alarm_rules ORDER BY id
