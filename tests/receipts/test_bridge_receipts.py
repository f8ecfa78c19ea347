"""The bridge receipts what it committed: per gateway, as sequence ranges,
each of 2 workers in a share group its own share; dead-lettered messages too;
an origin naming another site than its topic is not receipted."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core.receipts import decode_receipt, format_origin
from tests.broker.clients import SUCCESS, Client
from tests.conftest import Stack
from tests.integration.harness import (
    BridgeProcess,
    Scenario,
    count_rows,
    running,
    seed_message,
    wait_until,
)

MESSAGES = 200
BAD = 10  # the last ones: undecodable, dead-lettered


def publish_with_origin(client: Client, topic: str, payload: bytes, origin: str) -> int:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.UserProperty = ("origin", origin)
    info = client.client.publish(topic, payload, qos=1, properties=props)
    return client.puback(info.mid)


def test_two_workers_receipt_every_committed_or_dead_lettered_message(
    stack: Stack, plain_db: str, tmp_path: Path
) -> None:
    scenario = Scenario(stack, plain_db, tmp_path)
    site, epoch = f"s{uuid.uuid4().hex[:8]}", 4242
    gateway = Client(stack.mqtt_port)
    publisher = Client(stack.mqtt_port)
    now_us = time.time_ns() // 1000
    try:
        with running(BridgeProcess(scenario, workers=2)) as bridge:
            bridge.wait_ready()
            assert gateway.connect() == SUCCESS
            assert gateway.subscribe(f"receipts/{site}") == [1]
            assert gateway.subscribe("receipts/elsewhere") == [1]
            assert publisher.connect() == SUCCESS
            for seq in range(1, MESSAGES + 1):
                payload = (
                    b"{bad"
                    if seq > MESSAGES - BAD
                    else seed_message("dev-1", now_us - seq * 1000, {"flow_rate": float(seq)})
                )
                topic = scenario.topic(site, "dev-1")
                reason = publish_with_origin(
                    publisher, topic, payload, format_origin(site, epoch, seq)
                )
                assert reason == SUCCESS
            # Origins naming another site than the topic's: not receipted.
            for seq in range(1, 6):
                payload = seed_message("dev-2", now_us - seq * 1000, {"flow_rate": 1.0})
                topic = scenario.topic(site, "dev-2")
                origin = format_origin("elsewhere", epoch, seq)
                assert publish_with_origin(publisher, topic, payload, origin) == SUCCESS

            def receipted() -> set[int]:
                seqs: set[int] = set()
                for topic, body in gateway.received():
                    receipt = decode_receipt(body)
                    assert receipt is not None, body
                    assert topic == f"receipts/{site}"
                    assert receipt.epoch == epoch
                    for lo, hi in receipt.ranges:
                        seqs.update(range(lo, hi + 1))
                return seqs

            wait_until(lambda: len(receipted()) >= MESSAGES, 30, "every message receipted")
            wait_until(lambda: count_rows(plain_db) >= MESSAGES - BAD + 5, 30, "the rows")
            time.sleep(0.5)  # receipts come every 150 ms: any stray one would be here by now
            assert receipted() == set(range(1, MESSAGES + 1))
            workers = [bridge.metrics(w) for w in (0, 1)]
            assert all(m["bridge_receipted_messages_total"] > 0 for m in workers)
            assert sum(m["bridge_receipted_messages_total"] for m in workers) == MESSAGES
            refused = 'bridge_origins_refused_total{reason="site"}'
            assert sum(m.get(refused, 0.0) for m in workers) == 5
            receipts = sum(m["bridge_receipts_published_total"] for m in workers)

            # What answering on the receipt would cost a caller (api.ingest_via =
            # broker, README): one message at a time, PUBACK and receipt waited for.
            pubacks, waits = [], []
            for seq in range(MESSAGES + 1, MESSAGES + 21):
                payload = seed_message("dev-3", now_us - seq * 1000, {"flow_rate": 2.0})
                sent = time.monotonic()
                origin = format_origin(site, epoch, seq)
                topic = scenario.topic(site, "dev-3")
                assert publish_with_origin(publisher, topic, payload, origin) == SUCCESS
                pubacks.append(time.monotonic() - sent)
                wait_until(lambda s=seq: s in receipted(), 10, "its receipt", every=0.001)
                waits.append(time.monotonic() - sent)
            assert bridge.stop() == 0
    finally:
        gateway.close()
        publisher.close()
    assert count_rows(plain_db) == MESSAGES - BAD + 5 + 20
    pubacks.sort()
    waits.sort()
    print(
        f"{MESSAGES} messages receipted in {receipts:.0f} receipts by 2 workers; one at a "
        f"time: PUBACK median {pubacks[10] * 1000:.1f} ms, receipt median "
        f"{waits[10] * 1000:.0f} ms, max {waits[-1] * 1000:.0f} ms (batch.max_delay_ms 50, "
        "receipts.interval_ms 150)"
    )
