"""Several workers in one share group: split the load, survive a crash, retire cleanly."""

from __future__ import annotations

import os
import signal

from tests.conftest import Stack
from tests.integration.harness import (
    Background,
    BridgeProcess,
    Publisher,
    Scenario,
    assert_exactly_once,
    count_rows,
    running,
    seed_fleet,
    session_messages,
    wait_until,
)


def test_two_workers_split_the_load_and_survive_a_crash(
    scenario: Scenario, publisher: Publisher
) -> None:
    messages, expected = seed_fleet(scenario, devices=100, readings=60)
    half = len(messages) // 2
    with running(BridgeProcess(scenario, workers=2)) as bridge:
        bridge.wait_ready()
        publisher.publish_all(messages[:half])
        publisher.wait_acked()
        half_points = 3 * half
        wait_until(lambda: count_rows(scenario.db_url) >= half_points, 60, "first half")
        shares = [bridge.metrics(w)["telemetry_points_total"] for w in (0, 1)]
        assert all(s > 0 for s in shares), f"one worker took nothing: {shares}"
        # Kill worker 1 mid-stream; the supervisor restarts it under the same id.
        victim = bridge.worker_pid(1)
        load = Background(publisher, messages[half:], rate=2000)
        wait_until(lambda: count_rows(scenario.db_url) > half_points + 1000, 60, "ingest under way")
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: bridge.ready(1) and bridge.worker_pid(1) != victim, 30, "worker 1 back")
        load.join()
        publisher.wait_acked()
        wait_until(lambda: count_rows(scenario.db_url) >= len(expected), 90, "every point")
        assert "restarting" in bridge.log()
        assert bridge.stop() == 0
    assert_exactly_once(scenario.db_url, expected)


def test_scale_from_two_workers_to_one_by_retiring_one(
    scenario: Scenario, publisher: Publisher, stack: Stack
) -> None:
    messages, expected = seed_fleet(scenario, devices=100, readings=60)
    third = len(messages) // 3
    with running(BridgeProcess(scenario, workers=2)) as two:
        two.wait_ready()
        load = Background(publisher, messages[:third], rate=2000)
        wait_until(lambda: count_rows(scenario.db_url) > 1000, 60, "ingest under way")
        assert two.stop() == 0  # graceful: both keep their sessions
        load.join()
    # The documented way: stop, run one worker, retire the other.
    with running(BridgeProcess(scenario, workers=1)) as one:
        one.wait_ready()
        load = Background(publisher, messages[third:], rate=2000)
        retire = BridgeProcess(scenario, workers=2)  # worker 1 binds http.port + 1
        retire.start("retire", "--worker", "1")
        assert retire.wait_exit(120) == 0, retire.log()[-2000:]
        load.join()
        publisher.wait_acked()
        wait_until(lambda: count_rows(scenario.db_url) >= len(expected), 90, "every point")
        assert one.stop() == 0
    assert_exactly_once(scenario.db_url, expected)
    # No orphan session: worker 1's session is gone and holds nothing.
    present, queued = session_messages(stack, f"{scenario.client_id}-1", quiet_s=1.0)
    assert not present
    assert queued == []
