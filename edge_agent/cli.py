"""The `edge-agent` command line.

Exit status: 0 after a clean stop, 2 for a configuration or usage error
(one message saying what to fix, never a traceback), 1 when the agent cannot
start (e.g. the status port is taken).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge_agent import __version__
from edge_agent.config import Settings, load_settings, masked_dump
from edge_agent.errors import ConfigError
from edge_agent.telemetry import setup_logging

DESCRIPTION = """\
Edge agent for MQTT gateways.

Runs on a gateway next to the field devices: polls PLCs over Modbus TCP,
reads OPC UA servers (subscriptions or polling), takes what ESP32 and other sensors publish to the gateway's own broker (or
simulates a fleet), writes every reading to a durable on-disk spool (SQLite,
WAL) first, and forwards it to the cloud broker (MQTT v5, QoS 1, TLS and a
login optional) in compact per-device messages that the bridge ingests.

A reading leaves the spool only when the cloud broker's PUBACK says it was
delivered; a PUBACK of "no matching subscribers" (0x10, which Mosquitto sends
after a restart until the bridge has subscribed again) or any error code
means "not delivered": the message is sent again after a short backoff. So an
uplink outage, a kill -9 or a reboot loses nothing; the spool is bounded
(spool.max_readings) and drops its OLDEST readings when full, counting them.
After an outage, live readings go first and the backlog drains behind them at
uplink.drain_rate readings a second.

Configuration: a TOML file (--config or $EDGE_CONFIG) and EDGE_* environment
variables (EDGE_UPLINK__PASSWORD overrides [uplink] password). Unknown keys
are errors. See edge.example.toml for every key.
"""

EPILOG = """\
examples:
  edge-agent run --config /etc/edge-agent/edge.toml
  edge-agent simulate --devices 1000 --rate 1          a simulated fleet, same spool and uplink
  edge-agent check-config --config edge.toml
  EDGE_UPLINK__HOST=broker.example edge-agent --print-config

status: http://127.0.0.1:9120/healthz (JSON) and /metrics (Prometheus); [status] port.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-agent",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="TOML config file (default: $EDGE_CONFIG)"
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective configuration (secrets masked) as JSON and exit",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    commands.add_parser(
        "run",
        help="collect from the configured devices, spool, forward",
        description="Polls every [[modbus.devices]] entry on its own schedule, reads every "
        "[[opcua.servers]] entry's node groups (subscriptions or polling) and, with "
        "[local_mqtt] enabled, takes what sensors publish to the gateway's broker. Every "
        "reading is committed to the spool, then forwarded; it leaves the spool after the "
        "cloud broker's PUBACK. A device that does not answer is marked down (in /healthz), "
        "counted and retried with backoff; it never holds up the others. SIGTERM or SIGINT "
        "stops cleanly; what was not acknowledged stays in the spool for the next start.",
    )
    sim = commands.add_parser(
        "simulate",
        help="run the agent with a simulated fleet (plus any configured devices)",
        description="Runs the agent as `run` does, with a deterministic fleet of simulated "
        "electric submersible pumps added: each device reports flow_rate (1000-1500), pip "
        "(2500-3000) and temperature (60-80), or the [[simulator.signals]] you configure, with "
        "noise, drift, a daily cycle, occasional spikes and dropouts. The same seed gives the "
        "same values. The simulator's clock is kept in the spool: after a restart it catches "
        "up the readings its devices took meanwhile. Options override [simulator].",
    )
    sim.add_argument("--devices", type=int, metavar="N", help="simulated devices (default 100)")
    sim.add_argument(
        "--rate",
        type=float,
        metavar="PER_S",
        help="readings per device per second, each with every signal (default 1)",
    )
    sim.add_argument("--seed", type=int, help="random seed; same seed, same fleet (default 1)")
    sim.add_argument(
        "--duration", type=float, metavar="SECONDS", help="stop generating after this long"
    )
    sim.add_argument(
        "--sparkplug",
        action="store_true",
        help="instead of the agent, one Sparkplug B edge node (group: agent.site_id, node: "
        "uplink.client_id) publishing births and DDATA of --devices pumps at --rate to the "
        "uplink broker, answering Rebirth commands",
    )
    commands.add_parser(
        "check-config",
        help="validate the configuration and exit",
        description="Loads the config file and environment, validates every key (register "
        "maps, topic template, ids, metric names), and exits 0 if valid, 2 with the reasons "
        "if not. Connects to nothing.",
    )
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    if args.command != "simulate":
        return {}
    sim = {
        key: value
        for key, value in (
            ("devices", args.devices),
            ("rate", args.rate),
            ("seed", args.seed),
            ("duration_s", args.duration),
        )
        if value is not None
    }
    return {"simulator": sim} if sim else {}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config, _overrides(args))
    except ConfigError as exc:
        print(f"edge-agent: error: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        print(json.dumps(masked_dump(settings), indent=2))
        return 0
    if args.command == "check-config":
        print(_summary(settings))
        return 0
    if args.command not in ("run", "simulate"):
        parser.print_help()
        return 2
    if args.command == "simulate" and args.sparkplug:
        from edge_agent import sparkplug_sim  # noqa: PLC0415 - keeps --help light

        setup_logging(settings.agent.log_level)
        sim = settings.simulator
        return sparkplug_sim.run(settings, sim.devices, sim.rate, sim.duration_s)
    return _run(settings, simulate=args.command == "simulate")


def _summary(settings: Settings) -> str:
    registers = sum(len(d.registers) for d in settings.modbus.devices)
    servers = settings.opcua.servers
    nodes = sum(len(g.nodes) for s in servers for g in s.groups)
    return (
        f"configuration is valid: {len(settings.modbus.devices)} Modbus devices "
        f"({registers} registers), {len(servers)} OPC UA servers ({nodes} nodes), local MQTT {'on' if settings.local_mqtt.enabled else 'off'}, "
        f"uplink {settings.uplink.host}:{settings.uplink.port} topic {settings.uplink.topic}, "
        f"spool {settings.spool.path}"
    )


def _run(settings: Settings, simulate: bool) -> int:
    from edge_agent import agent  # noqa: PLC0415 - keeps --help and check-config light

    setup_logging(settings.agent.log_level)
    try:
        return asyncio.run(agent.run(settings, simulate))
    except OSError as exc:
        logging.getLogger("edge_agent").error("cannot start: %s", exc)
        return 1
    except sqlite3.Error as exc:
        logging.getLogger("edge_agent").error(
            "cannot use the spool %s: %s", settings.spool.path, exc
        )
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
