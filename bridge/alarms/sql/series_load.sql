-- The evaluator's state at start-up.
SELECT rule_id, device_id, metric, state FROM alarm_series
