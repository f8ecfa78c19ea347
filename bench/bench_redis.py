"""How the cache writer writes a batch, decided by measurement.

Starts a redis-server of its own (port 36000-36999, no persistence) and writes
the same 1000-point batches with:

- naive:    one pipeline per batch, HSET + ZADD per point;
- grouped:  one pipeline per batch, one HSET per device (every metric's
            newest point) and one ZADD per device/metric series;
- sink-*:   CacheWriter, one EVALSHA per batch, with each encoding of the batch
            (msgpack blob, JSON blob, flat ARGV list);
- sink-flat-msgpack: the same script, but the batch is sent ungrouped and the
            script groups it (to see whether grouping in Python pays);
- floor:    the sink's transport alone: msgpack, decoded by the script, which
            then returns (what a batch costs before it touches a key).

The pipelines only set values; the sink also keeps latest from moving back,
trims the window and sets TTLs, so it does more per point than they do.

Two shapes: "live" (1000 devices x 3 metrics, each reporting once a second,
so a batch holds one point per series: the sink's worst case) and "bulk"
(messages of 100 readings, so a batch holds ~33 points per series). Every
variant runs once per round, in rotating order so that a noisy neighbour slows
them alike; figures are medians of the rounds. Client CPU is this process's;
Redis CPU is the server's (INFO cpu), both per point.

    .venv/bin/python bench/bench_redis.py [--quick]

Prints the machine and the figures; writes bench/results/redis.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import msgspec
import redis
import redis.asyncio as aioredis

from bridge.cache import writer as cache_writer
from bridge.cache.writer import CacheWriter
from core.types import Point

RESULTS = Path(__file__).resolve().parent / "results" / "redis.json"
S = 1_000_000
T0 = 1_795_773_600 * S  # 2026-11-27T10:00:00Z
WINDOW_S = 15  # short, so that the window is trimmed through most of the run
BATCH = 1000
PREFIX = "bench:"
METRICS = ("flow_rate", "pip", "temperature")


# ---------------------------------------------------------------- data


def live(n_points: int, devices: int = 1000) -> list[list[Point]]:
    """Every device reports its 3 metrics once a second, devices in turn."""
    out = []
    for i in range(n_points):
        reading, m = divmod(i, 3)
        second, dev = divmod(reading, devices)
        t = T0 + second * S + dev * 1000
        out.append(Point(t, f"pump-{dev:04d}", METRICS[m], _value(i)))
    return [out[k : k + BATCH] for k in range(0, n_points, BATCH)]


def bulk(n_points: int, readings: int = 100, devices: int = 1000) -> list[list[Point]]:
    """Messages of 100 readings (300 points) from one device each, in turn."""
    out = []
    for i in range(n_points):
        reading, m = divmod(i, 3)
        message, k = divmod(reading, readings)
        rnd, dev = divmod(message, devices)
        t = T0 + (rnd * readings + k) * S + dev * 1000
        out.append(Point(t, f"pump-{dev:04d}", METRICS[m], _value(i)))
    return [out[k : k + BATCH] for k in range(0, n_points, BATCH)]


def _value(i: int) -> float:
    return round(20 + (i * 7919 % 1000) / 10, 1)  # 70.2-like readings


# ---------------------------------------------------------------- variants


class Writer:
    """One way of writing a batch; ``open`` gets the server's URL."""

    async def open(self, url: str) -> None:
        raise NotImplementedError

    async def write(self, batch: list[Point], now_us: int) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class Naive(Writer):
    async def open(self, url: str) -> None:
        self.r = aioredis.Redis.from_url(url)

    async def write(self, batch: list[Point], now_us: int) -> None:
        pipe = self.r.pipeline(transaction=False)
        for t, d, m, v in batch:
            ts, vs = str(t), repr(v)
            pipe.hset(f"{PREFIX}latest:{d}", m, f"{ts} {vs}")
            pipe.zadd(f"{PREFIX}recent:{d}:{m}", {f"{ts}:{vs}": t})
        await pipe.execute()

    async def close(self) -> None:
        await self.r.aclose()


class Grouped(Naive):
    async def write(self, batch: list[Point], now_us: int) -> None:
        by_device: dict[str, dict[str, dict[int, float]]] = {}
        for t, d, m, v in batch:
            by_device.setdefault(d, {}).setdefault(m, {})[t] = v
        pipe = self.r.pipeline(transaction=False)
        for d, metrics in by_device.items():
            newest: list[str] = []
            for m, series in metrics.items():
                tn = max(series)
                newest += (m, f"{tn} {series[tn]!r}")
                pipe.zadd(f"{PREFIX}recent:{d}:{m}", {f"{t}:{v!r}": t for t, v in series.items()})
            pipe.hset(f"{PREFIX}latest:{d}", items=newest)
        await pipe.execute()


class Sink(Writer):
    encoding = "msgpack"

    def make(self, url: str) -> CacheWriter:
        class Chosen(CacheWriter):
            _encoding = self.encoding

        return Chosen(url, window_s=WINDOW_S, prefix=PREFIX)

    async def open(self, url: str) -> None:
        self.sink = await self.make(url).__aenter__()

    async def write(self, batch: list[Point], now_us: int) -> None:
        await self.sink.write(batch, now_us)

    async def close(self) -> None:
        await self.sink.__aexit__(None, None, None)


class SinkJson(Sink):
    encoding = "json"


class SinkArgv(Sink):
    encoding = "argv"


class Floor(Sink):
    def make(self, url: str) -> CacheWriter:
        sink = super().make(url)
        lua = sink._script
        sink._script = lua[: lua.index("local n = #a")] + "return #a\n"
        sink._sha = hashlib.sha1(sink._script.encode(), usedforsecurity=False).hexdigest()
        return sink


# The flat layout: device, metric, time, value per point; Lua builds the
# grouped array the sink's script reads.
_REGROUP = """
local function regroup(f)
  local devs, order = {}, {}
  for j = 1, #f, 4 do
    local d, m = f[j], f[j + 1]
    local g = devs[d]
    if not g then g = {{}, {}}; devs[d] = g; order[#order + 1] = d end
    local s = g[1][m]
    if not s then s = {}; g[1][m] = s; g[2][#g[2] + 1] = m end
    s[#s + 1] = f[j + 2]; s[#s + 1] = f[j + 3]
  end
  local a = {}
  for _, d in ipairs(order) do
    local g = devs[d]
    local ms = g[2]
    a[#a + 1] = d; a[#a + 1] = #ms
    for _, m in ipairs(ms) do a[#a + 1] = m end
    for _, m in ipairs(ms) do
      local s = g[1][m]
      a[#a + 1] = #s / 2
      for k = 1, #s do a[#a + 1] = s[k] end
    end
  end
  return a
end
"""


class SinkFlat(Sink):
    def make(self, url: str) -> CacheWriter:
        sink = super().make(url)
        sink._script = _REGROUP + cache_writer.LUA.replace(
            "__DECODE__", "regroup(cmsgpack.unpack(ARGV[7])), 1"
        )
        sink._sha = hashlib.sha1(sink._script.encode(), usedforsecurity=False).hexdigest()
        return sink

    async def write(self, batch: list[Point], now_us: int) -> None:
        flat: list[str] = []
        extend = flat.extend
        for t, d, m, v in batch:
            extend((d, m, str(t), repr(v)))
        window_us = WINDOW_S * S
        head = [PREFIX, str(now_us - window_us), str(2 * WINDOW_S * 1000)]
        head.append(str(now_us - 2 * window_us))
        head += ["0", str(now_us)]  # no complete_since claim; the floor when the key is missing
        await self.sink._evalsha([*head, msgspec.msgpack.encode(flat)])


VARIANTS: dict[str, Callable[[], Writer]] = {
    "naive": Naive,
    "grouped": Grouped,
    "sink-msgpack": Sink,
    "sink-json": SinkJson,
    "sink-argv": SinkArgv,
    "sink-flat-msgpack": SinkFlat,
    "floor": Floor,
}
PIPELINES = {"naive", "grouped"}


# ---------------------------------------------------------------- running


@dataclass
class Run:
    points_per_s: float
    client_us: float
    redis_us: float


@dataclass
class Server:
    port: int
    proc: subprocess.Popen[bytes]
    client: redis.Redis = field(init=False)

    def __post_init__(self) -> None:
        self.client = redis.Redis(port=self.port)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def cpu_s(self) -> float:
        info = self.client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _free_port() -> int:
    for port in range(36000 + os.getpid() % 500, 37000):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit("no free port in 36000-36999 for the bench's redis-server")


@contextlib.contextmanager
def redis_server() -> Iterator[Server]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as workdir:
        port = _free_port()
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", workdir]
        argv += ["--save", "", "--appendonly", "no"]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        server = Server(port, proc)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    server.client.ping()
                    break
                except redis.ConnectionError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"redis-server did not start on port {port}") from None
                    time.sleep(0.02)
            yield server
        finally:
            server.client.close()
            proc.terminate()
            proc.wait(timeout=10)


async def measure(server: Server, make: Callable[[], Writer], batches: list[list[Point]]) -> Run:
    writer = make()
    await writer.open(server.url)
    try:
        server.client.flushall()
        await writer.write(batches[0], batches[0][-1].time_us)  # connect, load the script
        server.client.flushall()
        n = sum(map(len, batches))
        cpu0, wall0, redis0 = time.process_time(), time.perf_counter(), server.cpu_s()
        for batch in batches:
            await writer.write(batch, batch[-1].time_us)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        redis_cpu = server.cpu_s() - redis0
    finally:
        await writer.close()
    return Run(n / wall, cpu / n * 1e6, redis_cpu / n * 1e6)


def check(server: Server, batches: list[list[Point]]) -> None:
    """The sink variants must leave the same, right, newest values."""
    last = batches[-1][-1]
    stored = server.client.hget(f"{PREFIX}latest:{last.device_id}", last.metric)
    assert stored == f"{last.time_us} {last.value!r}".encode(), stored


def machine(server: Server) -> dict[str, object]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": model or platform.processor(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "redis_server": server.client.info("server")["redis_version"],
        "redis_py": version("redis"),
        "hiredis": version("hiredis"),
        "msgspec": msgspec.__version__,
        "orjson": version("orjson"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round, fewer points")
    args = parser.parse_args()
    rounds, scale = (1, 0.25) if args.quick else (3, 1.0)
    sizes = {"pipeline": int(45_000 * scale), "sink": int(150_000 * scale)}
    shapes: dict[str, tuple[Callable[[int], list[list[Point]]], list[str]]] = {
        "live": (live, list(VARIANTS)),
        "bulk": (bulk, ["naive", "grouped", "sink-msgpack", "sink-json", "floor"]),
    }

    with redis_server() as server:
        info = machine(server)
        shared = f"{info['nproc']} cores shared by every component"
        print(
            f"machine: {info['nproc']} cores ({info['cpu']}), Python {info['python']}, "
            f"Redis {info['redis_server']}, redis-py {info['redis_py']} + hiredis "
            f"{info['hiredis']}, msgspec {info['msgspec']}, orjson {info['orjson']}"
        )
        print(f"absolute figures below: {shared} (Redis, this bench, and anything else running)")
        print(f"redis-server of its own on port {server.port}; {rounds} round(s); medians\n")

        results: dict[str, Any] = {}
        for shape, (make_batches, names) in shapes.items():
            data = {k: make_batches(n) for k, n in sizes.items()}
            runs: dict[str, list[Run]] = {name: [] for name in names}
            for r in range(rounds):
                order = names[r % len(names) :] + names[: r % len(names)]
                for name in order:
                    batches = data["pipeline" if name in PIPELINES else "sink"]
                    runs[name].append(asyncio.run(measure(server, VARIANTS[name], batches)))
                    if name.startswith("sink"):
                        check(server, batches)
            results[shape] = report(shape, runs, shared)

        chosen = CacheWriter._encoding
        live_rates = results["live"]["variants"]
        fastest = max(
            ("msgpack", "json", "argv"), key=lambda e: live_rates[f"sink-{e}"]["points_per_s"]
        )
        print(f"\nCacheWriter encoding: {chosen}; fastest in this run (live shape): {fastest}")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        msgspec.json.format(
            msgspec.json.encode(
                {
                    "what": "points/s writing 1000-point batches to Redis, medians of rounds",
                    "note": f"absolute figures: {shared}",
                    "machine": info,
                    "rounds": rounds,
                    "window_s": WINDOW_S,
                    "points": sizes,
                    "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "chosen_encoding": chosen,
                    "fastest_encoding_live": fastest,
                    "shapes": results,
                }
            ),
            indent=2,
        ).decode()
        + "\n"
    )
    print(
        f"wrote {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}"
    )


def report(shape: str, runs: dict[str, list[Run]], shared: str) -> dict[str, Any]:
    med = {
        name: Run(
            statistics.median(r.points_per_s for r in rs),
            statistics.median(r.client_us for r in rs),
            statistics.median(r.redis_us for r in rs),
        )
        for name, rs in runs.items()
    }
    naive = med["naive"].points_per_s
    print(
        f"{shape}: {'variant':18s} {'points/s':>10s} {'x naive':>8s} {'client us/pt':>13s} "
        f"{'redis us/pt':>12s}   ({shared})"
    )
    for name, m in med.items():
        print(
            f"{'':{len(shape) + 1}s} {name:18s} {m.points_per_s:10,.0f} "
            f"{m.points_per_s / naive:8.1f} {m.client_us:13.2f} {m.redis_us:12.2f}"
        )
    return {
        "variants": {
            name: {
                "points_per_s": round(m.points_per_s),
                "ratio_to_naive": round(m.points_per_s / naive, 2),
                "client_us_per_point": round(m.client_us, 2),
                "redis_us_per_point": round(m.redis_us, 2),
                "runs_points_per_s": [round(r.points_per_s) for r in runs[name]],
            }
            for name, m in med.items()
        }
    }


if __name__ == "__main__":
    main()
