-- Sparkplug B host state (bridge/sparkplug/): the latest births, so that a
-- restarted bridge or another worker decodes the next DATA without waiting
-- for a rebirth, and each Sparkplug device's lifecycle state.
--
-- One row per edge node (device = '') and per device: the metrics of its
-- last BIRTH as [[name, alias or null, datatype], ...], and for a node the
-- bdSeq that its NDEATH must carry. An NBIRTH deletes its node's device rows
-- (every device is born again after it). Written by the one worker that
-- holds the Sparkplug role (advisory lock, bridge/sparkplug/store.py).
--
-- One file for both schema modes: plain tables in each.
CREATE TABLE sparkplug_births (
    group_id     text NOT NULL,
    edge_node_id text NOT NULL,
    device       text NOT NULL DEFAULT '',
    bd_seq       bigint,
    metrics      jsonb NOT NULL,
    born_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, edge_node_id, device)
);

-- online after a BIRTH, offline after its DEATH (an NDEATH: the node and all
-- its devices); NULL for devices that do not speak Sparkplug, whose status
-- the API derives from last_seen. The ingest's registry update keeps
-- devices.status to itself.
ALTER TABLE devices
    ADD COLUMN lifecycle text CHECK (lifecycle IN ('online', 'offline')),
    ADD COLUMN lifecycle_at timestamptz;
