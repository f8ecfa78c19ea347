"""The worker's intake, without a broker: what a message becomes."""

from __future__ import annotations

import pytest

from bridge.config import Settings
from bridge.pipeline import Worker


async def test_a_fault_while_handling_a_message_dead_letters_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker = Worker(Settings.model_validate({}))

    def broken(*args: object) -> None:
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(worker.router, "route", broken)
    worker._on_message("telemetry/s/d", b"{}", 1, 1)
    worker.batcher.flush()
    batch = worker._queue.get_nowait()
    assert [d.reason for d in batch.dead_letters] == ["internal_error"]
    assert "ZeroDivisionError" in batch.dead_letters[0].detail
    assert len(batch.tickets) == 1  # acked once the dead letter is committed
    assert worker.metrics.messages_rejected.labels("internal_error")._value.get() == 1


async def test_messages_after_stop_are_left_for_redelivery() -> None:
    worker = Worker(Settings.model_validate({}))
    worker._taking = False
    worker._on_message("telemetry/s/d", b'{"data": {"m": 1}}', 1, 1)
    assert worker.tracker.in_flight == 0
    assert worker._queue.empty()
