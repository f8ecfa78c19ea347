"""Alarm rules for the ingest bench (bench_ingest.py's rules phases): 10 rules
per metric, one of each shape a deployment would have, and the evaluator
(`bridge alarms run`) as a process beside the bridge."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import asyncpg

from bridge.alarms import store
from bridge.alarms.rules import parse_rule


def rules_for(metric: str) -> list[dict[str, Any]]:
    """Ten rules on one metric: thresholds (plain, held, counted, with
    hysteresis, both sides), rate, stuck, no data and two outlier bands."""
    base = {"select": {"metric": metric}}
    shapes: list[dict[str, Any]] = [
        {"kind": "threshold", "direction": "above", "threshold": 1e6},
        {"kind": "threshold", "direction": "below", "threshold": -1e6},
        {"kind": "threshold", "direction": "above", "threshold": 5000.0, "for_s": 600},
        {"kind": "threshold", "direction": "below", "threshold": 0.0, "count": 5},
        {"kind": "threshold", "direction": "above", "threshold": 9000.0, "clear_threshold": 8000.0},
        {"kind": "rate", "direction": "above", "threshold": 1000.0, "window_s": 60},
        {"kind": "stuck", "epsilon": 0.0, "for_s": 3600},
        {"kind": "no_data", "for_s": 3600},
        {"kind": "outlier", "method": "zscore", "window_s": 60, "min_samples": 30},
        {"kind": "outlier", "method": "mad", "window_s": 60, "min_samples": 30, "threshold": 8.0},
    ]
    return [
        base | shape | {"name": f"bench-{metric}-{i}", "severity": "warning"}
        for i, shape in enumerate(shapes)
    ]


def seed(db_url: str, metrics: tuple[str, ...]) -> int:
    async def go() -> int:
        conn = await asyncpg.connect(db_url)
        try:
            rules = [parse_rule(r) for m in metrics for r in rules_for(m)]
            for rule in rules:
                await store.upsert_rule(conn, rule)
            return len(rules)
        finally:
            await conn.close()

    return asyncio.run(go())


class Evaluator:
    """`bridge alarms run` on the bench's config file."""

    def __init__(self, config: Path, log: Path, port: int, root: Path) -> None:
        self.config, self.log, self.port, self.root = config, log, port, root
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Evaluator:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
        argv = [sys.executable, "-m", "bridge.cli", "--config", str(self.config), "alarms", "run"]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=out, env=env, cwd=self.root)
        return self

    def points(self) -> float:
        """Points evaluated so far (0 before it answers)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as r:
                body = r.read().decode()
        except OSError:
            return 0.0
        for line in body.splitlines():
            if line.startswith("bridge_alarm_points_total "):
                return float(line.split()[1])
        return 0.0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
