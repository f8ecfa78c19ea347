"""How late this machine wakes a sleeping process: an asyncio loop that
sleeps 5 ms at a time for N seconds and prints, as JSON, how late it woke
(p50, p99, max, in ms). Run beside a timing test, it tells an agent that is
late from a machine that did not schedule anyone on time.

    python -m tests.edge.lateness_probe SECONDS
"""

from __future__ import annotations

import asyncio
import json
import sys
import time


async def probe(seconds: float) -> dict[str, float]:
    late: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        due = time.monotonic() + 0.005
        await asyncio.sleep(0.005)
        late.append(time.monotonic() - due)
    late.sort()
    return {
        "p50_ms": round(1000 * late[len(late) // 2], 2),
        "p99_ms": round(1000 * late[int(0.99 * len(late))], 1),
        "max_ms": round(1000 * late[-1], 1),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(probe(float(sys.argv[1])))))
