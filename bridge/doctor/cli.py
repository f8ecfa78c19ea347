"""`bridge doctor`: the command line of bridge.doctor. Prints the findings
(or --json) and exits 1 when any needs action, 0 otherwise."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from bridge.config import Settings
from bridge.doctor.options import Options

DESCRIPTION = """\
Checks a running deployment and says what to do about each finding: database
pool use against max_connections and the bridge's pools, slow and long-running
queries (pg_stat_statements when installed), bridge and API memory against
their limits, broker queue depth and drops ($SYS), Redis maxmemory and eviction
policy, replica lag, failed TimescaleDB jobs, partitions or chunks, and clock
skew. Reads only; exits 1 when a finding needs action.
"""


def add_doctor_command(commands: Any) -> None:
    p = commands.add_parser(
        "doctor",
        help="check a running deployment and say what to do",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--bridge-url",
        action="append",
        default=[],
        metavar="URL",
        help="a bridge worker's health address, e.g. http://10.0.0.5:9108 (repeat; default: "
        "http.host:http.port)",
    )
    p.add_argument(
        "--api-url",
        action="append",
        default=[],
        metavar="URL",
        help="an API replica's address (repeat; default: api.host:api.port)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="bridge workers in all (default: one per --bridge-url)",
    )
    p.add_argument(
        "--api-replicas",
        type=int,
        default=None,
        metavar="N",
        help="API replicas (default: one per --api-url)",
    )
    p.add_argument(
        "--replica-url", metavar="URL", help="a read replica to check (default: database.read_url)"
    )
    p.add_argument(
        "--memory-limit-mb",
        type=float,
        metavar="MB",
        help="the processes' memory limit, when not on this host",
    )
    p.add_argument(
        "--queue-warn",
        type=int,
        default=100_000,
        metavar="N",
        help="warn above this many messages queued at the broker (default 100000)",
    )
    p.add_argument(
        "--slow-s",
        type=float,
        default=5.0,
        metavar="S",
        help="report statements running longer (default 5)",
    )
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")


def run_doctor(args: argparse.Namespace, settings: Settings) -> int:
    bridges = args.bridge_url or [f"http://{_host(settings.http.host)}:{settings.http.port}"]
    apis = args.api_url or [f"http://{_host(settings.api.host)}:{settings.api.port}"]
    options = Options(
        bridge_urls=bridges if settings.http.port or args.bridge_url else [],
        api_urls=apis,
        bridge_workers=args.workers or len(bridges),
        api_replicas=args.api_replicas or len(apis),
        replica_url=args.replica_url or settings.database.read_url,
        memory_limit_mb=args.memory_limit_mb,
        slow_query_s=args.slow_s,
        queue_warn=args.queue_warn,
    )
    # The checks (aiomqtt, redis, asyncpg clients) load only for the doctor: not
    # on every `bridge run` start, which builds this parser too.
    from bridge.doctor.run import doctor  # noqa: PLC0415

    report = asyncio.run(doctor(settings, options))
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        print("\n".join(report.lines()))
    return 0 if report.healthy else 1


def _host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - a listen-all address names this host
