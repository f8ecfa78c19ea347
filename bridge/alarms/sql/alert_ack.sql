-- Acknowledges an active alarm; an acknowledged or resolved one is left as is.
UPDATE alerts SET status = 'acknowledged', acknowledged_by = $2, acknowledged_at = now(),
                  ack_note = $3, updated_at = now()
WHERE id = $1 AND status = 'active'
RETURNING id
