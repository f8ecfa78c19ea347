"""`bridge plan`: the command line of bridge.plan (model.py does the sums)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from bridge.config import Settings
from bridge.errors import ConfigError
from bridge.plan import constants, model


def add_plan_command(commands: Any) -> None:
    p = commands.add_parser(
        "plan",
        help="capacity plan from the bench's measured constants, beside the seed's formula",
        description="Sizes a deployment for N devices reporting R times a second, kept D days: "
        "bridge workers, database and other cores, RAM, Redis memory and disk, from the "
        "constants in bridge/plan/constants.json (measured by `make bench`, stamped with its "
        "machine), and the seed's formula (50 bytes per sample, 1 core per 10k samples/s, "
        "1 GB per 1,000 devices) beside it. --growth adds the seed's growth table, 10k to 10M "
        "points/s.",
    )
    p.add_argument("--devices", type=int, required=True, metavar="N")
    p.add_argument(
        "--rate", type=float, required=True, metavar="HZ", help="readings per device per second"
    )
    p.add_argument("--retention-days", type=int, required=True, metavar="D")
    p.add_argument(
        "--metrics", type=int, default=3, metavar="M", help="values per reading (default 3)"
    )
    p.add_argument(
        "--readings-per-message",
        type=int,
        default=1,
        metavar="K",
        help="readings batched in one MQTT message, e.g. by an edge agent (default 1)",
    )
    p.add_argument("--growth", action="store_true", help="add the growth table (10k-10M points/s)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")


def run_plan(args: argparse.Namespace, settings: Settings) -> int:
    if args.devices < 1 or args.rate <= 0 or args.retention_days < 1 or args.metrics < 1:
        raise ConfigError("--devices, --rate, --retention-days and --metrics must be positive")
    if args.readings_per_message < 1:
        raise ConfigError("--readings-per-message must be at least 1")
    consts = constants.load()
    fleet = model.Fleet(
        devices=args.devices,
        rate_hz=args.rate,
        retention_days=args.retention_days,
        metrics=args.metrics,
        readings_per_message=args.readings_per_message,
        window_s=settings.redis.window_s,
    )
    result: dict[str, Any] = {
        "constants": {
            "file": "bridge/plan/constants.json",
            "generated_at": consts.generated_at,
            "machine": consts.machine,
            "values": {n: {"value": v, "kind": consts.kinds[n]} for n, v in consts.values.items()},
        },
        "example": model.comparison(fleet, consts),
    }
    if args.growth:
        result["growth"] = [
            {
                "target_points_per_s": p,
                **model.comparison(model.fleet_for_points(p, fleet), consts),
            }
            for p in model.GROWTH_POINTS_PER_S
        ]
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print("\n".join(text(result, fleet)))
    return 0


def _n(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:,.1f}"


def _size(gb: float) -> str:
    return f"{gb / 1000:,.1f} TB" if gb >= 1000 else f"{gb:,.1f} GB"


def text(result: dict[str, Any], fleet: model.Fleet) -> list[str]:
    ex = result["example"]
    p, s, r = ex["plan"], ex["seed_formula"], ex["ratio_plan_to_seed"]
    m = result["constants"]["machine"]
    disk = p["disk_compressed_gb"]
    out = [
        f"{fleet.devices:,} devices x {fleet.rate_hz:g} Hz x {fleet.metrics} metrics, "
        f"{fleet.retention_days} days: {_n(p['points_per_s'])} points/s in "
        f"{_n(p['messages_per_s'])} messages/s",
        "",
        f"{'':34}{'plan':>14}{'seed formula':>16}{'plan/seed':>11}",
        f"{'bridge workers (cores)':34}{p['bridge_workers']:>14}",
        f"{'database cores':34}{p['database_cores']:>14}",
        f"{'broker cores':34}{p['broker_cores']:>14.2f}",
        f"{'Redis cores':34}{p['redis_cores']:>14.2f}",
        f"{'cores in all':34}{p['total_cores']:>14.1f}{s['cores']:>16.1f}{r['cores']:>11}",
        f"{'RAM: bridge workers at peak':34}{_size(p['bridge_ram_gb']):>14}",
        f"{'RAM: Redis, window ' + str(fleet.window_s) + ' s':34}{_size(p['redis_gb']):>14}",
        f"{'RAM: broker, a 10 min outage':34}{_size(p['broker_outage_gb']):>14}",
        f"{'RAM in all':34}{_size(p['total_ram_gb']):>14}{_size(s['ram_gb']):>16}{r['ram']:>11}",
        f"{'disk, raw rows':34}{_size(p['disk_raw_gb']):>14}{_size(s['disk_gb']):>16}"
        + (f"{r['disk']:>11}" if disk is None else ""),
    ]
    if disk is not None:
        out.append(f"{'disk, TimescaleDB compressed':34}{_size(disk):>14}{'':>16}{r['disk']:>11}")
    else:
        out.append("disk, compressed: not measured (no TimescaleDB where the bench ran)")
    for row in result.get("growth", []):
        if row is result["growth"][0]:
            out += [
                "",
                "growth table (same rate, metrics and retention):",
                f"{'points/s':>12}{'devices':>12}{'workers':>9}{'db cores':>10}{'Redis':>10}"
                f"{'disk' if disk is None else 'compressed':>13}{'cores':>8}{'seed cores':>12}"
                f"{'seed disk':>12}",
            ]
        g, gs = row["plan"], row["seed_formula"]
        out.append(
            f"{_n(row['target_points_per_s']):>12}{row['fleet']['devices']:>12,}"
            f"{g['bridge_workers']:>9}{g['database_cores']:>10}{_size(g['redis_gb']):>10}"
            f"{_size(g['disk_raw_gb'] if disk is None else g['disk_compressed_gb']):>13}"
            f"{g['total_cores']:>8.0f}{gs['cores']:>12.0f}"
            f"{_size(gs['disk_gb']):>12}"
        )
    kinds = result["constants"]["values"]
    derived = sorted(n for n, v in kinds.items() if v["kind"] != "measured")
    out += [
        "",
        f"constants: {result['constants']['file']} ({result['constants']['generated_at']}), "
        f"measured on {m['nproc']} cores {m['cpu']}, PostgreSQL {m['postgresql'].split()[0]} "
        f"({m['database_mode_of_cpu_figures']} for CPU, {m['database_mode_of_disk_figures']} "
        f"for disk); not measured directly: {', '.join(derived)}",
        "seed formula: 50 bytes per sample, 1 core per 10,000 samples/s, 1 GB RAM per 1,000 devices",
    ]
    return out
