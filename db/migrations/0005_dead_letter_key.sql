-- Dead letters are idempotent under redelivery. A message dead-lettered and
-- committed, then redelivered because its PUBACK was lost (a crash, a
-- reconnect), must not leave a second row.
--
-- The natural key: a SHA-256 of what the row says (topic, reason, detail,
-- payload, payload_size) and of the hour it was received in. The bridge's
-- insert (bridge/sink/timescale.py) computes it, skips a row whose key for
-- the previous hour already exists, and does nothing on conflict: a
-- redelivery within an hour of the first delivery is recognised whatever
-- hour boundary lies between them. Different messages differ in their bytes
-- or topic and keep their own rows; byte-identical rejects of one topic
-- within that window are one row (the rejected-message metrics still count
-- each). A db_rejected record (bridge/router.py db_rejected) carries its
-- point's own time, which a redelivery does not change: its key takes that
-- time exactly, so two refused points never share a row. Rows from before
-- this migration have no key and stay as they are.
--
-- One file for both schema modes: rejected_messages is a plain table in each.
ALTER TABLE rejected_messages ADD COLUMN dedup_key bytea
    CHECK (octet_length(dedup_key) = 32);
CREATE UNIQUE INDEX rejected_messages_dedup_key ON rejected_messages (dedup_key);
