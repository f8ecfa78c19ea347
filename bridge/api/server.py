"""Serving the API: granian, one ASGI worker (bench/bench_http.py: same CPU per
request as uvicorn, a far lower p99 on large responses). granian starts the
worker as a process of its own, which loads the same configuration, and
stops it gracefully on SIGTERM or SIGINT."""

from __future__ import annotations

from granian.constants import Interfaces, Loops
from granian.server import Server

from bridge.config import Settings


def serve(settings: Settings) -> int:
    a = settings.api
    Server(
        "bridge.api.app:app_from_env",
        factory=True,
        address=a.host,
        port=a.port,
        interface=Interfaces.ASGI,
        workers=1,
        loop=Loops.uvloop,
        websockets=False,
        log_access=False,
        respawn_failed_workers=True,
        workers_kill_timeout=int(settings.shutdown.grace_s),
    ).serve()
    return 0
