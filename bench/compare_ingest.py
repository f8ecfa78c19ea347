"""Ingest before and after a change, interleaved in one run.

The phases of bench_ingest.py (batched messages, single-reading messages, the
drain of a queued backlog, latency at a fixed rate) run with the bridge of
two checkouts in turn, on the same private services, round after round, so
that both see the same machine at nearly the same time:

    .venv/bin/python bench/compare_ingest.py --before ../old-checkout [--rounds 2] [--quick] [--phases drain]

``--before`` is another checkout of this repository with its own ``.venv``
(``git worktree add ../old-checkout <commit> && (cd ../old-checkout &&
scripts/venv.sh)``). Prints each figure per round and the after/before ratio
with its range; writes bench/results/compare_ingest.json.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import bench_ingest as bi
from services import Services

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "compare_ingest.json"
LATENCY_RATE = 50_000  # points/s: the same fixed rate for both, about half of the batch rate


def commit_of(tree: Path) -> str:
    out = subprocess.run(
        ["git", "-C", str(tree), "log", "-1", "--format=%h %s"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()[:100]


PHASES = ("batch", "single", "drain", "latency")
OPTIONAL = ("sparkplug",)  # only when named in --phases: Sparkplug NDATA as bench_ingest's formats


def one_round(
    svc: Services,
    sizes: bi.Sizes,
    phases: tuple[str, ...] = PHASES,
    latency_rate: int = LATENCY_RATE,
) -> dict[str, float]:
    out: dict[str, float] = {}
    rss = 0.0
    if "batch" in phases:
        batch = bi.throughput(svc, "batch", "batch", sizes.batch_messages, sizes.batch_devices)
        out["batch_points_per_s"] = batch["points_per_s"]
        out["batch_bridge_cpu_us_per_message"] = batch["cpu_us_per_message"].get("bridge", 0.0)
        rss = max(rss, batch["rss_peak_mb"])
    if "sparkplug" in phases:
        n, nodes = sizes.batch_messages * 3, bi.sparkplug_nodes(sizes)
        spark = bi.throughput(svc, "sparkplug", "sparkplug", n, nodes)
        out["sparkplug_points_per_s"] = spark["points_per_s"]
        out["sparkplug_bridge_cpu_us_per_point"] = (
            spark["cpu_us_per_message"].get("bridge", 0.0) / 100
        )
        out["sparkplug_postgres_cpu_us_per_point"] = (
            spark["cpu_us_per_message"].get("postgres", 0.0) / 100
        )
        rss = max(rss, spark["rss_peak_mb"])
    if "single" in phases:
        single = bi.throughput(
            svc, "single_w1", "single", sizes.single_messages, sizes.single_devices
        )
        out["single_msgs_per_s"] = single["msgs_per_s"]
        out["single_bridge_cpu_us_per_message"] = single["cpu_us_per_message"].get("bridge", 0.0)
        rss = max(rss, single["rss_peak_mb"])
    if "drain" in phases:
        drained = bi.drain(svc, sizes.single_messages, sizes.single_devices)
        cpu = drained["cpu_us_per_message"]
        out["drain_msgs_per_s"] = drained["msgs_per_s"]
        out["drain_from_start_msgs_per_s"] = drained["from_process_start_msgs_per_s"]
        out["drain_bridge_cpu_us_per_message"] = cpu.get("bridge", 0.0)
        out["drain_redis_cpu_us_per_message"] = cpu.get("redis", 0.0)
        out["drain_postgres_cpu_us_per_message"] = cpu.get("postgres", 0.0)
        rss = max(rss, drained["rss_peak_mb"])
    if "latency" in phases:
        lat = bi.latency(svc, latency_rate, sizes)  # the rate is per point; both get the same
        for q in ("p50", "p90", "p99"):
            out[f"{q}_committed_ms"] = lat["committed"][q]
            out[f"{q}_redis_ms"] = lat["redis"][q]
        out["latency_machine_percent"] = lat["cpu_percent_of_one_core"]["machine total"]
    if rss:
        out["rss_peak_mb"] = rss
    return out


def ratios_of(
    runs: list[dict[str, float]], reference: list[dict[str, float]]
) -> dict[str, dict[str, float]]:
    """Per figure, the round-by-round ratio of runs to reference: mean, min, max."""
    out: dict[str, dict[str, float]] = {}
    for key in runs[0]:
        pairs = [a[key] / b[key] for a, b in zip(runs, reference, strict=True) if b[key]]
        if pairs:
            out[key] = {
                "mean": round(statistics.fmean(pairs), 3),
                "min": round(min(pairs), 3),
                "max": round(max(pairs), 3),
            }
    return out


def print_ratios(title: str, ratios: dict[str, dict[str, float]]) -> None:
    print(f"{title} (mean, range over rounds):")
    for key, r in ratios.items():
        print(f"  {key:36} {r['mean']:.3f}  ({r['min']:.3f} - {r['max']:.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the other checkout")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="bench_ingest's small sizes")
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"comma-separated, of {', '.join(PHASES + OPTIONAL)} (default: all but "
        f"{', '.join(OPTIONAL)}); any other set writes "
        "compare_ingest-partial.json",
    )
    parser.add_argument(
        "--latency-rate",
        type=int,
        default=LATENCY_RATE,
        help="points/s of the latency phase, the same for both (default %(default)s; "
        "bench_ingest uses half of its batch rate)",
    )
    args = parser.parse_args()
    phases = tuple(p for p in args.phases.split(",") if p)
    if not phases or set(phases) - set(PHASES + OPTIONAL):
        parser.error(f"--phases: choose among {', '.join(PHASES + OPTIONAL)}")
    before = args.before.resolve()
    if not (before / ".venv" / "bin" / "python").exists():
        sys.exit(f"{before}/.venv is missing: run scripts/venv.sh in that checkout first")
    sizes = bi.QUICK if args.quick else bi.FULL
    trees = {"before": before, "after": ROOT}

    def on_term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    svc = Services(bi.PORTS, "bench-compare")
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    began = time.monotonic()
    try:
        svc.start()
        for n in range(args.rounds):
            order = ["before", "after"] if n % 2 == 0 else ["after", "before"]
            for name in order:
                bi._options["bridge_root"] = svc.bridge_root = trees[name]
                print(f"round {n + 1}/{args.rounds}: {name} ...", flush=True)
                figures = one_round(svc, sizes, phases, args.latency_rate)
                runs[name].append(figures)
                print("  " + ", ".join(f"{k} {v:,}" for k, v in figures.items()), flush=True)
        info = bi.machine(svc, "plain" if not svc.timescaledb else "timescaledb")
    finally:
        svc.stop()
    ratios = ratios_of(runs["after"], runs["before"])
    print_ratios("after / before", ratios)
    results: dict[str, Any] = {
        "what": "bench_ingest phases with the bridge of two checkouts, interleaved",
        "note": f"{info['nproc']} cores shared by every component (broker, database, Redis, "
        "bridge, publisher); compare the two columns, not the absolute figures",
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": info,
        "quick": args.quick,
        "phases": list(phases),
        "before": {"commit": commit_of(before), "runs": runs["before"]},
        "after": {"commit": commit_of(ROOT), "runs": runs["after"]},
        "ratio_after_to_before": ratios,
        "elapsed_s": round(time.monotonic() - began, 1),
    }
    out = (
        RESULTS if sorted(phases) == sorted(PHASES) else RESULTS.with_stem("compare_ingest-partial")
    )
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
