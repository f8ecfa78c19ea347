"""Serving the API: uvicorn (uvloop, httptools), one process.

Chosen by measurement twice. bench/bench_http.py found uvicorn and granian
at the same CPU per request, granian ahead on large answers under
saturation. bench/bench_api.py, which measures what the issue sets targets
for (the seed's steady-state mix on a machine shared with the broker, the
database and the bridge), then found uvicorn's tail lower: a submit's p99
7.2-7.6 ms against granian's 10.5-12.3 in interleaved runs on the same
deployment (granian hands every request between its Rust I/O thread and the
Python thread, two wake-ups that each wait for a core on a busy machine).
"""

from __future__ import annotations

import gc
import signal

import uvicorn

from bridge.api.app import create_app
from bridge.config import Settings


def serve(settings: Settings) -> int:
    """Serves until SIGTERM or SIGINT, then finishes the requests in flight
    (up to shutdown.grace_s) and closes the connections; 1 if it never started."""
    a = settings.api
    app = create_app(settings)
    tune_gc()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=a.host,
            port=a.port,
            loop="uvloop",
            http="httptools",
            ws="none",
            lifespan="on",  # a failing startup (bad settings, a bug) stops the server
            access_log=False,
            log_config=None,  # our logging, set up by the CLI
            server_header=False,
            timeout_graceful_shutdown=int(settings.shutdown.grace_s),
        )
    )
    # uvicorn raises the signal that stopped it again once it is done, for the
    # handler that was there before: without one, SIGTERM would then kill the
    # process (exit -15 after a clean shutdown) and SIGINT raise KeyboardInterrupt.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    server.run()
    return 0 if server.started else 1


def tune_gc() -> None:
    """Keeps the garbage collector's pauses short in the server's worker.

    After imports the process holds ~75,000 tracked objects (Litestar,
    pydantic, asyncpg) that live as long as it does. A 1-day series answer
    creates ~25,000 short-lived ones, and by default every few such answers
    triggered a full collection that walked the whole heap: 30-100 ms with
    the event loop stopped, which became every other request's p99
    (bench/bench_api.py). Freezing moves what exists now out of the
    collector's sight, so a full collection only walks what requests made;
    a higher first threshold lets an answer's objects die by reference
    counting before a collection looks at them. Only for the server: tests
    that build many apps in one process keep the defaults."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
