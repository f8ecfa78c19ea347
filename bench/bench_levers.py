"""Bridge settings against each other on the ingest bench, interleaved in one run.

The phases of compare_ingest.py (batched messages, single-reading messages,
the drain of a queued backlog, latency at a fixed rate) run with the bridge of
this checkout under each variant's settings in turn, on the same private
services, round after round (the order rotates), so that every variant sees
the same machine at nearly the same time. The first variant is the reference
of the ratios:

    .venv/bin/python bench/bench_levers.py \\
        --variant "old:database.write_route=copy,redis.write_interval_ms=0" \\
        --variant "unnest:redis.write_interval_ms=0" --variant "defaults:" [--rounds 2] [--quick] [--phases drain,single]

Prints each figure per round and each variant's ratio to the first with its
range; writes bench/results/levers.json (``--quick``: levers-quick.json, and
a run of fewer phases levers-partial.json, not kept). bench/README.md ("the drain levers") says what was chosen and why.
"""

from __future__ import annotations

import argparse
import json
import signal
import time
from pathlib import Path
from typing import Any

import bench_ingest as bi
import compare_ingest
from compare_ingest import PHASES, one_round, print_ratios, ratios_of
from services import Services

ROOT = Path(__file__).resolve().parent.parent


def parse_variant(text: str) -> tuple[str, dict[str, dict[str, Any]]]:
    """``name:section.key=value,...`` -> (name, {section: {key: value}})."""
    name, _, sets = text.partition(":")
    if not name:
        raise argparse.ArgumentTypeError(f"{text!r}: give the variant a name, name:settings")
    return name, bi.parse_sets([s for s in sets.split(",") if s])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--variant",
        action="append",
        required=True,
        help="name:section.key=value,... (repeatable; the first is the reference)",
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="bench_ingest's small sizes")
    parser.add_argument("--phases", default=",".join(PHASES), help="phases, a,b,...")
    parser.add_argument(
        "--latency-rate",
        type=float,
        default=compare_ingest.LATENCY_RATE,
        help=f"points/s of the latency phase (default {compare_ingest.LATENCY_RATE:,})",
    )
    args = parser.parse_args()
    variants = dict(parse_variant(v) for v in args.variant)
    if len(variants) < 2:
        parser.error("give at least two variants with different names")
    sizes = bi.QUICK if args.quick else bi.FULL
    compare_ingest.LATENCY_RATE = args.latency_rate
    phases = tuple(p for p in args.phases.split(",") if p)
    if unknown := set(phases) - set(PHASES):
        parser.error(f"unknown phases {sorted(unknown)}; choose from {', '.join(PHASES)}")

    def on_term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    svc = Services(bi.PORTS, "bench-levers")
    names = list(variants)
    runs: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    began = time.monotonic()
    try:
        svc.start()
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                bi._options["set"] = variants[name]
                print(f"round {r + 1}/{args.rounds}: {name} {variants[name]} ...", flush=True)
                figures = one_round(svc, sizes, phases)
                runs[name].append(figures)
                print("  " + ", ".join(f"{k} {v:,}" for k, v in figures.items()), flush=True)
        info = bi.machine(svc, "plain" if not svc.timescaledb else "timescaledb")
    finally:
        svc.stop()
    reference = names[0]
    ratios = {name: ratios_of(runs[name], runs[reference]) for name in names[1:]}
    for name, figures in ratios.items():
        print_ratios(f"{name} / {reference}", figures)
    results: dict[str, Any] = {
        "what": "bench_ingest phases under several bridge settings, interleaved",
        "note": f"{info['nproc']} cores shared by every component (broker, database, Redis, "
        "bridge, publisher); compare the variants, not the absolute figures",
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": info,
        "quick": args.quick,
        "variants": variants,
        "latency_rate_points_per_s": args.latency_rate,
        "runs": runs,
        "ratio_to_first": ratios,
        "elapsed_s": round(time.monotonic() - began, 1),
    }
    name = "levers.json" if phases == PHASES else "levers-partial.json"
    out = ROOT / "bench" / "results" / ("levers-quick.json" if args.quick else name)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
