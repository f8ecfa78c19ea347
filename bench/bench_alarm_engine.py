"""The alarm engine's cost per point, rule kind by rule kind.

The engine (bridge.alarms.evaluate) alone, in this process, on the ingest
bench's rule set (alarm_load.rules_for: ten rules on a metric, one of each
shape) over 10 Hz series whose windows are full (600 samples in the outlier
rules' 60 s). No services: this is the evaluator's ceiling, before its
reads of the stream and its writes of state.

    .venv/bin/python bench/bench_alarm_engine.py [--before ../old-checkout] [--rounds 5]

``--before`` is another checkout of this repository: its engine runs in a
child process (the same interpreter, that checkout first on the path) in
turns with this one, round after round, so that both see the machine alike;
the after/before ratio of the cost per point is reported with its range.
Writes bench/results/alarm_engine.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from alarm_load import rules_for

from bridge.alarms import evaluate
from bridge.alarms.rules import parse_rule
from core.types import Point

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "alarm_engine.json"
SERIES = 20
WARM = 700  # points per series before timing: windows full
TIMED = 300  # points per series timed
US = 1_000_000


def measure() -> dict[str, float]:
    """µs per point for each rule alone and for the ten together; best of
    three passes."""
    rules = [parse_rule(r) for r in rules_for("temp")]

    def run(chosen: list[int]) -> float:
        best = math.inf
        for _ in range(3):
            engine = evaluate.Engine({i: rules[i] for i in chosen})
            points = [
                Point(k * US // 10, f"dev-{d}", "temp", 20.0 + math.sin(k / 7 + d))
                for k in range(WARM + TIMED)
                for d in range(SERIES)
            ]
            for p in points[: WARM * SERIES]:
                engine.observe(p, None, None, now_us=p.time_us)
            timed = points[WARM * SERIES :]
            start = time.perf_counter()
            for p in timed:
                engine.observe(p, None, None, now_us=p.time_us)
            best = min(best, (time.perf_counter() - start) / len(timed) * US)
        return best

    out = {f"{i} {describe(rules[i])}": run([i]) for i in range(len(rules))}
    out["all ten"] = run(list(range(len(rules))))
    return out


def describe(rule: Any) -> str:
    method = getattr(rule, "method", None)
    return f"{rule.kind} {method}" if method else rule.kind


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return ""


def child(tree: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{tree / 'bench'}"}
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--measure-only"],
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    if not Path(result.pop("engine")).resolve().is_relative_to(tree):
        raise SystemExit(f"the engine of {tree} did not load; is it a checkout of this repository?")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="another checkout to compare against")
    parser.add_argument("--rounds", type=int, default=5, help="turns of each (default 5)")
    parser.add_argument("--measure-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_only:
        print(json.dumps({"engine": evaluate.__file__, **measure()}))
        return
    after: list[dict[str, float]] = []
    before: list[dict[str, float]] = []
    for n in range(args.rounds):
        after.append(child(ROOT))
        if args.before:
            before.append(child(args.before.resolve()))
        print(f"round {n + 1}/{args.rounds}: all ten {after[-1]['all ten']:.1f} µs/point", end="")
        print(f" (before {before[-1]['all ten']:.1f})" if before else "", flush=True)
    report: dict[str, Any] = {
        "machine": {
            "nproc": len(os.sched_getaffinity(0)),
            "cpu": cpu_model() or platform.processor(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
        "series": SERIES,
        "window_samples": 600,
        "us_per_point": {k: statistics.median(r[k] for r in after) for k in after[0]},
    }
    if before:
        report["before"] = str(args.before)
        report["before_us_per_point"] = {
            k: statistics.median(r[k] for r in before) for k in before[0]
        }
        report["after_over_before"] = {
            k: {
                "median": statistics.median(ratios),
                "range": [min(ratios), max(ratios)],
            }
            for k in after[0]
            if (ratios := [a[k] / b[k] for a, b in zip(after, before, strict=True)])
        }
    for k, v in report["us_per_point"].items():
        line = f"{k:24} {v:8.1f} µs/point"
        if ratio := report.get("after_over_before", {}).get(k):
            low, high = ratio["range"]
            line += f"  after/before {ratio['median']:.2f} ({low:.2f}-{high:.2f})"
        print(line)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
