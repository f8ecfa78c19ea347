"""The `bridge` command line. Errors the user can act on are printed as one
clear message, never a traceback; the exit status is 1 for those, 2 for usage."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

import asyncpg
import uvloop

from bridge import __version__
from bridge.alarms.cli import add_alarm_commands, run_alarms
from bridge.api.cli import add_api_commands, run_api, run_apikey
from bridge.broker.cli import add_broker_commands, run_broker_command
from bridge.config import MqttSettings, Settings, load_settings, mask_url, masked_dump
from bridge.config_reference import reference
from bridge.db.connect import connect, where
from bridge.db.maintain import maintain
from bridge.db.migrate import migrate
from bridge.db.status import schema_status
from bridge.doctor.cli import add_doctor_command, run_doctor
from bridge.errors import BridgeError, ConfigError
from bridge.pipeline import Worker
from bridge.plan.cli import add_plan_command, run_plan
from bridge.source.internals import check_internals_at_startup
from bridge.supervisor import supervise
from bridge.telemetry import setup_logging
from bridge.try_payload import received_at, try_payload

T = TypeVar("T")

DESCRIPTION = """\
MQTT edge-to-cloud ingestion bridge.

Subscribes to Mosquitto with MQTT v5 shared subscriptions, validates and
micro-batches telemetry, writes it idempotently to TimescaleDB (or plain
PostgreSQL), keeps recent values in Redis, and acknowledges each message only
after its points are committed.

Configuration comes from a TOML file (--config or $BRIDGE_CONFIG) and
BRIDGE_* environment variables (BRIDGE_DATABASE__URL overrides [database] url).
"""

EPILOG = """\
examples:
  bridge run                           ingest (one worker)
  bridge run --workers 4               four supervised worker processes
  bridge db migrate                    apply the schema (idempotent)
  bridge db status                     schema version, mode and features
  bridge api                           serve the read API
  bridge apikey create --scope read --name grafana
  bridge --config bridge.toml db maintain
  bridge doctor --workers 4            check a running deployment
  bridge alarms --help                 alarm rules and the evaluator
  bridge plan --devices 5000 --rate 1 --retention-days 90 --growth
  BRIDGE_DATABASE__URL=postgresql://u:p@db:5432/telemetry bridge db status
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bridge",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bridge {__version__}")
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="TOML config file (default: $BRIDGE_CONFIG)"
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective configuration (secrets masked) as JSON and exit",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run the bridge: MQTT in, TimescaleDB/PostgreSQL and Redis out",
        description="Subscribes to the configured topic templates through the shared "
        "subscription $share/<group>/<filter>, writes every point exactly once, and acks each "
        "message after its commit. SIGTERM or SIGINT stops it gracefully (flush, commit, ack, "
        "disconnect, keeping the broker session); a second signal exits at once. Health on "
        "http://<http.host>:<http.port + worker>/healthz, /readyz and /metrics.",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes in the share group, supervised and restarted on a crash "
        "(worker i uses client id <mqtt.client_id>-i; default 1, in this process)",
    )
    run.add_argument(
        "--worker",
        type=int,
        default=None,
        metavar="I",
        help="run worker I alone in this process, for one worker per host or pod (a "
        "StatefulSet's pod ordinal): client id <mqtt.client_id>-I, health and metrics on "
        "http.port itself",
    )
    run.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    run.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    retire = commands.add_parser(
        "retire",
        help="end a worker's broker session for good (scaling down)",
        description="A worker removed for good must not leave its session at the broker: a "
        "share group keeps sending an offline member its share, which is lost when the session "
        "expires. Stop the worker first, then run this: it takes over the worker's session "
        "(client id <mqtt.client_id>-<worker>), unsubscribes, writes and acks every message the "
        "broker queued for it, and ends the session (expiry 0).",
    )
    retire.add_argument("--worker", type=int, required=True, metavar="I", help="worker index")
    retire.add_argument(
        "--idle",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="consider the session drained after this long without a message (default 2)",
    )

    commands.add_parser(
        "config-reference",
        help="print every config key with its meaning and default, as TOML",
        description="Prints the configuration reference generated from the typed models: a "
        "commented TOML file to start from (the same as bridge.example.toml).",
    )
    check = commands.add_parser(
        "check-config",
        help="validate the configuration and exit; show what a sample payload gives",
        description="Loads the config file and environment, validates every key, and exits 0 "
        "if it is valid, 1 with the reasons if not. Connects to nothing. With --try-payload "
        "and --topic, prints the points (and dead letters) that the route taking the topic "
        "makes of the sample, and exits 1 if it makes none.",
    )
    check.add_argument(
        "--try-payload", type=Path, metavar="FILE", help="a sample payload, as a device sends it"
    )
    check.add_argument("--topic", metavar="T", help="the topic the sample arrives on")
    check.add_argument(
        "--received-at",
        metavar="TIME",
        help="pretend receive time, RFC 3339 (default: now); sample times are judged against it",
    )

    db = commands.add_parser(
        "db",
        help="database schema: migrate, status, maintain",
        description="Manage the database schema. TimescaleDB is used when the extension is "
        "available; otherwise plain PostgreSQL with native partitions and rollup tables.",
    )
    db_commands = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    mig = db_commands.add_parser(
        "migrate",
        help="apply pending migrations (idempotent)",
        description="Applies the pending migrations from db/migrations in order, each in its own "
        "transaction, and records them. Running it again changes nothing.",
    )
    mig.add_argument(
        "--mode",
        choices=["auto", "timescaledb", "plain"],
        help="schema mode for a new database (default: database.mode, which defaults to auto)",
    )
    st = db_commands.add_parser(
        "status",
        help="show schema version, mode and active features",
        description="Shows the applied and pending migrations, the mode (TimescaleDB version or "
        "plain PostgreSQL) and which features are active.",
    )
    st.add_argument("--json", action="store_true", help="print machine-readable JSON")
    db_commands.add_parser(
        "maintain",
        help="partitions, rollups and retention (run periodically)",
        description="Plain PostgreSQL: creates day partitions ahead, drops those past retention, "
        "refreshes telemetry_1m/telemetry_1h. TimescaleDB: keeps the retention policy equal to "
        "database.retention_days. Both: deletes dead letters past retention. Safe to run "
        "concurrently and as often as you like (e.g. every few minutes from cron).",
    )
    add_api_commands(commands)
    add_broker_commands(commands)
    add_doctor_command(commands)
    add_plan_command(commands)
    add_alarm_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
        if args.print_config:
            print(json.dumps(masked_dump(settings), indent=2))
            return 0
        handler = COMMANDS.get(args.command)
        if handler is None:
            parser.print_help()
            return 2
        return handler(args, settings)
    except BridgeError as exc:
        print(f"bridge: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _config_reference(args: argparse.Namespace, settings: Settings) -> int:
    print(reference(), end="")
    return 0


def _check_config(args: argparse.Namespace, settings: Settings) -> int:
    print(f"configuration is valid (database {mask_url(settings.database.url)})")
    if args.try_payload is None and args.topic is None:
        return 0
    if args.try_payload is None or args.topic is None:
        raise ConfigError("--try-payload FILE and --topic T go together")
    report, status = try_payload(
        settings, args.try_payload, args.topic, received_at(args.received_at)
    )
    print(report)
    return status


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    if args.worker is not None and (args.worker < 0 or args.workers != 1):
        raise ConfigError("--worker takes a worker index of 0 or more, without --workers")
    setup_logging(args.log_level)
    warning = guessable_group(settings.mqtt)
    if warning:
        logging.getLogger("bridge").warning("%s", warning)
    check_internals_at_startup()  # a changed paho or aiomqtt: a clear error, not silence
    if args.worker is not None:
        uvloop.run(_worker(settings, args.worker, http_port=settings.http.port))
        return 0
    if args.worker_index is not None or args.workers == 1:
        uvloop.run(_worker(settings, args.worker_index or 0))
        return 0
    return supervise(args.workers, args.config, settings.shutdown.grace_s)


def guessable_group(mqtt: MqttSettings) -> str | None:
    """A warning when a production broker (one that wants credentials, or one
    beyond this host) is read with the default share group, or None."""
    local = mqtt.host in ("127.0.0.1", "::1", "localhost")
    if mqtt.group != MqttSettings.model_fields["group"].default or (local and not mqtt.username):
        return None
    return (
        f"mqtt.group is the default 'bridge' on the broker at {mqtt.host}. Mosquitto does not "
        "check ACLs on SUBSCRIBE: a device that subscribes to $share/bridge/... takes turns in "
        "the group and those messages are lost. Set mqtt.group to a secret name shared by "
        "your bridges (mosquitto/README.md, 'Secret share group')."
    )


def _retire(args: argparse.Namespace, settings: Settings) -> int:
    setup_logging("INFO")
    uvloop.run(_worker(settings, args.worker, retire=True, idle_s=args.idle))
    return 0


def _db_command(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_db(args, settings))


async def _worker(
    settings: Settings,
    index: int,
    retire: bool = False,
    idle_s: float = 1.0,
    http_port: int | None = None,
) -> None:
    try:
        worker = Worker(settings, index, http_port=http_port)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            logging.getLogger("bridge").info(
                "stopping: committing and acking what was taken (signal again to exit at once)"
            )
            worker.stop()
        else:
            os._exit(1)  # nothing is acked before commit, so this loses nothing

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    if not settings.alarms.enabled or retire:
        await worker.run(retire=retire, idle_s=idle_s)
        return
    from bridge.alarms.feed import AlarmFeed  # noqa: PLC0415 - loaded only when alarms are on

    async with AlarmFeed(settings, worker.metrics.registry) as feed:
        worker.after_commit.append(feed.put)
        sending = asyncio.create_task(feed.run(), name="alarm-feed")
        try:
            await worker.run(idle_s=idle_s)
            deadline = time.monotonic() + 2.0  # the last committed batches, briefly
            while not feed.idle and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        finally:
            sending.cancel()


async def _db(args: argparse.Namespace, settings: Settings) -> int:
    db = settings.database
    if args.db_command == "migrate":
        mode = args.mode or db.mode

        async def run(conn: asyncpg.Connection) -> int:
            started = time.perf_counter()
            result = await migrate(conn, db.migrations_dir, mode, db.retention_days)
            for m in result.pending:
                print(f"applied {m.label}")
            elapsed = (time.perf_counter() - started) * 1000
            if result.pending:
                print(f"schema is up to date in {result.mode} mode ({elapsed:.0f} ms)")
            else:
                print(f"schema is up to date in {result.mode} mode; nothing to apply")
            return 0

        return await _with_connection(settings, run)

    if args.db_command == "status":

        async def show(conn: asyncpg.Connection) -> int:
            status = await schema_status(conn, db)
            if args.json:
                print(json.dumps(status.as_dict(), indent=2, default=str))
            else:
                print(f"database: {where(db.url)}")
                print("\n".join(status.lines()))
            return 0

        return await _with_connection(settings, show)

    async def upkeep(conn: asyncpg.Connection) -> int:
        report = await maintain(conn, db)
        print("\n".join(report.lines()))
        return 0

    return await _with_connection(settings, upkeep)


async def _with_connection(
    settings: Settings, work: Callable[[asyncpg.Connection], Awaitable[T]]
) -> T:
    conn = await connect(settings.database)
    try:
        return await work(conn)
    except (asyncpg.PostgresConnectionError, ConnectionError, OSError) as exc:
        raise BridgeError(
            f"lost the connection to PostgreSQL at {where(settings.database.url)}: {exc}. "
            "Check that it is running, then run the command again."
        ) from None
    except asyncpg.PostgresError as exc:
        raise BridgeError(
            f"PostgreSQL at {where(settings.database.url)} refused: {exc} "
            f"(SQLSTATE {exc.sqlstate}). Has `bridge db migrate` been run on this database?"
        ) from None
    finally:
        await conn.close()


COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
    "run": _run,
    "retire": _retire,
    "db": _db_command,
    "check-config": _check_config,
    "config-reference": _config_reference,
    "broker": run_broker_command,
    "api": run_api,
    "apikey": run_apikey,
    "doctor": run_doctor,
    "plan": run_plan,
    "alarms": run_alarms,
}

if __name__ == "__main__":
    sys.exit(main())
