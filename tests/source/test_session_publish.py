"""What the bridge says back to the broker: ``Session.publish`` on the real
test Mosquitto. QoS 1 returns once the broker has the message; with no
connection it raises NotConnected at once instead of queueing."""

from __future__ import annotations

import asyncio
import time

import aiomqtt
import pytest

from bridge.config import MqttSettings
from bridge.errors import NotConnected
from bridge.source.session import Session
from tests.conftest import Stack


async def test_publish_reaches_a_subscriber_and_raises_when_not_connected(stack: Stack) -> None:
    settings = MqttSettings(host="127.0.0.1", port=stack.mqtt_port, reconnect_min_s=0.05)
    session = Session(settings, f"pub-{time.monotonic_ns()}", ["nothing/here"], lambda *m: None)
    with pytest.raises(NotConnected, match="not connected"):
        await session.publish("bridge-test/out", b"early")
    stop = asyncio.Event()
    running = asyncio.create_task(session.run(stop))
    async with aiomqtt.Client("127.0.0.1", stack.mqtt_port) as listener:
        await listener.subscribe("bridge-test/out", qos=1)
        deadline = time.monotonic() + 10
        while not session.connected:
            assert time.monotonic() < deadline, "the session never connected"
            await asyncio.sleep(0.02)
        for i in range(3):
            await session.publish("bridge-test/out", f"m{i}".encode(), qos=1)
        got = []
        async with asyncio.timeout(10):
            async for message in listener.messages:
                got.append(message.payload)
                if len(got) == 3:
                    break
    assert got == [b"m0", b"m1", b"m2"]
    stop.set()
    await asyncio.wait_for(running, 10)
    await session.close(end_session=True)
    assert not session.connected
    with pytest.raises(NotConnected):
        await session.publish("bridge-test/out", b"late")
