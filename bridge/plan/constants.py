"""The measured constants of `bridge plan` (constants.json, written by
bench/write_constants.py). Loading checks that every constant the model uses
is there, so a stale file fails with a clear error instead of a KeyError."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.errors import ConfigError

FILE = Path(__file__).resolve().parent / "constants.json"
REQUIRED = (
    "postgres_cpu_us_per_row",
    "bridge_cpu_us_per_message",
    "bridge_cpu_us_per_point",
    "broker_cpu_us_per_message",
    "redis_cpu_us_per_point",
    "disk_bytes_per_point",
    "disk_bytes_per_point_compressed",
    "redis_bytes_per_series",
    "redis_points_per_series_measured",
    "broker_bytes_per_queued_message",
    "bridge_rss_mb_peak",
)


@dataclass(frozen=True)
class Constants:
    values: dict[str, float | None]
    kinds: dict[str, str]
    machine: dict[str, Any]
    generated_at: str

    def __getitem__(self, name: str) -> float:
        value = self.values[name]
        if value is None:
            raise KeyError(name)
        return value

    def has(self, name: str) -> bool:
        return self.values.get(name) is not None


def load(path: Path = FILE) -> Constants:
    try:
        data = json.loads(path.read_text())
        entries = data["constants"]
        missing = [n for n in REQUIRED if n not in entries]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"cannot read the plan's constants {path}: {exc}; run `make bench`"
        ) from None
    if missing:
        raise ConfigError(f"{path} lacks {', '.join(missing)}; run `make bench` to rewrite it")
    return Constants(
        values={n: e["value"] for n, e in entries.items()},
        kinds={n: e["kind"] for n, e in entries.items()},
        machine=data["machine"],
        generated_at=data["generated_at"],
    )
