"""The naive MQTT-to-PostgreSQL bridge most tutorials show: a baseline for bench_peers.py.

aiomqtt's message iterator, one asyncpg `executemany` per message. paho acks
every QoS 1 message as soon as it is received, before the row is written, so
whatever is between the socket and the database when the process dies is
lost. ON CONFLICT DO NOTHING only keeps a redelivered message from crashing
it. Deliberately not improved: it is the baseline.

    python naive_bridge.py MQTT_PORT DATABASE_URL CLIENT_ID
"""

import asyncio
import datetime as dt
import json
import sys

import aiomqtt
import asyncpg

INSERT = (
    "INSERT INTO telemetry (time, device_id, metric, value) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT DO NOTHING"
)


def rows(topic: str, payload: bytes) -> list[tuple[dt.datetime, str, str, float]]:
    """seed_json: a list of {timestamp ms, data} for the device in the topic,
    or one {device_id, timestamp RFC 3339, data}."""
    body = json.loads(payload)
    if isinstance(body, list):
        device = topic.rsplit("/", maxsplit=1)[-1]
        readings = [
            (dt.datetime.fromtimestamp(r["timestamp"] / 1000, dt.UTC), r["data"]) for r in body
        ]
    else:
        device = body["device_id"]
        readings = [(dt.datetime.fromisoformat(body["timestamp"]), body["data"])]
    return [(t, device, m, float(v)) for t, data in readings for m, v in data.items()]


async def main(port: int, url: str, client_id: str) -> None:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
    async with aiomqtt.Client(
        "127.0.0.1",
        port,
        identifier=client_id,
        clean_session=False,
        protocol=aiomqtt.ProtocolVersion.V311,
    ) as client:
        await client.subscribe("telemetry/#", qos=1)
        print("subscribed", flush=True)
        async for message in client.messages:
            await pool.executemany(INSERT, rows(str(message.topic), bytes(message.payload)))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
