"""Which framework and server the read API uses, decided by measurement.

Serves the same three endpoints (bench/http_apps: a device list, a 2,000-point
telemetry series, a POSTed reading validated and accepted) from in-memory
data with Starlette, FastAPI (pydantic models, and TypedDict responses:
`fastapi_td`) and Litestar, each on uvicorn (uvloop, httptools)
and on granian (ASGI), one worker process each, and loads them with wrk.
Prints the machine and the figures, and writes bench/results/http.json.

    .venv/bin/pip install -e '.[dev,bench]'   # the candidates (the `bench` extra)
    apt-get install -y wrk                     # the load generator (Debian's wrk 4.x)
    .venv/bin/python bench/bench_http.py       # two runs of everything, 10-17 minutes
    .venv/bin/python bench/bench_http.py --quick --candidates starlette-uvicorn

Before measuring, every candidate must answer the three endpoints with the
same JSON and refuse the same bad inputs with 422; its OpenAPI document is
fetched and checked for what the API needs to publish. Then, per candidate and
endpoint: wrk warms up (2 s, not counted), then runs 10 s at 50 connections
with 2 threads and reports requests/s and latency percentiles; the server's
CPU seconds (utime + stime of the server and its child processes, from
/proc/<pid>/stat) per 1,000 requests is the figure that does not depend on
how much of the 2 shared cores wrk and other processes left to the server.
The whole comparison runs twice (the second time in reverse order) and both
runs are reported. Servers listen on 127.0.0.1:35081-35099 and are stopped at
exit, also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from http_apps import common  # noqa: E402  (needs the line above)

RESULTS = BENCH / "results" / "http.json"
LUA = BENCH / "http_wrk.lua"
PORT_BASE = 35081
DISTURBED = 15.0  # % of a core used by processes outside the bench

FRAMEWORKS = ("starlette", "fastapi", "fastapi_td", "litestar")  # fastapi_td: TypedDict responses
SERVERS = ("uvicorn", "granian")
PACKAGES = (
    "starlette",
    "fastapi",
    "litestar",
    "pydantic",
    "pydantic-core",
    "msgspec",
    "orjson",
    "uvicorn",
    "uvloop",
    "httptools",
    "granian",
)
OPENAPI_PATHS = {
    "starlette": "/openapi.json",
    "fastapi": "/openapi.json",
    "fastapi_td": "/openapi.json",
    "litestar": "/schema/openapi.json",
}

SEED_BODY = (
    '{"device_id":"dev_17","timestamp":"2026-11-27T03:00:00Z",'
    '"data":{"flow_rate":1234.5,"pip":2700.1,"temperature":70.2}}'
)
START, END = "2026-11-27T03:00:00Z", "2026-11-27T09:00:00Z"


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str
    body: str = ""
    status: int = 200


ENDPOINTS = (
    Endpoint("devices", "GET", "/api/v1/devices?site=site-03&limit=50"),
    Endpoint(
        "telemetry",
        "GET",
        f"/api/v1/telemetry/dev_17?metric=flow_rate&start={START}&end={END}",
    ),
    Endpoint("ingest", "POST", "/api/v1/telemetry", SEED_BODY, 202),
)

# Requests every candidate must refuse with 422 (method, path, body).
BAD_REQUESTS = (
    ("GET", "/api/v1/devices?limit=0", ""),
    ("GET", "/api/v1/devices?limit=1001", ""),
    ("GET", "/api/v1/devices?limit=abc", ""),
    ("GET", f"/api/v1/telemetry/dev_17?start={START}", ""),
    ("GET", f"/api/v1/telemetry/dev_17?start=yesterday&end={END}", ""),
    ("GET", f"/api/v1/telemetry/dev_17?metric=&start={START}&end={END}", ""),
    ("POST", "/api/v1/telemetry", '{"device_id":"dev_17","timestamp":"2026-11-27T03:00:00Z"}'),
    ("POST", "/api/v1/telemetry", '{"timestamp":"2026-11-27T03:00:00Z","data":{"a":1}}'),
    ("POST", "/api/v1/telemetry", '{"device_id":"d","timestamp":"nope","data":{"a":1}}'),
    (
        "POST",
        "/api/v1/telemetry",
        '{"device_id":"d","timestamp":"2026-11-27T03:00:00Z","data":{"a":"1.5"}}',
    ),
    (
        "POST",
        "/api/v1/telemetry",
        '{"device_id":"d","timestamp":"2026-11-27T03:00:00Z","data":{"a":true}}',
    ),
    (
        "POST",
        "/api/v1/telemetry",
        '{"device_id":"","timestamp":"2026-11-27T03:00:00Z","data":{"a":1}}',
    ),
    ("POST", "/api/v1/telemetry", '{"device_id":"d",'),
)


# ---------------------------------------------------------------- processes


def _stat(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()  # fields from the 3rd (state) on


def _descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                parents[int(entry.name)] = int(_stat(int(entry.name))[1])
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def tree_cpu_seconds(root: int) -> float:
    """utime + stime of a process and its live descendants (granian's worker)."""
    ticks = 0
    for pid in _descendants(root):
        with contextlib.suppress(OSError, ValueError, IndexError):
            f = _stat(pid)
            ticks += int(f[11]) + int(f[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """CPU of this process's waited-for children: the wrk runs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_quiet(max_wait: float, limit: float = DISTURBED) -> float:
    """Waits (up to max_wait s) until the machine uses less than `limit` % of a
    core (the server under test is idle meanwhile); returns the seconds waited."""
    began = time.monotonic()
    while time.monotonic() - began < max_wait:
        busy0, t0 = machine_busy_seconds(), time.monotonic()
        time.sleep(1.0)
        if 100 * (machine_busy_seconds() - busy0) / (time.monotonic() - t0) < limit:
            break
    waited = time.monotonic() - began - 1.0
    if waited > 2:
        print(f"      (waited {waited:.0f}s for other work on this machine to calm down)")
    return round(max(0.0, waited), 1)


class Server:
    """One candidate as a subprocess in its own session; `stop` ends the whole
    process group (granian's workers too)."""

    def __init__(self, framework: str, server: str, port: int, log_dir: Path) -> None:
        target = f"http_apps.{framework}_app:app"
        bin_dir = Path(sys.executable).parent
        if server == "uvicorn":
            argv = [
                sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1",
                "--port", str(port), "--loop", "uvloop", "--http", "httptools",
                "--no-access-log", "--log-level", "warning",
            ]  # fmt: skip
        else:
            argv = [
                str(bin_dir / "granian"), "--interface", "asgi", "--host", "127.0.0.1",
                "--port", str(port), "--workers", "1", "--loop", "uvloop",
                "--no-ws", "--log-level", "warning",
            ]  # fmt: skip
            argv.append(target)
        self.name = f"{framework}-{server}"
        self.port = port
        self.log = log_dir / f"{self.name}.log"
        env = {**os.environ, "PYTHONPATH": str(BENCH)}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        _running.append(self)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(OSError):
                status, _ = request(self.port, "GET", "/api/v1/devices?limit=1")
                if status == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start; its log:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self in _running:
            _running.remove(self)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        with contextlib.suppress(ProcessLookupError):  # workers left behind
            os.killpg(self.proc.pid, signal.SIGKILL)


_running: list[Server] = []


def request(port: int, method: str, path: str, body: str = "") -> tuple[int, bytes]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body.encode() if body else None,
        method=method,
        headers={"Content-Type": "application/json"} if body else {},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())


# ---------------------------------------------------------------- checks


def expected_bodies() -> dict[str, Any]:
    items, cursor = common.device_page("site-03", 50, None)
    iso = {"last_seen"}
    return {
        "devices": {
            "items": [
                {
                    k: (v.isoformat().replace("+00:00", "Z") if k in iso else v)
                    for k, v in row.items()
                }
                for row in items
            ],
            "next": cursor,
        },
        "telemetry": {
            "device_id": "dev_17",
            "series": [
                {
                    "metric": "flow_rate",
                    "points": [
                        {"time": t.isoformat().replace("+00:00", "Z"), "value": v}
                        for t, v in common.POINTS
                    ],
                }
            ],
        },
        "ingest": {"accepted": 3},
    }


def check_equivalence(server: Server) -> tuple[dict[str, int], list[str]]:
    """Raises unless the candidate answers the three benchmarked requests like
    the specification; returns the response size of each, and the bad requests
    it did not refuse with 422 (a behaviour difference to report, not a reason
    to stop)."""
    expected = expected_bodies()
    sizes = {}
    for ep in ENDPOINTS:
        status, body = request(server.port, ep.method, ep.path, ep.body)
        if status != ep.status or json.loads(body) != expected[ep.name]:
            raise RuntimeError(
                f"{server.name} {ep.name}: status {status}, body {body[:300]!r} "
                "differs from the specification"
            )
        sizes[ep.name] = len(body)
    not_refused = []
    for method, path, body_text in BAD_REQUESTS:
        status, body = request(server.port, method, path, body_text)
        if status != 422:
            not_refused.append(f"{method} {path} {body_text} -> {status} {body[:120].decode()}")
    return sizes, not_refused


def _resolve(doc: dict[str, Any], schema: Any) -> dict[str, Any]:
    while isinstance(schema, dict) and "$ref" in schema:
        node: Any = doc
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema if isinstance(schema, dict) else {}


def _flat(doc: dict[str, Any], schema: Any) -> dict[str, Any]:
    """A schema with its $ref resolved and anyOf/oneOf members merged in."""
    out = dict(_resolve(doc, schema))
    for key in ("anyOf", "oneOf", "allOf"):
        for member in out.get(key, []):
            for k, v in _resolve(doc, member).items():
                out.setdefault(k, v)
    return out


def _props(doc: dict[str, Any], op: dict[str, Any], code: str) -> set[str]:
    content = op.get("responses", {}).get(code, {}).get("content", {})
    schema = _flat(doc, content.get("application/json", {}).get("schema"))
    return set(schema.get("properties", {}))


def check_openapi(doc: dict[str, Any]) -> dict[str, Any]:
    """What the generated document says about each route, against what the API
    must publish."""
    paths = doc.get("paths", {})
    devices = paths.get("/api/v1/devices", {}).get("get", {})
    series = paths.get("/api/v1/telemetry/{device_id}", {}).get("get", {})
    ingest = paths.get("/api/v1/telemetry", {}).get("post", {})

    def params(op: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {p["name"]: p for p in op.get("parameters", []) if "name" in p}

    limit = _flat(doc, params(devices).get("limit", {}).get("schema"))
    start = _flat(doc, params(series).get("start", {}).get("schema"))
    body = _flat(
        doc,
        ingest.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema"),
    )
    data = _flat(doc, body.get("properties", {}).get("data"))
    error_codes = sorted(
        {code for op in (devices, series, ingest) for code in op.get("responses", {})}
        - {"200", "201", "202"}
    )
    checks = {
        "operations": all(op for op in (devices, series, ingest)),
        "query_parameters": {"site", "limit", "cursor"} <= set(params(devices))
        and {"device_id", "metric", "start", "end"} <= set(params(series)),
        "limit_bounds": limit.get("minimum") == 1 and limit.get("maximum") == common.MAX_LIMIT,
        "required_start_end": all(
            params(series).get(n, {}).get("required") for n in ("start", "end")
        ),
        "datetime_format": start.get("format") == "date-time",
        "request_body_schema": {"device_id", "timestamp", "data"} <= set(body.get("required", [])),
        "body_value_type": _flat(doc, data.get("additionalProperties")).get("type") == "number",
        "response_schemas": {"items", "next"} <= _props(doc, devices, "200")
        and {"device_id", "series"} <= _props(doc, series, "200")
        and "accepted" in _props(doc, ingest, "202"),
        "status_202_documented": "202" in ingest.get("responses", {}),
        "validation_error_documented_as_422": all(
            "422" in op.get("responses", {}) for op in (devices, series, ingest)
        ),
    }
    return {
        "openapi_version": doc.get("openapi"),
        "checks": checks,
        "passed": f"{sum(checks.values())}/{len(checks)}",
        "error_codes_documented": error_codes,
        "component_schemas": sorted(doc.get("components", {}).get("schemas", {})),
    }


# ---------------------------------------------------------------- load


def run_wrk(
    port: int, ep: Endpoint, seconds: float, connections: int, threads: int
) -> dict[str, Any]:
    env = {**os.environ, "WRK_METHOD": ep.method, "WRK_BODY": ep.body}
    argv = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s",
        "-s", str(LUA), f"http://127.0.0.1:{port}{ep.path}",
    ]  # fmt: skip
    done = subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=seconds + 60, check=False
    )
    match = re.search(r"^WRKJSON (.*)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or not match:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    out: dict[str, Any] = json.loads(match.group(1))
    return out


def measure(server: Server, ep: Endpoint, args: argparse.Namespace) -> dict[str, Any]:
    waited = wait_quiet(args.quiet_wait)
    run_wrk(server.port, ep, args.warmup, args.connections, args.threads)
    cpu0, busy0, wrk0 = (
        tree_cpu_seconds(server.proc.pid),
        machine_busy_seconds(),
        children_cpu_seconds(),
    )
    t0 = time.monotonic()
    res = run_wrk(server.port, ep, args.duration, args.connections, args.threads)
    wall = time.monotonic() - t0
    cpu = tree_cpu_seconds(server.proc.pid) - cpu0
    wrk_cpu = children_cpu_seconds() - wrk0
    busy = machine_busy_seconds() - busy0
    requests = res["requests"]
    errors = res["errors"]
    other = 100 * max(0.0, busy - cpu - wrk_cpu) / wall
    lat = res["latency_us"]
    return {
        "requests": requests,
        "requests_per_s": round(requests / (res["duration_us"] / 1e6)),
        "latency_ms": {k: round(lat[k] / 1000, 2) for k in ("p50", "p90", "p99", "max")},
        "server_cpu_s_per_1000_requests": round(1000 * cpu / requests, 4) if requests else None,
        "cpu_percent_of_one_core": {
            "server": round(100 * cpu / wall, 1),
            "wrk": round(100 * wrk_cpu / wall, 1),
            "other processes": round(other, 1),
            "machine capacity": 100.0 * len(os.sched_getaffinity(0)),
        },
        "errors": {k: v for k, v in errors.items() if v},
        "disturbed": other > DISTURBED,
        "waited_for_quiet_s": waited,
    }


# ---------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": model or platform.processor(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "wrk": (wrk.stdout + wrk.stderr).splitlines()[0].strip(),
        "packages": versions,
    }


def _span(values: list[float], fmt: str) -> str:
    lo, hi = min(values), max(values)
    return format(lo, fmt) if format(lo, fmt) == format(hi, fmt) else f"{lo:{fmt}}-{hi:{fmt}}"


def print_table(candidates: list[str], runs: list[dict[str, dict[str, Any]]]) -> None:
    n = len(runs)
    print(
        f"\n{'candidate':<22}{'endpoint':<11}{'requests/s':>15}{'p50 ms':>13}{'p99 ms':>15}"
        f"{'CPU s/1000 req':>17}{'server %core':>14}"
    )
    for name in candidates:
        for ep in ENDPOINTS:
            rows = [run[name][ep.name] for run in runs if name in run]
            if not rows:
                continue
            flag = " *" if any(r["disturbed"] or r["errors"] for r in rows) else ""
            print(
                f"{name:<22}{ep.name:<11}"
                f"{_span([r['requests_per_s'] for r in rows], ',.0f'):>15}"
                f"{_span([r['latency_ms']['p50'] for r in rows], '.1f'):>13}"
                f"{_span([r['latency_ms']['p99'] for r in rows], '.0f'):>15}"
                f"{_span([r['server_cpu_s_per_1000_requests'] for r in rows], '.3f'):>17}"
                f"{_span([r['cpu_percent_of_one_core']['server'] for r in rows], '.0f'):>14}"
                f"{flag}"
            )
    print(
        f"(ranges over {n} run{'s' if n > 1 else ''}; * = a run was disturbed by other "
        "processes or had errors, see http.json)"
    )


def ranking(candidates: list[str], runs: list[dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Candidates by the geometric mean over the endpoints of the server's CPU
    per request (mean of the runs), cheapest first; requests/s likewise."""
    out = []
    for name in candidates:
        cpu, rps = 1.0, 1.0
        for ep in ENDPOINTS:
            rows = [run[name][ep.name] for run in runs if name in run]
            cpu *= sum(r["server_cpu_s_per_1000_requests"] for r in rows) / len(rows)
            rps *= sum(r["requests_per_s"] for r in rows) / len(rows)
        out.append(
            {
                "candidate": name,
                "cpu_s_per_1000_requests_geomean": round(cpu ** (1 / len(ENDPOINTS)), 4),
                "requests_per_s_geomean": round(rps ** (1 / len(ENDPOINTS))),
            }
        )
    return sorted(out, key=lambda r: r["cpu_s_per_1000_requests_geomean"])


# ---------------------------------------------------------------- main


def parse_args(names: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--candidates", default=",".join(names), help=f"comma-separated, from {','.join(names)}"
    )
    parser.add_argument("--runs", type=int, default=2, help="whole comparisons (default 2)")
    parser.add_argument("--duration", type=float, default=10, help="seconds measured (10)")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of warm-up (2)")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections (50)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument(
        "--quiet-wait", type=float, default=20, help="max s to wait for a quiet machine (20)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="one run, 3 s each, 1 s warm-up (development)"
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="results file (default bench/results/http.json)"
    )
    args = parser.parse_args()
    if args.quick:
        args.runs, args.duration, args.warmup, args.quiet_wait = 1, 3, 1, 3
    args.candidates = [c.strip() for c in args.candidates.split(",") if c.strip()]
    if unknown := set(args.candidates) - set(names):
        parser.error(f"unknown candidates {sorted(unknown)}; choose from {names}")
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: install it with `apt-get install -y wrk` (Debian's wrk 4.x)")
    for module in ("uvicorn", "granian", "starlette", "fastapi", "litestar", "uvloop", "httptools"):
        try:
            __import__(module)
        except ImportError:
            sys.exit(f"{module} is missing: .venv/bin/pip install -e '.[dev,bench]'")
    return args


def check_candidate(server: Server, framework: str) -> dict[str, Any]:
    sizes, not_refused = check_equivalence(server)
    status, doc = request(server.port, "GET", OPENAPI_PATHS[framework])
    openapi = check_openapi(json.loads(doc)) if status == 200 else {}
    print(
        f"  {server.name}: same responses; {len(BAD_REQUESTS) - len(not_refused)}"
        f"/{len(BAD_REQUESTS)} bad requests refused with 422; OpenAPI checks {openapi.get('passed')}"
    )
    for line in not_refused:
        print(f"    not 422: {line}")
    return {
        "response_bytes": sizes,
        "bad_requests_not_refused_with_422": not_refused,
        "openapi": openapi,
    }


def print_result(name: str, endpoint: str, res: dict[str, Any]) -> None:
    cpu = res["cpu_percent_of_one_core"]
    print(
        f"    {name:<22}{endpoint:<10}{res['requests_per_s']:>8,} req/s"
        f"  p50 {res['latency_ms']['p50']:.1f} ms  p99 {res['latency_ms']['p99']:.1f} ms"
        f"  {res['server_cpu_s_per_1000_requests']:.3f} CPU s/1000 req"
        f"  (server {cpu['server']:.0f}%, wrk {cpu['wrk']:.0f}%,"
        f" other {cpu['other processes']:.0f}% of a core)"
        + (f"  errors {res['errors']}" if res["errors"] else "")
        + ("  DISTURBED" if res["disturbed"] else "")
    )


def compare(
    args: argparse.Namespace, ports: dict[str, int], log_dir: Path
) -> tuple[dict[str, dict[str, Any]], list[dict[str, dict[str, Any]]]]:
    """Every run over every candidate, the second run in reverse order; the
    first time a candidate starts it is checked. Returns (checks, runs)."""
    checks: dict[str, dict[str, Any]] = {}
    runs: list[dict[str, dict[str, Any]]] = []
    for run_no in range(args.runs):
        order = args.candidates if run_no % 2 == 0 else args.candidates[::-1]
        print(f"\nrun {run_no + 1}/{args.runs}")
        run: dict[str, dict[str, Any]] = {}
        for name in order:
            framework, server_kind = name.split("-")
            server = Server(framework, server_kind, ports[name], log_dir)
            try:
                server.wait_ready()
                if name not in checks:
                    checks[name] = check_candidate(server, framework)
                run[name] = {}
                for ep in ENDPOINTS:
                    run[name][ep.name] = measure(server, ep, args)
                    print_result(name, ep.name, run[name][ep.name])
            finally:
                server.stop()
        runs.append(run)
    return checks, runs


def print_summary(
    candidates: list[str],
    checks: dict[str, dict[str, Any]],
    runs: list[dict[str, dict[str, Any]]],
    ranked: list[dict[str, Any]],
) -> None:
    print_table(candidates, runs)
    print("\nby server CPU per request (geometric mean of the three endpoints, cheapest first):")
    for row in ranked:
        print(
            f"  {row['candidate']:<22}{row['cpu_s_per_1000_requests_geomean']:.3f} CPU s/1000 req"
            f"  {row['requests_per_s_geomean']:>8,} req/s"
        )
    print("\nOpenAPI documents (checks passed; failed checks):")
    seen = set()
    for name in candidates:
        framework = name.split("-")[0]
        if framework not in seen:
            seen.add(framework)
            oa = checks[name]["openapi"]
            failed = [k for k, ok in oa.get("checks", {}).items() if not ok]
            print(f"  {framework:<12}{oa.get('passed')}  {', '.join(failed) or '-'}")


def main() -> None:
    names = [f"{f}-{s}" for s in SERVERS for f in FRAMEWORKS]
    args = parse_args(names)

    def on_term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    info = machine()
    shared = f"{info['nproc']} cores shared by wrk, the server and other processes"
    print(
        f"machine: {info['nproc']} cores ({info['cpu']}), {info['implementation']} "
        f"{info['python']}, {info['wrk']}\n  "
        + ", ".join(f"{k} {v}" for k, v in info["packages"].items())
    )
    print(f"absolute figures: {shared}; CPU per request and the ranking are what compare")
    began = time.monotonic()
    ports = {name: PORT_BASE + i for i, name in enumerate(names)}
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        try:
            checks, runs = compare(args, ports, Path(tmp))
        finally:
            for server in list(_running):
                server.stop()
    ranked = ranking(args.candidates, runs)
    print_summary(args.candidates, checks, runs, ranked)
    out = {
        "what": "read API candidates: framework + ASGI server, same three endpoints on "
        "in-memory data, loaded by wrk on the same machine",
        "note": f"absolute figures: {shared}; compare CPU per request and the ranking",
        "machine": info,
        "settings": {
            "runs": args.runs,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "connections": args.connections,
            "wrk_threads": args.threads,
            "uvicorn": "--loop uvloop --http httptools --no-access-log, 1 process",
            "granian": "--interface asgi --workers 1 --loop uvloop --no-ws (1 runtime thread)",
        },
        "endpoints": {ep.name: f"{ep.method} {ep.path}" for ep in ENDPOINTS},
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "elapsed_s": round(time.monotonic() - began),
        "checks": checks,
        "runs": runs,
        "ranking_by_cpu_per_request": ranked,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(out, indent=2) + "\n")
    tmp_out.replace(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
