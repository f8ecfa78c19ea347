"""The `edge-agent` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from edge_agent import __version__

DESCRIPTION = """\
Edge agent for MQTT gateways.

Runs on a gateway next to the field devices (PLCs over Modbus TCP, ESP32 and
other sensors over the gateway's local MQTT broker), stores every reading in a
durable on-disk spool first, and forwards it to the cloud broker at QoS 1,
deleting it from the spool only after the broker's PUBACK, so an uplink outage
or a reboot loses nothing.

This release ships the command-line skeleton only: collectors, the spool and
the fleet simulator are not in it yet, and no subcommand is offered.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-agent",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    build_parser().parse_args(argv)
    build_parser().print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
