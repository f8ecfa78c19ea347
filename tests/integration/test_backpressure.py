"""QoS 0 (no Receive Maximum bounds it) faster than the database can take:
the bridge stops reading the broker instead of queueing in memory, and
drops nothing."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import asyncpg
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import Stack
from tests.integration.harness import (
    BridgeProcess,
    Scenario,
    count_rows,
    running,
    seed_message,
    wait_until,
)

SLOW_DATABASE = """
CREATE TABLE test_knob (slow boolean NOT NULL);
INSERT INTO test_knob VALUES (false);
CREATE FUNCTION test_slow_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT slow FROM test_knob) THEN PERFORM pg_sleep(0.001); END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER test_slow AFTER INSERT ON telemetry FOR EACH ROW EXECUTE FUNCTION test_slow_row();
"""


def sql(url: str, statement: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


class Qos0Publisher(threading.Thread):
    """Publishes QoS 0 messages of ten points each at ``rate`` per second."""

    def __init__(self, stack: Stack, scenario: Scenario, rate: float, seconds: float) -> None:
        super().__init__(daemon=True)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"q0-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.max_queued_messages_set(0)
        self.client.connect("127.0.0.1", stack.mqtt_port)
        self.client.loop_start()
        self.topic = scenario.topic("site", "dev")
        self.rate, self.seconds = rate, seconds
        self.published = 0
        self.start_us = time.time_ns() // 1000 - 3_600_000_000

    def run(self) -> None:
        started = time.monotonic()
        count = int(self.rate * self.seconds)
        for n in range(count):
            values = {f"m{k}": float(n) for k in range(10)}
            info = self.client.publish(self.topic, seed_message("dev", self.start_us + n, values))
            assert info.rc == mqtt.MQTT_ERR_SUCCESS
            self.published += 1
            ahead = n / self.rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_qos0_at_ten_times_the_database_rate_for_30s_bounds_rss_and_drops_nothing(
    stack: Stack, scenario: Scenario
) -> None:
    sql(scenario.db_url, SLOW_DATABASE)
    with running(BridgeProcess(scenario, pool_size=1)) as bridge:
        bridge.wait_ready()
        baseline = bridge.rss_mb()
        sql(scenario.db_url, "UPDATE test_knob SET slow = true")
        publisher = Qos0Publisher(stack, scenario, rate=800, seconds=30)  # 8,000 points/s
        stored_before = count_rows(scenario.db_url)
        publisher.start()
        peak = baseline
        while publisher.is_alive():
            peak = max(peak, bridge.rss_mb())
            assert not bridge.exited(), bridge.log()[-2000:]
            time.sleep(0.5)
        db_rate = (count_rows(scenario.db_url) - stored_before) / 30
        sql(scenario.db_url, "UPDATE test_knob SET slow = false")
        expected = publisher.published * 10
        try:
            wait_until(lambda: count_rows(scenario.db_url) >= expected, 180, "every point")
        finally:
            publisher.close()
        received = bridge.metrics()["bridge_messages_received_total"]
        assert bridge.stop() == 0
    stored = count_rows(scenario.db_url)
    print(
        f"published {publisher.published} messages ({expected} points) in 30 s; database "
        f"{db_rate:.0f} points/s while slow ({expected / 30 / db_rate:.1f}x); bridge RSS "
        f"{baseline:.0f} MB -> peak {peak:.0f} MB; stored {stored}"
    )
    assert expected / 30 >= 8 * db_rate, "the database was not slow enough to mean anything"
    assert received == publisher.published  # the bridge got every message, later
    assert stored == expected  # and stored every point: nothing dropped
    assert peak - baseline < 10, f"RSS grew {peak - baseline:.0f} MB under backpressure"
