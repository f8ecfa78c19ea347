"""The sections of the features a deployment turns on or off: commit
receipts to edge agents (receipts), the Sparkplug B host application
(sparkplug) and alarm rules (alarms)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bridge.config.section import Section


class ReceiptSettings(Section):
    """Commit receipts to edge agents (bridge/receipts.py)."""

    enabled: bool = Field(
        True,
        description="Publish, after each commit, a receipt of the edge agents' messages it "
        "holds on receipts/<gateway>, so that the agents delete their readings only then.",
    )
    interval_ms: int = Field(
        150, ge=10, le=10_000, description="Receipts are gathered and published this often."
    )
    max_pending: int = Field(
        1_000_000,
        ge=1000,
        description="Messages waiting for their receipt while the broker is unreachable; "
        "beyond this the oldest are given up (their agents publish them again).",
    )


class SparkplugSettings(Section):
    """The bridge as a Sparkplug B host application (README, "Sparkplug B")."""

    enabled: bool = Field(
        False,
        description="Read spBv1.0/ topics: one worker at a time holds the Sparkplug role "
        "(a PostgreSQL advisory lock), the others stand by.",
    )
    identity: Literal["edge_node_device", "edge_node"] = Field(
        "edge_node_device",
        description="Device ids: edge_node_device stores a device as <edge_node>:<device>; "
        "edge_node stores it under its node, metrics named <device>.<metric>. The group is "
        "the site in both.",
    )
    reorder_timeout_s: float = Field(
        2.0,
        ge=0,
        description="After a seq gap, how long a missing message may still arrive "
        "before a rebirth is requested.",
    )
    rebirth_cooldown_s: float = Field(
        5.0, ge=0, description="At most one rebirth request per node in this time."
    )
    standby_poll_s: float = Field(
        1.0, gt=0, description="How often a standby worker tries to take the Sparkplug role."
    )
    primary_host_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="Primary host mode, off when unset: the Sparkplug role's holder publishes "
        'spBv1.0/STATE/<id> {"online": true, "timestamp": T}, retained, QoS 1, with the will '
        '{"online": false, "timestamp": T}.',
    )


class AlarmSettings(Section):
    """Alarm rules evaluated on committed points (bridge/alarms)."""

    enabled: bool = Field(
        False,
        description="Workers send committed points of metrics that some rule selects to the "
        "alarm stream, for `bridge alarms run` to evaluate.",
    )
    stream: str = Field("alarms:points", description="Redis Stream key (after redis.prefix).")
    stream_max_len: int = Field(
        1_000_000,
        ge=1000,
        description="Entries (committed batches) the stream keeps for an evaluator that is "
        "down or behind; older ones are trimmed, and the evaluator says so when it finds a gap.",
    )
    max_pending_batches: int = Field(
        64, ge=1, description="Batches waiting for the stream beyond this are skipped (counted)."
    )
    rules_refresh_s: float = Field(
        2.0, gt=0, le=300, description="How often workers and the evaluator re-read the rules."
    )
    tick_s: float = Field(1.0, gt=0, le=60, description="How often no-data rules are judged.")
    reorder_s: float = Field(
        1.0,
        ge=0,
        le=60,
        description="The evaluator holds what it reads this long, then judges it in point-time "
        "order: workers commit one series' points in parallel, a few batches apart.",
    )
    flush_s: float = Field(
        0.2, ge=0, le=10, description="The evaluator commits its state at most this often."
    )
    max_series: int = Field(
        200_000, ge=1, description="Series (rule, device, metric) the evaluator tracks at most."
    )
    max_samples: int = Field(
        10_000,
        ge=10,
        description="Samples one series keeps for its rule's window at most; a window that "
        "needs more is judged on the newest only, and the evaluator warns naming the rule.",
    )
    topic_prefix: str = Field(
        "alerts", description="Transitions are published on <topic_prefix>/<site>/<device>."
    )
    client_id: str = Field("bridge-alarms", description="The evaluator's MQTT client id.")
    webhook_url: str | None = Field(
        None, description="POST each transition here as JSON (optional)."
    )
    webhook_timeout_s: float = Field(5.0, gt=0, le=60, description="One webhook attempt.")
    webhook_attempts: int = Field(
        5, ge=1, le=20, description="Attempts per transition, with doubling backoff from 0.5 s."
    )
    http_port: int = Field(
        9190, ge=0, le=65535, description="The evaluator's /healthz and /metrics (0: none)."
    )
