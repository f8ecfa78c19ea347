"""Throughput over time per contender (bench_peers.py), as matplotlib PNGs.

One figure per phase: points/s stored, from the rows polled in the database,
over 1-second windows, one line per contender and round (round 2 dashed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")  # no display: files only
import matplotlib.pyplot as plt

TITLES = {
    "batch": "live, 100-reading messages",
    "single": "live, single-reading messages",
    "drain": "drain of a queued backlog (from process start)",
    "kill": "kill -9 at about 50%, then restart",
}
COLORS = {
    "bridge": "tab:blue",
    "nodered-typical": "tab:red",
    "nodered-skilled": "tab:orange",
    "naive": "tab:gray",
}


def rate_series(
    timeline: list[list[float]], window: float = 1.0
) -> tuple[list[float], list[float]]:
    """(time, points/s) over successive windows of `window` seconds; the last,
    shorter window too, so a run shorter than a window still shows."""
    xs: list[float] = []
    ys: list[float] = []
    if not timeline:
        return xs, ys
    t_prev, n_prev = timeline[0]
    xs.append(t_prev)
    ys.append(0.0)
    for k, (t, n) in enumerate(timeline[1:], start=1):
        last = k == len(timeline) - 1
        if t - t_prev >= window or (last and t - t_prev > window / 10):
            xs.append(t)
            ys.append((n - n_prev) / (t - t_prev))
            t_prev, n_prev = t, n
    return xs, ys


def plot(
    runs: dict[str, dict[str, list[dict[str, Any]]]], out_dir: Path, prefix: str
) -> list[Path]:
    """runs[contender][phase] = [round 1, round 2, ...]; returns the files written."""
    written = []
    for phase, title in TITLES.items():
        fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
        drew = False
        for name, phases in runs.items():
            for i, run in enumerate(phases.get(phase, [])):
                xs, ys = rate_series(run.get("timeline", []))
                if not xs:
                    continue
                label = name if i == 0 else f"{name} (round {i + 1})"
                style = "-" if i == 0 else "--"
                ax.plot(xs, ys, style, color=COLORS.get(name), label=label, linewidth=1.4)
                drew = True
                if phase == "kill" and "killed_at_s" in run:
                    ax.axvline(run["killed_at_s"], color=COLORS.get(name), linestyle=":", alpha=0.6)
        if not drew:
            plt.close(fig)
            continue
        ax.set_title(f"Points/s stored: {title}")
        ax.set_xlabel(
            "seconds"
            + (" from process start" if phase in ("drain", "kill") else " from the first publish")
        )
        ax.set_ylabel("points/s (1 s windows)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / f"{prefix}-{phase}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written
