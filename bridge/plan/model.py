"""The capacity model: what a fleet needs, from measured constants, and what
the seed's formula says for the same fleet.

Model (per second unless said): points P = devices x rate x metrics;
messages M = devices x rate / readings_per_message. CPU = P and M times the
measured microseconds; each tier is sized to run at `utilisation` (0.7, the
HPA's CPU target) of its cores. A bridge worker is one process, so it uses
at most one core: workers = bridge cores / utilisation, rounded up. Disk =
P x 86,400 x retention x bytes per point (raw rows, heap and indexes; the
rollups and WAL come on top). Redis = devices x metrics x the points one
series holds in redis.window_s x bytes per cached point.

The seed's formula: 50 bytes per sample, 1 core per 10,000 samples/s,
1 GB of RAM per 1,000 devices; a sample is a point here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from bridge.plan.constants import Constants

SECONDS_PER_DAY = 86_400
GB = 1e9
SEED_BYTES_PER_SAMPLE = 50
SEED_SAMPLES_PER_CORE = 10_000
SEED_DEVICES_PER_GB = 1_000
GROWTH_POINTS_PER_S = (10_000, 100_000, 1_000_000, 10_000_000)


@dataclass(frozen=True)
class Fleet:
    devices: int
    rate_hz: float  # readings per device per second
    retention_days: int
    metrics: int = 3  # values per reading (the seed's payload has 3)
    readings_per_message: int = 1
    window_s: int = 900  # redis.window_s
    payload_bytes: int = 125  # a 3-metric seed_json reading (bench/results/decoders.json)
    topic_bytes: int = 30
    outage_minutes: float = 10.0  # how long the broker must hold the bridge's share
    utilisation: float = 0.7


@dataclass(frozen=True)
class Plan:
    points_per_s: float
    messages_per_s: float
    bridge_cores: float
    bridge_workers: int
    bridge_ram_gb: float
    database_cores: int
    broker_cores: float
    broker_outage_gb: float
    redis_cores: float
    redis_gb: float
    disk_raw_gb: float
    disk_compressed_gb: float | None  # TimescaleDB, when its figure was measured
    total_cores: float
    total_ram_gb: float


@dataclass(frozen=True)
class SeedPlan:
    disk_gb: float
    cores: float
    ram_gb: float


def plan(f: Fleet, c: Constants) -> Plan:
    points = f.devices * f.rate_hz * f.metrics
    messages = f.devices * f.rate_hz / f.readings_per_message
    us = 1e-6
    bridge = (
        messages * c["bridge_cpu_us_per_message"] + points * c["bridge_cpu_us_per_point"]
    ) * us
    workers = max(1, math.ceil(bridge / f.utilisation))
    db = max(1, math.ceil(points * c["postgres_cpu_us_per_row"] * us / f.utilisation))
    broker = messages * c["broker_cpu_us_per_message"] * us / f.utilisation
    redis = points * c["redis_cpu_us_per_point"] * us / f.utilisation
    per_cached_point = c["redis_bytes_per_series"] / c["redis_points_per_series_measured"]
    cached = f.devices * f.metrics * max(1.0, f.rate_hz * f.window_s) * per_cached_point
    queued = (
        c["broker_bytes_per_queued_message"]
        + f.topic_bytes
        + f.payload_bytes * (f.readings_per_message * f.metrics / 3)
    )
    outage = messages * f.outage_minutes * 60 * queued
    rows = points * SECONDS_PER_DAY * f.retention_days
    compressed = None
    if c.has("disk_bytes_per_point_compressed"):
        # The newest 7 days stay uncompressed (the compression policy).
        fresh = points * SECONDS_PER_DAY * min(7, f.retention_days)
        compressed = (
            fresh * c["disk_bytes_per_point"]
            + (rows - fresh) * c["disk_bytes_per_point_compressed"]
        ) / GB
    ram = workers * c["bridge_rss_mb_peak"] * 1e6 / GB
    return Plan(
        points_per_s=points,
        messages_per_s=messages,
        bridge_cores=bridge,
        bridge_workers=workers,
        bridge_ram_gb=ram,
        database_cores=db,
        broker_cores=broker,
        broker_outage_gb=outage / GB,
        redis_cores=redis,
        redis_gb=cached / GB,
        disk_raw_gb=rows * c["disk_bytes_per_point"] / GB,
        disk_compressed_gb=compressed,
        total_cores=workers + db + broker + redis,
        total_ram_gb=ram + cached / GB + outage / GB,
    )


def seed_plan(f: Fleet) -> SeedPlan:
    samples = f.devices * f.rate_hz * f.metrics
    return SeedPlan(
        disk_gb=samples * SECONDS_PER_DAY * f.retention_days * SEED_BYTES_PER_SAMPLE / GB,
        cores=samples / SEED_SAMPLES_PER_CORE,
        ram_gb=f.devices / SEED_DEVICES_PER_GB,
    )


def fleet_for_points(points_per_s: float, base: Fleet) -> Fleet:
    """``base`` with as many devices as give ``points_per_s``."""
    devices = math.ceil(points_per_s / (base.rate_hz * base.metrics))
    return Fleet(**{**asdict(base), "devices": devices})


def comparison(f: Fleet, c: Constants) -> dict[str, Any]:
    ours, seed = plan(f, c), seed_plan(f)
    disk = ours.disk_compressed_gb if ours.disk_compressed_gb is not None else ours.disk_raw_gb
    return {
        "fleet": asdict(f),
        "plan": asdict(ours),
        "seed_formula": asdict(seed),
        "ratio_plan_to_seed": {
            "disk": round(disk / seed.disk_gb, 2) if seed.disk_gb else None,
            "cores": round(ours.total_cores / seed.cores, 2) if seed.cores else None,
            "ram": round(ours.total_ram_gb / seed.ram_gb, 2) if seed.ram_gb else None,
        },
    }
