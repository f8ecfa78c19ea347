-- Alarm rules, the evaluator's state, and the alarm lifecycle in `alerts`.
-- bridge/alarms/__init__.py describes the design; one file for both modes
-- (every table here is a plain table).

CREATE TABLE alarm_rules (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 128),
    -- The validated rule (bridge/alarms/rules.py): kind, selector, severity
    -- and the kind's parameters. Validated by the bridge, not here, so that
    -- every error says what to do.
    spec        jsonb NOT NULL,
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per (rule, series) the evaluator has seen: its bounded window and
-- whether an alarm is open. Written in the same transaction as the alarms it
-- opens or closes and the stream position it has read up to.
CREATE TABLE alarm_series (
    rule_id     bigint NOT NULL REFERENCES alarm_rules (id) ON DELETE CASCADE,
    device_id   text NOT NULL,
    metric      text NOT NULL,  -- '' for a device-level rule (no data from any metric)
    state       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule_id, device_id, metric)
);

-- How far the evaluator has read the points stream (a Redis Stream id).
CREATE TABLE alarm_checkpoint (
    stream      text PRIMARY KEY,
    last_id     text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Severities are the operators' four; the old 'info' stays allowed for rows
-- written before this migration.
ALTER TABLE alerts DROP CONSTRAINT alerts_severity_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_severity_check
    CHECK (severity IN ('critical', 'major', 'minor', 'warning', 'info'));
ALTER TABLE alerts
    ADD COLUMN rule_id         bigint REFERENCES alarm_rules (id) ON DELETE SET NULL,
    ADD COLUMN site_id         text,
    ADD COLUMN peak_value      double precision,
    ADD COLUMN trigger_value   double precision,
    ADD COLUMN acknowledged_by text CHECK (length(acknowledged_by) <= 128),
    ADD COLUMN acknowledged_at timestamptz,
    ADD COLUMN ack_note        text CHECK (length(ack_note) <= 1024),
    ADD COLUMN resolved_by     text CHECK (length(resolved_by) <= 128),
    ADD COLUMN updated_at      timestamptz NOT NULL DEFAULT now();

-- At most one open (active or acknowledged) alarm per (rule, series): the
-- guard against a duplicate, whatever happens to the evaluator.
CREATE UNIQUE INDEX idx_alerts_open_per_series ON alerts (rule_id, device_id, metric)
    WHERE status IN ('active', 'acknowledged') AND rule_id IS NOT NULL;
-- Recent alarms fleet-wide (GET /api/v1/analytics/anomalies pages by it).
CREATE INDEX idx_alerts_recent ON alerts (created_at DESC, id DESC);

-- Every transition, in order: the outbox that notifications (MQTT, webhook)
-- are sent from, so that a crash between commit and publish loses none.
CREATE TABLE alarm_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id    bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    transition  text NOT NULL CHECK (transition IN ('raised', 'acknowledged', 'cleared')),
    at          timestamptz NOT NULL,
    body        jsonb NOT NULL,
    sent        boolean NOT NULL DEFAULT false
);
CREATE INDEX idx_alarm_events_unsent ON alarm_events (id) WHERE NOT sent;
