"""Writes bridge/plan/constants.json, the figures `bridge plan` computes with,
from the bench's results (the last step of `make bench`).

Each constant says whether it is measured (read as is from a result file),
derived (computed from measured figures; the formula is given) or documented
(measured once and written down, where no bench re-measures it yet). The file
is stamped with the machine the figures come from.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
OUT = ROOT / "bridge" / "plan" / "constants.json"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RESULTS / name).read_text())
    return data


def per_message_and_point(
    small: float, small_points: int, big: float, big_points: int
) -> tuple[float, float]:
    """(a, b) with small = a + small_points b and big = a + big_points b."""
    b = (big - small) / (big_points - small_points)
    return small - small_points * b, b


def constant(value: float | None, kind: str, source: str, unit: str) -> dict[str, Any]:
    return {
        "value": None if value is None else round(value, 3),
        "unit": unit,
        "kind": kind,
        "source": source,
    }


def build() -> dict[str, Any]:
    ingest, storage = load("ingest.json"), load("storage.json")
    single = ingest["single"]["runs"]["workers_1"]
    batch = ingest["batch"]
    sp, bp = single["points_per_message"], batch["points_per_message"]
    cpu_s, cpu_b = single["cpu_us_per_message"], batch["cpu_us_per_message"]
    pair = f"ingest.json single ({sp} points/message) and batch ({bp}) runs' cpu_us_per_message"
    bridge_msg, bridge_pt = per_message_and_point(cpu_s["bridge"], sp, cpu_b["bridge"], bp)
    _, redis_pt = per_message_and_point(cpu_s["redis"], sp, cpu_b["redis"], bp)
    pg_rows = ingest["copy_limit"]["postgres_cpu_us_per_row"]
    pg_route = "unnest_first_try" if "unnest_first_try" in pg_rows else "unnest"
    pg_row = pg_rows[pg_route]
    disk = storage["disk"]
    series = storage["redis"]
    return {
        "written_by": "bench/write_constants.py (make bench)",
        "generated_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            **{
                k: ingest["machine"][k]
                for k in ("nproc", "cpu", "memory_gb", "postgresql", "mosquitto", "redis")
            },
            "database_mode_of_cpu_figures": ingest["database_mode"],
            "database_mode_of_disk_figures": disk["mode"],
            "ingest_measured_at": ingest["generated_at"],
            "storage_measured_at": storage["generated_at"],
        },
        "constants": {
            "postgres_cpu_us_per_row": constant(
                pg_row,
                "measured",
                f"ingest.json copy_limit.postgres_cpu_us_per_row.{pg_route} (the sink's "
                "statement on its default route, database.write_route)",
                "us",
            ),
            "bridge_cpu_us_per_message": constant(
                bridge_msg, "derived", f"a in a + n b = bridge CPU per message, from {pair}", "us"
            ),
            "bridge_cpu_us_per_point": constant(
                bridge_pt, "derived", f"b in a + n b = bridge CPU per message, from {pair}", "us"
            ),
            "broker_cpu_us_per_message": constant(
                cpu_s["mosquitto"],
                "measured",
                "ingest.json single run, cpu_us_per_message.mosquitto",
                "us",
            ),
            "redis_cpu_us_per_point": constant(
                redis_pt, "derived", f"b in a + n b = Redis CPU per message, from {pair}", "us"
            ),
            "disk_bytes_per_point": constant(
                disk["bytes_per_point"],
                "measured",
                f"storage.json disk ({disk['mode']}, a day of {disk['rows']} rows, heap + indexes)",
                "bytes",
            ),
            "disk_bytes_per_point_compressed": constant(
                disk.get("compressed_bytes_per_point"),
                "measured" if "compressed_bytes_per_point" in disk else "not measured",
                "storage.json disk after compress_chunk (TimescaleDB only)",
                "bytes",
            ),
            "redis_bytes_per_series": constant(
                series["bytes_per_series"],
                "measured",
                f"storage.json redis: {series['points_per_series']} points per series (900 s at 1 Hz)",
                "bytes",
            ),
            "redis_points_per_series_measured": constant(
                series["points_per_series"],
                "measured",
                "storage.json redis.points_per_series",
                "points",
            ),
            "broker_bytes_per_queued_message": constant(
                330,
                "documented",
                "mosquitto/README.md: 330 bytes + topic + payload per queued message (Mosquitto 2.0.11)",
                "bytes",
            ),
            "bridge_rss_mb_steady": steady_rss(ingest),
            "bridge_rss_mb_peak": constant(
                ingest["rss_peak_mb"],
                "measured",
                "ingest.json rss_peak_mb (receive_maximum 5000 messages of 300 points in flight)",
                "MB",
            ),
        },
    }


def steady_rss(ingest: dict[str, Any]) -> dict[str, Any]:
    """From the run's soak; a run without one (`make bench` does not soak)
    keeps the figure the last soak wrote, saying so."""
    if "soak" in ingest:
        return constant(
            ingest["soak"]["rss_max_mb"], "measured", "ingest.json soak.rss_max_mb", "MB"
        )
    last: dict[str, Any] = json.loads(OUT.read_text())["constants"]["bridge_rss_mb_steady"]
    source = str(last["source"])
    if "(kept" not in source:
        source += " (kept from the last run with --soak)"
    return constant(last["value"], last["kind"], source, "MB")


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    out.write_text(json.dumps(build(), indent=2) + "\n")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
