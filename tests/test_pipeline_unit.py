"""The worker's intake, without a broker: what a message becomes."""

from __future__ import annotations

import pytest

from bridge.ack import AckTracker
from bridge.batch import Batch
from bridge.commit import Committer
from bridge.config import Settings
from bridge.intake import Intake
from bridge.pipeline import Worker
from bridge.router import Router
from bridge.telemetry import Metrics


class Connection:
    def __init__(self, acked: list[int]) -> None:
        self.ack = acked.extend


def intake_of(settings: Settings, acked: list[int], closed: list[Batch]) -> Intake:
    tracker = AckTracker()
    tracker.new_connection(Connection(acked))
    return Intake(
        Router(settings.mqtt.routes, settings.limits),
        tracker,
        Metrics(),
        closed.append,
        max_points=settings.batch.max_points,
        max_delay_s=60,
    )


async def test_a_fault_while_handling_a_message_dead_letters_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    acked: list[int] = []
    closed: list[Batch] = []
    intake = intake_of(Settings.model_validate({}), acked, closed)

    def broken(*args: object) -> None:
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(intake.router, "route", broken)
    intake.on_message("telemetry/s/d", b"{}", 1, 1)
    intake.batcher.flush()
    [batch] = closed
    assert [d.reason for d in batch.dead_letters] == ["internal_error"]
    assert "ZeroDivisionError" in batch.dead_letters[0].detail
    assert len(batch.tickets) == 1  # acked once the dead letter is committed
    assert acked == []
    intake.settle(batch)
    assert acked == [1]
    assert intake.idle.is_set()
    rejected = intake.metrics.registry.get_sample_value(
        "bridge_messages_rejected_total", {"reason": "internal_error"}
    )
    assert rejected == 1


async def test_messages_after_stop_are_left_for_redelivery() -> None:
    acked: list[int] = []
    closed: list[Batch] = []
    intake = intake_of(Settings.model_validate({}), acked, closed)
    intake.on_message("telemetry/s/d", b'{"data": {"m": 1}}', 1, 1)
    intake.stop_taking()  # closes the open batch: its message is settled as usual
    intake.on_message("telemetry/s/d", b'{"data": {"m": 2}}', 2, 1)
    assert intake.tracker.in_flight == 1
    assert [len(b.points) for b in closed] == [1]
    assert intake.unsettled == 1


async def test_the_worker_wires_intake_to_its_batch_queue() -> None:
    worker = Worker(Settings.model_validate({}))
    worker.intake.on_message("telemetry/s/d", b'{"data": {"m": 1, "n": 2}}', 7, 1)
    worker.intake.batcher.flush()
    batch = worker.batches.get_nowait()
    assert batch is not None
    assert len(batch.points) == 2
    assert len(batch.tickets) == 1
    # Counted when the batch closes, not per message.
    assert worker.metrics.registry.get_sample_value("bridge_points_received_total") == 2
    assert worker.tracker.in_flight == 1


async def test_string_values_sites_and_every_bad_line_reach_the_batch() -> None:
    settings = Settings.model_validate(
        {
            "mqtt": {
                "routes": [
                    {
                        "topic": "influx/{site_id}/{device_id}",
                        "codec": "line_protocol",
                        "options": {"device_tag": "host", "site_tag": "plant"},
                    }
                ]
            }
        }
    )
    acked: list[int] = []
    closed: list[Batch] = []
    intake = intake_of(settings, acked, closed)
    payload = b'm,host=a,plant=p1 t=1,s="x"\nm t=NaN\nm u=2\nm t=inf\nm,host=b t=3'
    intake.on_message("influx/topic-site/gw", payload, 1, 1)
    intake.batcher.flush()
    [batch] = closed
    assert [(p.device_id, p.metric, p.value) for p in batch.points] == [
        ("a", "m.t", 1.0),
        ("gw", "m.u", 2.0),
        ("b", "m.t", 3.0),
    ]
    assert [(t.device_id, t.metric, t.text) for t in batch.texts] == [("a", "m.s", "x")]
    # Every device the payload names reaches the registry, with its site if named.
    assert batch.sites == {"a": "p1", "gw": None, "b": None}
    [letter] = batch.dead_letters
    assert letter.reason == "non_finite_value"
    assert letter.detail.startswith("2 point(s) rejected; first: line 2: m.t")
    assert "; then: line 4: m.t" in letter.detail
    assert intake.metrics.registry.get_sample_value("bridge_points_received_total") == 4


async def test_the_worker_is_behind_with_batches_waiting_or_half_the_window_in_flight() -> None:
    """What makes the cache write less (bridge.cache.feed): batches waiting
    for a writer, a writer that found others behind its batch, or more than
    half of receive_maximum unacked messages inside the worker."""
    worker = Worker(Settings.model_validate({"mqtt": {"receive_maximum": 4}}))
    worker.tracker.new_connection(Connection([]))
    committer = Committer.__new__(Committer)  # only its flag is read
    committer.backlogged = False
    assert not worker._behind(committer)
    for mid in (1, 2):
        worker.intake.on_message("telemetry/s/d", b'{"data": {"m": 1}}', mid, 1)
    assert worker.tracker.in_flight == 2
    assert not worker._behind(committer)  # half the window: not yet
    worker.intake.on_message("telemetry/s/d", b'{"data": {"m": 1}}', 3, 1)
    assert worker._behind(committer)
    worker.intake.batcher.flush()
    batch = worker.batches.get_nowait()
    assert batch is not None
    assert len(batch.tickets) == 3
    worker.intake.settle(batch)  # committed: acked, nothing in flight
    assert not worker._behind(committer)
    committer.backlogged = True
    assert worker._behind(committer)
    committer.backlogged = False
    worker.batches.put_nowait(Batch())
    assert worker._behind(committer)
