"""History reads from a streaming read replica (database.read_url), without
a gap while it lags.

A history read must see every point committed before it began, as it would
on the primary. Time cannot decide that: a late point (an edge agent's spool
sent after an outage, hours old) is committed now, before the cache's seam,
so a replica that replayed "up to a minute ago" may still lack it. WAL
positions can: the read notes the primary's WAL position, and the replica
serves it only once it has replayed that far, waiting at most
``REPLAY_WAIT_S`` (streaming replication usually trails by milliseconds);
otherwise the primary serves it. The cost on the primary is one tiny query.

Invariant: ``replayed`` only grows. Replay is monotonic, so a position read
once stays a lower bound, and a read that needs no more asks nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import asyncpg

REPLAY_WAIT_S = 0.05
POLL_S = 0.005
# WAL positions as bytes from the start of the WAL.
PRIMARY_POSITION = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"
REPLAYED_POSITION = "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint"


class ReplicaGate:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.replayed = 0  # the replica's replay position (bytes into the WAL), a lower bound

    async def covers(self, primary: asyncpg.Connection) -> bool:
        """True when the replica has replayed everything the primary had
        written when this was called; False when it lags (or cannot answer)."""
        need = int(await primary.fetchval(PRIMARY_POSITION))
        if self.replayed >= need:
            return True
        deadline = time.monotonic() + REPLAY_WAIT_S
        try:
            async with self.pool.acquire() as conn:
                while True:
                    at = await conn.fetchval(REPLAYED_POSITION)
                    self.replayed = max(self.replayed, int(at or 0))
                    if self.replayed >= need or time.monotonic() >= deadline:
                        return self.replayed >= need
                    await asyncio.sleep(POLL_S)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.pool.acquire() as conn:
            yield conn
