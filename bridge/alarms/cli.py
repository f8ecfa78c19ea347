"""`bridge alarms`: run the evaluator, manage rules, act on alarms."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import uvloop

from bridge.config import Settings
from bridge.db.connect import connect, where
from bridge.errors import BridgeError
from bridge.telemetry import setup_logging

T = TypeVar("T")

DESCRIPTION = """\
Alarm rules evaluated on committed points (README, "Alarms").

Workers with alarms.enabled = true send the committed points of metrics that
some rule selects to a Redis Stream; `bridge alarms run` (one process; a second
one waits as a standby) evaluates them by series, writes alarms to the
`alerts` table and publishes each transition on MQTT alerts/<site>/<device>
(and to alarms.webhook_url). Rules live in PostgreSQL: seed them from a TOML
file here, or manage them through the API (/api/v1/alarms/rules, write scope).
"""

EPILOG = """\
rule kinds (a [[rule]] table each; select = { site, device, device_type, metric }):
  threshold  direction = "above"|"below", threshold, clear_threshold, for_s, count
  rate       direction, threshold (per second), clear_threshold, window_s
  stuck      epsilon, for_s
  no_data    for_s (without select.metric: any metric of the device)
  outlier    method = "zscore"|"mad", threshold, clear_threshold, window_s, min_samples
  severity = "critical" | "major" | "minor" | "warning" (default warning)

examples:
  bridge alarms check rules.toml       validate a rules file, touching nothing
  bridge alarms seed rules.toml        create or replace its rules by name
  bridge alarms rules                  list the stored rules
  bridge alarms run                    the evaluator
  bridge alarms open                   alarms not yet cleared
  bridge alarms ack 42 --by alice --note "valve replaced"
"""


def add_alarm_commands(commands: Any) -> None:
    p = commands.add_parser(
        "alarms",
        help="alarm rules, the evaluator, and alarms",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="alarms_command", metavar="ACTION", required=True)
    run = sub.add_parser(
        "run",
        help="evaluate rules on the alarm stream (SIGTERM stops it)",
        description="Reads the alarm stream from where it stopped, evaluates each point "
        "against the rules by its own timestamp, and writes alarms and its position in one "
        "transaction, so a crash repeats and loses nothing. One runs at a time (an advisory "
        "lock); health and metrics on http://<http.host>:<alarms.http_port>/.",
    )
    run.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    check = sub.add_parser("check", help="validate a rules file and exit (connects to nothing)")
    check.add_argument("file", type=Path)
    seed = sub.add_parser("seed", help="create or replace the rules of a TOML file, by name")
    seed.add_argument("file", type=Path)
    sub.add_parser("rules", help="list the stored rules as JSON lines")
    delete = sub.add_parser("delete", help="delete a rule by name (its alarms stay, unlinked)")
    delete.add_argument("name")
    sub.add_parser("open", help="list alarms that are active or acknowledged")
    ack = sub.add_parser("ack", help="acknowledge an active alarm")
    ack.add_argument("id", type=int)
    ack.add_argument("--by", default=os.environ.get("USER", "cli"), help="who (default $USER)")
    ack.add_argument("--note", default=None)
    clear = sub.add_parser("clear", help="clear an open alarm by hand")
    clear.add_argument("id", type=int)
    clear.add_argument("--by", default=os.environ.get("USER", "cli"), help="who (default $USER)")


def run_alarms(args: argparse.Namespace, settings: Settings) -> int:
    # The rules and the evaluator load only here: `bridge run` imports this
    # module for its parser, and its start-up counts in a backlog's drain.
    from bridge.alarms.rules import load_seed  # noqa: PLC0415

    action = args.alarms_command
    if action == "check":
        rules = load_seed(args.file)
        print(f"{args.file}: {len(rules)} valid rule(s)")
        return 0
    if action == "run":
        setup_logging(args.log_level)
        uvloop.run(_evaluate(settings))
        return 0
    return asyncio.run(_with_connection(settings, lambda conn: _manage(conn, args)))


async def _evaluate(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    from bridge.alarms.service import Evaluator  # noqa: PLC0415 - see run_alarms

    await Evaluator(settings).run(stop)


async def _manage(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    from bridge.alarms import store  # noqa: PLC0415 - see run_alarms
    from bridge.alarms.rules import RuleError, load_seed  # noqa: PLC0415

    action = args.alarms_command
    if action == "seed":
        rules = load_seed(args.file)
        changed = [r.name for r in rules if await store.upsert_rule(conn, r)]
        print(f"{len(rules)} rule(s) in {args.file}; {len(changed)} created or changed")
        return 0
    if action == "rules":
        for row in await store.rule_rows(conn):
            spec = json.loads(row["spec"])
            print(
                json.dumps(
                    {"id": row["id"], "name": row["name"], "enabled": row["enabled"], **spec}
                )
            )
        return 0
    if action == "delete":
        row_id = await conn.fetchval("SELECT id FROM alarm_rules WHERE name = $1", args.name)
        if row_id is None or not await store.delete_rule(conn, row_id):
            raise RuleError(f"no rule named {args.name!r}; `bridge alarms rules` lists them")
        print(f"deleted rule {args.name}")
        return 0
    if action == "open":
        rows = await conn.fetch(
            "SELECT id FROM alerts WHERE status IN ('active', 'acknowledged') ORDER BY id"
        )
        for r in rows:
            got = await conn.fetchrow(store.sql("alert_get"), r["id"])
            print(json.dumps(store.alert_body(got)))
        return 0
    if action == "ack":
        row = await store.acknowledge(conn, args.id, args.by, args.note)
    else:
        row = await store.resolve(conn, args.id, args.by)
    if row is None:
        raise BridgeError(f"no alarm {args.id}; `bridge alarms open` lists the open ones")
    print(json.dumps(store.alert_body(row)))
    return 0


async def _with_connection(
    settings: Settings, work: Callable[[asyncpg.Connection], Awaitable[T]]
) -> T:
    conn = await connect(settings.database)
    try:
        return await work(conn)
    except asyncpg.UndefinedTableError as exc:
        raise BridgeError(
            f"PostgreSQL at {where(settings.database.url)}: {exc}; run `bridge db migrate` first"
        ) from None
    finally:
        await conn.close()
