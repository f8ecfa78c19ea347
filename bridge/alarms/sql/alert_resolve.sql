-- Clears an open alarm by hand.
UPDATE alerts SET status = 'resolved', resolved_at = now(), resolved_by = $2,
                  updated_at = now()
WHERE id = $1 AND status IN ('active', 'acknowledged')
RETURNING id
