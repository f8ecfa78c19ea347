"""Latency CDFs of bench_burst.py, one panel per ingest route, one line per phase.

Latency from each arrival's due time (open loop), answered arrivals only; the
x axis is logarithmic so the warm-up's milliseconds and the burst's tail both
show.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")  # no display: files only
import matplotlib.pyplot as plt
from burst_load import Outcome

COLORS = {"warm-up": "tab:green", "burst": "tab:red", "cool-down": "tab:blue"}


def latency_cdf(by_route: dict[str, list[Outcome]], path: Path) -> Path:
    fig, axes = plt.subplots(
        1, len(by_route), figsize=(6 * len(by_route), 4.5), dpi=110, squeeze=False
    )
    for ax, (route, outcomes) in zip(axes[0], by_route.items(), strict=True):
        phases = list(dict.fromkeys(o.phase for o in outcomes))
        for phase in phases:
            ms = sorted((o.done - o.due) * 1000 for o in outcomes if o.phase == phase and o.status)
            if not ms:
                continue
            ys = [(i + 1) / len(ms) for i in range(len(ms))]
            ax.plot(ms, ys, color=COLORS.get(phase), label=f"{phase} ({len(ms):,})")
        ax.set_xscale("log")
        ax.set_title(f"api.ingest_via = {route}")
        ax.set_xlabel("ms from the arrival's due time")
        ax.set_ylabel("share of answered arrivals")
        for q in (0.5, 0.95, 0.99):
            ax.axhline(q, color="gray", linewidth=0.5, linestyle=":")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle("Burst: latency CDF per phase (open loop)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
