-- Device registry, alerts and the dead letter: the same in both modes.

CREATE TABLE devices (
    device_id   text PRIMARY KEY CHECK (length(device_id) BETWEEN 1 AND 128),
    site_id     text,
    device_type text,
    first_seen  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz,
    status      text NOT NULL DEFAULT 'unknown'
                CHECK (status IN ('online', 'offline', 'unknown', 'disabled')),
    metadata    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX idx_devices_site_type ON devices (site_id, device_type, status);
CREATE INDEX idx_online_devices ON devices (site_id, last_seen) WHERE status = 'online';

CREATE TABLE alerts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id   text NOT NULL,
    metric      text,
    severity    text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    status      text NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'acknowledged', 'resolved')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    details     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX idx_alerts_device_severity ON alerts (device_id, severity, created_at DESC);
CREATE INDEX idx_active_alerts ON alerts (device_id, created_at) WHERE status = 'active';

-- Messages that can never succeed, with why. Bounded: the payload is cut to
-- 8 KiB (payload_size keeps the original length), the topic to 1 KiB.
CREATE TABLE rejected_messages (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    topic        text NOT NULL CHECK (octet_length(topic) <= 1024),
    reason       text NOT NULL CHECK (length(reason) <= 64),
    detail       text CHECK (length(detail) <= 1024),
    payload      bytea CHECK (octet_length(payload) <= 8192),
    payload_size integer NOT NULL CHECK (payload_size >= 0)
);
CREATE INDEX idx_rejected_received ON rejected_messages (received_at DESC);
CREATE INDEX idx_rejected_reason ON rejected_messages (reason, received_at DESC);
