"""The bridge side by side with its peers: Node-RED (two flows) and a naive Python bridge.

Private services (Mosquitto 41883, PostgreSQL 45432, Redis 46379; the bridge's
health port 49108; Node-RED runs headless, on no port), so it never meets
bench_ingest.py's or the dev/test stacks'. Node-RED, Node 22 and `pg` are installed from npm into
bench/.peers/ on first use (peers/contenders.py). Contenders:

  bridge            `bridge run`, defaults (batch 1000 points / 200 ms, Redis cache on)
  nodered-typical   Node-RED, one INSERT per message from a function node
  nodered-skilled   Node-RED, join 1,000 messages / 0.2 s, one multi-row INSERT
                    (unnest arrays) ... ON CONFLICT DO NOTHING
  naive             peers/naive_bridge.py: aiomqtt iterator + asyncpg executemany

Same publisher (raw_publisher.py: QoS 1, a window of 5000), broker config and
database for all; each phase in a fresh database; rounds interleaved (round 2
runs the contenders in reverse order). Phases (peers/measure.py):

  batch    live points/s, 100-reading seed_json messages, first publish to last row
  single   live points/s, single-reading messages
  drain    a queued backlog of single-reading messages: points/s from process
           start, and from first row to last
  kill     the same backlog, kill -9 at about 50%, restart: missing and duplicated

Ratios bridge/peer per figure, with the run-to-run range (min bridge / max
peer .. max bridge / min peer). Plots: throughput over time per contender.

    .venv/bin/python bench/bench_peers.py [--quick] [--only bridge,naive] [--phases drain,kill]

Writes bench/results/peers.json and peers-*.png; --quick writes peers-quick.*,
and a run of fewer contenders, phases or rounds peers-partial.* (both ignored
by git: smoke tests and probes, not figures).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import bench_ingest
from peers import contenders, measure
from peers.plots import plot
from services import Ports, Services, machine_info

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PORTS = Ports(45432, 46379, 41883, also=(49108,))
PHASES = ("batch", "single", "drain", "kill")
KILL_AT = 0.5


@dataclass(frozen=True)
class Sizes:
    batch_messages: int  # 300 points each
    batch_devices: int
    single_messages: int  # 3 points each
    single_devices: int
    backlog_messages: int  # single-reading, for the drain and the kill
    rounds: int
    stall_s: float  # no new row for this long: the phase is over
    quiet_s: float  # wait at most this long for other work to calm down


# Live phases long enough (10-40 s for the three fast contenders) that the
# first and last batch's wait and the host's moment-to-moment noise do not
# decide a ratio: with 2,000 and 60,000 messages they lasted 3-5 s, and the
# same contender's two rounds differed by up to 20%.
FULL = Sizes(6_000, 200, 180_000, 1000, 150_000, 2, 20, 45)
QUICK = Sizes(100, 200, 10_000, 1000, 15_000, 1, 10, 3)
SLOW_LIVE_SHARE = {"naive": 0.2}
"""The naive bridge stores 15-20x fewer points per second: its live phases
publish this share of the messages (same shape and devices), so that each
lasts about a minute rather than five. Its rate is a rate all the same; the
drain and the kill use the full backlog for every contender."""


def run_phase(svc: Services, name: str, phase: str, rnd: int, sizes: Sizes) -> dict[str, Any]:
    tag = f"{phase}_{name.replace('-', '_')}_r{rnd}"
    waits = {"stall_s": sizes.stall_s, "quiet_s": sizes.quiet_s}
    share = SLOW_LIVE_SHARE.get(name, 1.0)
    if phase == "batch":
        n, d = int(sizes.batch_messages * share), sizes.batch_devices
        return measure.live(svc, name, phase, tag, messages=n, devices=d, **waits)
    if phase == "single":
        n, d = int(sizes.single_messages * share), sizes.single_devices
        return measure.live(svc, name, phase, tag, messages=n, devices=d, **waits)
    kill = KILL_AT if phase == "kill" else None
    n, d = sizes.backlog_messages, sizes.single_devices
    return measure.backlog(svc, name, tag, messages=n, devices=d, kill_at=kill, **waits)


def headline(phase: str, r: dict[str, Any]) -> str:
    if phase == "kill" and not r.get("kill_landed_mid_drain", True):
        return f"the kill landed after all {r['points']:,} points were stored: no finding"
    if phase == "kill":
        return (
            f"killed at {r.get('killed_at_points', 0):,} rows; after restart {r['stored']:,}"
            f"/{r['points']:,}: {r['missing']:,} missing, {r['duplicated']:,} duplicated; "
            f"peak RSS {r['rss_peak_mb']:.0f} MB"
        )
    if phase == "drain":
        rate = r.get("from_start_points_per_s")
        ftl = r.get("first_to_last_points_per_s")
        figure = (
            f"{rate:,} points/s from start, {ftl or 0:,} first row to last"
            if rate
            else (f"INCOMPLETE: {r['stored']:,}/{r['points']:,}")
        )
    else:
        rate = r.get("points_per_s")
        figure = f"{rate:,} points/s" if rate else f"INCOMPLETE: {r['stored']:,}/{r['points']:,}"
    cpu = r.get("cpu_percent_of_one_core", {})
    busy = ", ".join(
        f"{k} {v:.0f}%"
        for k, v in cpu.items()
        if isinstance(v, float) and k not in ("machine capacity",) and v >= 5
    )
    flag = " [DISTURBED]" if r.get("disturbed") else ""
    return f"{figure}; peak RSS {r['rss_peak_mb']:.0f} MB; CPU {busy}{flag}"


FIGURES = {  # summary name -> (phase, key); higher is better
    "batch_points_per_s": ("batch", "points_per_s"),
    "single_points_per_s": ("single", "points_per_s"),
    "drain_from_start_points_per_s": ("drain", "from_start_points_per_s"),
    "drain_first_to_last_points_per_s": ("drain", "first_to_last_points_per_s"),
}


def summarize(runs: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, phases in runs.items():
        s: dict[str, Any] = {}
        for figure, (phase, key) in FIGURES.items():
            s[figure] = [r.get(key) for r in phases.get(phase, [])]
        s["kill_missing_points"] = [r["missing"] for r in phases.get("kill", [])]
        s["kill_duplicated_points"] = [r["duplicated"] for r in phases.get("kill", [])]
        s["kill_landed_mid_drain"] = [r["kill_landed_mid_drain"] for r in phases.get("kill", [])]
        s["rss_peak_mb"] = max(
            (r["rss_peak_mb"] for rs in phases.values() for r in rs), default=None
        )
        s["cpu_percent_of_one_core_in_drain"] = [
            r.get("cpu_percent_of_one_core", {}).get(name) for r in phases.get("drain", [])
        ]
        out[name] = s
    return out


def ratios(summary: dict[str, Any]) -> dict[str, Any]:
    """bridge / peer for each figure: the ratio of means and the run-to-run range."""
    if "bridge" not in summary:
        return {}
    out: dict[str, Any] = {}
    ours = summary["bridge"]
    for peer, theirs in summary.items():
        if peer == "bridge":
            continue
        out[peer] = {}
        for figure in FIGURES:
            b = [x for x in ours[figure] if x]
            p = [x for x in theirs[figure] if x]
            if not b or not p:
                out[peer][figure] = None
                continue
            out[peer][figure] = {
                "ratio": round(statistics.mean(b) / statistics.mean(p), 2),
                "range": [round(min(b) / max(p), 2), round(max(b) / min(p), 2)],
            }
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one round: a smoke test")
    parser.add_argument("--only", default=",".join(contenders.NAMES), help="contenders, a,b,...")
    parser.add_argument("--phases", default=",".join(PHASES), help="phases, a,b,...")
    parser.add_argument("--rounds", type=int, help="rounds (default 2, 1 with --quick)")
    args = parser.parse_args()
    args.names = [n for n in args.only.split(",") if n]
    args.phase_list = [p for p in args.phases.split(",") if p]
    for option, given, known in (
        ("--only", args.names, contenders.NAMES),
        ("--phases", args.phase_list, PHASES),
    ):
        for item in given:
            if item not in known:
                raise SystemExit(f"{option}: unknown {item!r}; choose from {', '.join(known)}")
    args.sizes = QUICK if args.quick else FULL
    args.rounds = args.rounds or args.sizes.rounds
    return args


def run_rounds(svc: Services, args: argparse.Namespace) -> dict[str, dict[str, list[Any]]]:
    """runs[contender][phase] = one result per round; round 2 in reverse order."""
    runs: dict[str, dict[str, list[Any]]] = {n: {} for n in args.names}
    for rnd in range(1, args.rounds + 1):
        order = args.names if rnd % 2 else args.names[::-1]
        for phase in args.phase_list:
            for name in order:
                print(f"  round {rnd}, {phase}, {name} ...", flush=True)
                r = run_phase(svc, name, phase, rnd, args.sizes)
                runs[name].setdefault(phase, []).append(r)
                print(f"    {headline(phase, r)}", flush=True)
                if "log_tail" in r:
                    tail = r["log_tail"][-1500:].replace("\n", "\n      ")
                    print(f"    its log ends:\n      {tail}")
    return runs


def main() -> None:
    args = parse_args()
    complete = (
        args.names == list(contenders.NAMES)
        and args.phase_list == list(PHASES)
        and args.rounds >= FULL.rounds
    )
    # Only a full run of everything writes the figures that count.
    prefix = "peers-quick" if args.quick else ("peers" if complete else "peers-partial")

    def on_term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    measure.patch_ports(PORTS.mqtt, PORTS.also[0])
    began = time.monotonic()
    versions = contenders.ensure_installed()
    # Commit timestamps date every row's commit (peers/measure.py), for every contender.
    svc = Services(PORTS, "bench-peers", pg_settings=["track_commit_timestamp=on"])
    try:
        svc.start()
        mode = asyncio.run(svc.create_db("peers_probe"))
        asyncio.run(svc.drop_db("peers_probe"))
        info = machine_info(svc, mode, ["asyncpg", "aiomqtt", "matplotlib"])
        print(
            f"machine: {info['nproc']} cores ({info['cpu']}), PostgreSQL {info['postgresql']} "
            f"({mode}), Mosquitto {info['mosquitto']}, Redis {info['redis']}; Node-RED "
            f"{versions['node-red']} on Node {versions['node']}, pg {versions['pg']}"
        )
        runs = run_rounds(svc, args)
        summary = summarize(runs)
        every = [r for p in runs.values() for rs in p.values() for r in rs]
        results: dict[str, Any] = {
            "what": "the bridge side by side with Node-RED flows and a naive Python bridge: "
            "same publisher, broker config and database; rates from rows counted in the database",
            "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "quick": args.quick,
            "smoke_test_only": args.quick,
            "disturbed": any(r.get("disturbed") for r in every),
            "machine": info,
            "peers": versions,
            "sizes": asdict(args.sizes)
            | {"rounds": args.rounds, "live_share_of_messages": SLOW_LIVE_SHARE},
            "contenders": args.names,
            "summary": summary,
            "ratios_bridge_to_peer": ratios(summary),
            "runs": runs,
            "elapsed_s": round(time.monotonic() - began, 1),
        }
        RESULTS_DIR.mkdir(exist_ok=True)
        out = RESULTS_DIR / f"{prefix}.json"
        out.write_text(json.dumps(results, indent=1) + "\n")
        pngs = plot(runs, RESULTS_DIR, prefix)
        print_ratios(results["ratios_bridge_to_peer"], summary)
        print(f"wrote {out} and {len(pngs)} plots ({results['elapsed_s']:.0f}s)")
    finally:
        end_children()
        svc.stop()


def end_children() -> None:
    for proc in contenders.STARTED:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    for child in bench_ingest._children:  # its Publisher processes
        with contextlib.suppress(Exception):
            if hasattr(child, "is_alive") and child.is_alive():
                child.kill()
                child.join(10)


def print_ratios(table: dict[str, Any], summary: dict[str, Any]) -> None:
    for peer, figures in table.items():
        shown = [
            f"    {figure:<36} {r['ratio']:.2f}x (range {r['range'][0]:.2f}-{r['range'][1]:.2f})"
            for figure, r in figures.items()
            if r is not None
        ]
        if shown:
            print(f"  bridge / {peer}:", *shown, sep="\n")
    kills = {n: s for n, s in summary.items() if s["kill_missing_points"]}
    if kills:
        print("  kill -9 mid-drain, then restart (missing / duplicated points per round):")
        for name, s in kills.items():
            rounds = zip(
                s["kill_missing_points"],
                s["kill_duplicated_points"],
                s["kill_landed_mid_drain"],
                strict=True,
            )
            print(
                f"    {name:<18}"
                + ", ".join(
                    f"{m:,} / {d:,}" + ("" if mid else " (kill too late: no finding)")
                    for m, d, mid in rounds
                )
            )


if __name__ == "__main__":
    main()
