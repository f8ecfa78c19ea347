"""Shared by the benches: private services and process accounting.

`Services` starts a fresh PostgreSQL cluster (with TimescaleDB preloaded when
the server has it), Redis and Mosquitto in a temporary folder, on the ports a
bench gives it, and removes everything in `stop()`. The helpers read CPU time
from /proc, so each bench can report what every component used of the
machine's shared cores and whether other work disturbed a measurement.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")
DISTURBED = 15.0  # % of one core used by processes outside the bench: figures are suspect


# ---------------------------------------------------------------- processes


def port_free(port: int) -> bool:
    """Nobody listens there (connections in TIME_WAIT from a previous run are fine)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_port(port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s, contextlib.suppress(OSError):
            s.settimeout(0.5)
            s.connect(("127.0.0.1", port))
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not open port {port} within {timeout:.0f}s")


def _stat(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()  # fields from the 3rd (state) on


def cpu_seconds(pid: int, reaped_children: bool = False) -> float:
    """utime + stime of a process (and of its waited-for children)."""
    try:
        f = _stat(pid)
    except (OSError, ValueError):
        return 0.0
    ticks = int(f[11]) + int(f[12]) + ((int(f[13]) + int(f[14])) if reaped_children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def children_of(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int(_stat(int(entry.name))[1]) == pid:
                    out.append(int(entry.name))
    return out


def machine_busy_seconds() -> float:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def status_mb(pid: int, key: str) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def pg_kind(pid: int) -> str:
    """What a postmaster child does, from its process title."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ").strip()
    except OSError:
        return "gone"
    title = title.removeprefix("postgres: ")
    if not title:
        return "exiting"  # a zombie: exited, not yet reaped
    for kind, marks in (
        ("bridge connections", ("bridge ",)),
        ("admin connections", ("postgres ",)),
        ("autovacuum", ("autovacuum",)),
        ("TimescaleDB jobs", ("TimescaleDB", "Policy", "Job", "Continuous Aggregate")),
        ("checkpointer", ("checkpointer",)),
        ("walwriter", ("walwriter",)),
        ("background writer", ("background writer",)),
    ):
        if title.startswith(marks) or any(m in title for m in marks if m[0].isupper()):
            return kind
    return " ".join(title.split()[:3])


class CpuMeter:
    """CPU seconds per component between two snapshots, as % of one core;
    PostgreSQL's also by kind of process (postgres_detail)."""

    def __init__(self, components: dict[str, list[int]], postmaster: int) -> None:
        self.components = components
        self.postmaster = postmaster
        self.wall = 0.0
        self.start, self.start_pg = self._snap()

    def _snap(self) -> tuple[dict[str, float], dict[int, tuple[float, str]]]:
        snap = {
            name: sum(cpu_seconds(p, reaped_children=True) for p in pids)
            for name, pids in self.components.items()
        }
        pg = {p: (cpu_seconds(p), pg_kind(p)) for p in children_of(self.postmaster)}
        pg[0] = (
            cpu_seconds(self.postmaster, reaped_children=True),
            "postmaster and exited processes",
        )
        snap["postgres"] = sum(c for c, _ in pg.values())
        snap["bench (this process)"] = cpu_seconds(os.getpid())
        snap["_machine"] = machine_busy_seconds()
        snap["_wall"] = time.monotonic()
        return snap, pg

    def per_unit_us(self, cpu: dict[str, Any], units: int) -> dict[str, float]:
        """CPU microseconds per message (or point) of each component."""
        skip = ("machine capacity", "bench (this process)")
        return {
            k: round(v / 100 * self.wall * 1e6 / units, 1)
            for k, v in cpu.items()
            if k not in skip and isinstance(v, float)
        }

    def stop(self) -> dict[str, Any]:
        end, end_pg = self._snap()
        wall = self.wall = end["_wall"] - self.start["_wall"]
        used = {k: end[k] - self.start.get(k, 0.0) for k in end if not k.startswith("_")}
        busy = end["_machine"] - self.start["_machine"]
        out: dict[str, Any] = {k: round(100 * v / wall, 1) for k, v in used.items()}
        out["other processes"] = round(100 * max(0.0, busy - sum(used.values())) / wall, 1)
        out["machine total"] = round(100 * busy / wall, 1)
        out["machine capacity"] = 100.0 * len(os.sched_getaffinity(0))
        # Processes that exited in between are in the postmaster's reaped time.
        detail: dict[str, float] = {}
        for pid, (cpu, kind) in end_pg.items():
            detail[kind] = detail.get(kind, 0.0) + cpu - self.start_pg.get(pid, (0.0, ""))[0]
        gone = sum(c for p, (c, _) in self.start_pg.items() if p not in end_pg)
        detail["postmaster and exited processes"] -= gone
        out["postgres_detail"] = {
            k: round(100 * v / wall, 1) for k, v in sorted(detail.items()) if v * 100 / wall >= 0.5
        }
        return out


def wait_quiet(max_wait: float = 45, limit: float = DISTURBED) -> float:
    """Waits (up to max_wait s) until the machine, outside this bench's idle
    services, uses less than `limit` % of a core; returns the seconds waited."""
    began = time.monotonic()
    while time.monotonic() - began < max_wait:
        busy0, t0 = machine_busy_seconds(), time.monotonic()
        time.sleep(1.0)
        busy = 100 * (machine_busy_seconds() - busy0) / (time.monotonic() - t0)
        if busy < limit:
            break
    waited = time.monotonic() - began - 1.0
    if waited > 2:
        print(f"    (waited {waited:.0f}s for other work on this machine to calm down)")
    return round(waited, 1)


def run(argv: list[str], **kw: Any) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, **kw)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


# ---------------------------------------------------------------- services


@dataclass(frozen=True)
class Ports:
    """Where a bench's private services listen; `also` are ports the bench
    itself will open (checked free before anything starts)."""

    postgres: int
    redis: int
    mqtt: int
    also: tuple[int, ...] = ()


class Services:
    """Private Mosquitto, PostgreSQL and Redis in a temporary folder.

    `pg_settings` are added to (and override) the base PostgreSQL settings."""

    def __init__(self, ports: Ports, name: str = "bench", pg_settings: Sequence[str] = ()) -> None:
        self.ports = ports
        self.name = name
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{name}-"))
        self.tmp.chmod(0o755)  # postgres must reach its data folder inside
        self.pgdata = self.tmp / "pg"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.pg_started = False
        self.timescaledb = Path("/usr/lib/postgresql/15/lib/timescaledb.so").exists()
        self.postmaster = 0
        self.extra_pg_settings = list(pg_settings)
        self.bridge_root: Path | None = (
            None  # another checkout's bridge migrates (compare_ingest.py)
        )
        self.pg_settings: list[str] = []
        self.mosquitto_conf: list[str] = []

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.ports.postgres}/postgres"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.ports.redis}/0"

    def db_url(self, name: str) -> str:
        return f"postgresql://bridge@127.0.0.1:{self.ports.postgres}/{name}"

    def start(self) -> None:
        p = self.ports
        # A port in the ephemeral range can be some client's for a moment.
        deadline = time.monotonic() + 15
        while taken := [x for x in (p.postgres, p.redis, p.mqtt, *p.also) if not port_free(x)]:
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if taken:
            raise RuntimeError(f"ports {taken} are taken; is another {self.name} running?")
        self._postgres()
        self._redis()
        self._mosquitto()
        asyncio.run(self._bootstrap())

    def _as_pg(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv

    def _postgres(self) -> None:
        self.pgdata.mkdir(mode=0o700)
        log = self.tmp / "postgres.log"
        log.touch()
        if os.geteuid() == 0:
            shutil.chown(self.pgdata, "postgres", "postgres")
            shutil.chown(log, "postgres", "postgres")
        run(
            self._as_pg(
                [
                    str(PG_BIN / "initdb"),
                    *("-D", str(self.pgdata), "-U", "postgres", "--auth=trust"),
                    *("-E", "UTF8", "--locale=C.UTF-8"),
                ]
            )
        )
        settings = [
            f"port={self.ports.postgres}",
            "listen_addresses=127.0.0.1",
            "unix_socket_directories=",
            "max_connections=100",
            "shared_buffers=256MB",
            "max_wal_size=2GB",  # as the dev stack: no forced checkpoint mid-run
        ]
        if self.timescaledb:
            settings += ["shared_preload_libraries=timescaledb", "timescaledb.telemetry_level=off"]
        names = {s.split("=", 1)[0] for s in self.extra_pg_settings}
        settings = [s for s in settings if s.split("=", 1)[0] not in names]
        settings += self.extra_pg_settings
        opts = " ".join(f"-c {s}" for s in settings)
        run(
            self._as_pg(
                [
                    str(PG_BIN / "pg_ctl"),
                    *("-D", str(self.pgdata), "-l", str(log), "-w", "-t", "60"),
                    *("-o", opts, "start"),
                ]
            )
        )
        self.pg_started = True
        self.postmaster = int((self.pgdata / "postmaster.pid").read_text().split()[0])
        self.pg_settings = settings

    def _redis(self) -> None:
        argv = ["redis-server", "--port", str(self.ports.redis), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self.tmp)]
        self._spawn("redis", argv)
        wait_port(self.ports.redis, 20, "redis-server")

    def _mosquitto(self) -> None:
        conf = self.tmp / "mosquitto.conf"
        lines = [
            f"listener {self.ports.mqtt} 127.0.0.1",
            "allow_anonymous true",
            "persistence false",
            "max_inflight_messages 5000",
            "max_queued_messages 1000000",
            "max_queued_bytes 0",
            "max_packet_size 4194304",
            "set_tcp_nodelay true",
            "log_type error",
            "log_type warning",
        ]
        if os.geteuid() == 0:
            lines.append("user root")
        conf.write_text("\n".join(lines) + "\n")
        self.mosquitto_conf = lines
        self._spawn("mosquitto", ["mosquitto", "-c", str(conf)])
        wait_port(self.ports.mqtt, 20, "mosquitto")

    def _spawn(self, name: str, argv: list[str]) -> None:
        with (self.tmp / f"{name}.log").open("ab") as log:
            self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=log)

    async def _bootstrap(self) -> None:
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute("CREATE ROLE bridge LOGIN CREATEDB")
        finally:
            await conn.close()

    async def checkpoint(self) -> None:
        """CHECKPOINT: a phase that starts right after one meets no timed
        checkpoint (every 5 min) and its full-page writes halfway through."""
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute("CHECKPOINT")
        finally:
            await conn.close()

    async def create_db(self, name: str) -> str:
        """A fresh database owned by `bridge`, migrated with `bridge db migrate`."""
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}" OWNER bridge')
        finally:
            await conn.close()
        if self.timescaledb:  # as a DBA would, so the unprivileged role can use it
            conn = await asyncpg.connect(self.admin_url.rsplit("/", 1)[0] + "/" + name)
            try:
                await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            finally:
                await conn.close()
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
        env["BRIDGE_DATABASE__URL"] = self.db_url(name)
        # Migrated by the bridge that will use it (compare_ingest.py runs two).
        root = self.bridge_root or ROOT
        python = root / ".venv" / "bin" / "python" if self.bridge_root else Path(sys.executable)
        out = run([str(python), "-m", "bridge.cli", "db", "migrate"], env=env, cwd=root)
        return "timescaledb" if "timescaledb mode" in out else "plain"

    async def drop_db(self, name: str) -> None:
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.pg_started:
            with contextlib.suppress(Exception):
                run(
                    self._as_pg(
                        [
                            str(PG_BIN / "pg_ctl"),
                            *("-D", str(self.pgdata), "-m", "fast", "-w", "-t", "60", "stop"),
                        ]
                    )
                )
        shutil.rmtree(self.tmp, ignore_errors=True)


def machine_info(svc: Services, mode: str, libraries: Sequence[str]) -> dict[str, Any]:
    """The machine, the servers' versions and settings, and library versions."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break

    async def pg() -> tuple[str, str | None]:
        conn = await asyncpg.connect(svc.admin_url)
        try:
            server = await conn.fetchval("SHOW server_version")
            tsdb = await conn.fetchval(
                "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'"
            )
            return str(server), tsdb
        finally:
            await conn.close()

    server, tsdb = asyncio.run(pg())
    mosq = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True, check=False)
    redis_v = run(["redis-server", "--version"]).split()[2].removeprefix("v=")
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": model or platform.processor(),
        "memory_gb": round(mem_gb, 1),
        "python": sys.version.split()[0],
        "postgresql": server,
        "database_mode": mode,
        "timescaledb": tsdb if mode == "timescaledb" else None,
        "mosquitto": (mosq.stdout.splitlines() or [""])[0].removeprefix("mosquitto version "),
        "redis": redis_v,
        "libraries": {name: version(name) for name in libraries},
        "loadavg_at_start": os.getloadavg(),
        "postgresql_settings": svc.pg_settings,
        "mosquitto_config": svc.mosquitto_conf,
    }
