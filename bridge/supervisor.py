"""`bridge run --workers N`: N worker processes in one share group.

Worker i connects as <client_id>-i, so its broker session (and the messages
queued in it) survives any restart. A worker that exits unexpectedly is
started again promptly under the same id. SIGTERM/SIGINT are passed on to
every worker, which flush, commit, ack and disconnect; a second signal kills
them at once (nothing acked is lost either way).

Retiring a worker for good is a separate, explicit step (`bridge retire`),
because only the operator knows a worker will not come back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger("bridge.supervisor")

RESTART_DELAY_S = 0.5  # doubles on each quick crash, up to 10 s
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child process: get SIGTERM when the parent dies, so no orphan keeps
    what a new parent's child needs (a client id, a listening port)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def supervise(workers: int, config: Path | None, grace_s: float) -> int:
    def spawn(index: int) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "bridge.cli"]
        if config is not None:
            argv += ["--config", str(config)]
        argv += ["run", "--worker-index", str(index)]
        # Own session: a terminal's Ctrl-C reaches the supervisor only, which
        # passes one signal on (two would mean "exit at once" to a worker).
        proc = subprocess.Popen(argv, start_new_session=True, preexec_fn=die_with_parent)  # noqa: PLW1509 - no threads here
        log.info("worker %d started (pid %d)", index, proc.pid)
        return proc

    procs = {i: spawn(i) for i in range(workers)}
    started = dict.fromkeys(procs, time.monotonic())
    delays = dict.fromkeys(procs, RESTART_DELAY_S)
    stopping = {"signals": 0}

    def on_signal(signum: int, _frame: object) -> None:
        stopping["signals"] += 1
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL if stopping["signals"] > 1 else signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    while not stopping["signals"]:
        for index, proc in list(procs.items()):
            code = proc.poll()
            if code is None:
                continue
            lived = time.monotonic() - started[index]
            delays[index] = RESTART_DELAY_S if lived > 30 else min(10.0, delays[index] * 2)
            log.warning(
                "worker %d (pid %d) exited with %s; restarting in %.1fs",
                index,
                proc.pid,
                code,
                delays[index],
            )
            time.sleep(delays[index])
            if stopping["signals"]:
                break
            procs[index] = spawn(index)
            started[index] = time.monotonic()
        time.sleep(0.1)

    deadline = time.monotonic() + grace_s + 5
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    codes = [p.returncode for p in procs.values()]
    log.info("all workers stopped (%s)", ", ".join(str(c) for c in codes))
    return 0 if all(c == 0 for c in codes) else 1
