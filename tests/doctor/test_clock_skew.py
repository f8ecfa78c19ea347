"""Clock skew: no real service here can run on a wrong clock, so a scripted
Redis peer (RESP over TCP) answers the doctor's questions as a well-set
cache whose TIME is 30 s ahead. The doctor must name the skew and its fix."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from bridge.doctor.finding import Status
from bridge.doctor.options import Options
from bridge.doctor.services import check_redis
from tests.conftest import Stack
from tests.doctor.conftest import make_settings

CONFIG = {
    "maxmemory": "67108864",
    "maxmemory-policy": "allkeys-lru",
    "save": "",
    "appendonly": "no",
}


def bulk(text: str) -> bytes:
    data = text.encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


def answer(command: list[str], skew_s: float) -> bytes:
    name = command[0].upper()
    if name == "HELLO":  # RESP3, as redis-py asks
        return b"%2\r\n" + bulk("server") + bulk("redis") + bulk("proto") + b":3\r\n"
    if name == "CONFIG" and len(command) == 3:
        return b"%1\r\n" + bulk(command[2]) + bulk(CONFIG[command[2]])
    if name == "INFO":
        return bulk("# Stats\r\nevicted_keys:0\r\nused_memory:1048576\r\n")
    if name == "TIME":
        now = time.time() + skew_s
        return b"*2\r\n" + bulk(str(int(now))) + bulk(str(int(now % 1 * 1e6)))
    return b"+OK\r\n"


def read_command(stream: socket.SocketIO) -> list[str] | None:
    line = stream.readline()
    if not line:
        return None
    count = int(line[1:])
    parts = []
    for _ in range(count):
        size = int(stream.readline()[1:])
        parts.append(stream.read(size + 2)[:-2].decode())
    return parts


@pytest.fixture
def skewed_redis() -> Iterator[str]:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve(conn: socket.socket) -> None:
        stream = socket.SocketIO(conn, "rwb")
        buffered = conn.makefile("rb")
        with conn:
            while (command := read_command(buffered)) is not None:  # type: ignore[arg-type]
                stream.write(answer(command, 30.0))

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"redis://127.0.0.1:{port}/0"
    server.close()


def test_a_redis_clock_30_s_ahead(stack: Stack, plain_db: str, skewed_redis: str) -> None:
    findings = asyncio.run(check_redis(make_settings(stack, plain_db, skewed_redis), Options()))
    policy = [f for f in findings if f.check == "redis policy"]
    assert [f.status for f in policy] == [Status.OK]  # the peer is a well-set cache
    (skew,) = [f for f in findings if f.check == "clock skew"]
    assert skew.status is Status.PROBLEM
    assert 29 < skew.data["skew_s"] < 31
    assert "NTP" in skew.fix


def test_a_redis_clock_in_time(stack: Stack, plain_db: str, redis_url: str) -> None:
    findings = asyncio.run(check_redis(make_settings(stack, plain_db, redis_url), Options()))
    (skew,) = [f for f in findings if f.check == "clock skew"]
    assert skew.status is Status.OK
