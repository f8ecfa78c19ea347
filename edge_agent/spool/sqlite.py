"""The durable spool: every reading is written here before anything else
happens to it, and leaves only once the bridge receipted its commit (or the
cloud broker acknowledged it, without receipts: edge_agent/forward.py).

On disk: one SQLite database in WAL mode (``spool.path``, with its ``-wal``
and ``-shm`` files)::

    readings(id INTEGER PRIMARY KEY AUTOINCREMENT,
             device_id TEXT, metric TEXT, time_us INTEGER, value REAL)
    state(key TEXT PRIMARY KEY, value INTEGER)    -- dropped_total, sim_tick, ...

Invariants:

- ``id`` only grows (AUTOINCREMENT never reuses an id, even after the table
  was emptied), so id order is spool order, and "oldest" means lowest id;
- a reading is in ``readings`` from the commit of its ``append`` until the
  commit of the ``delete`` that follows its commit receipt (or its PUBACK,
  when the bridge sends no receipts: edge_agent/forward.py), or until it is
  dropped because the spool is full; nothing else removes it;
- ``append`` is one transaction: the readings and any ``state`` values given
  with them (the simulator's clock) are all there after a crash, or none are;
- at most ``max_readings`` rows: an append that would pass the bound deletes
  the oldest rows in the same transaction and adds their number to the
  persistent ``dropped_total``.

Durability: WAL with ``synchronous=FULL`` fsyncs the log at every commit, so a
committed append survives ``kill -9`` and a power cut. With ``NORMAL`` a
commit is durable against a crash of the process (the WAL is in the page
cache), but a power cut can lose the commits since the last checkpoint (at
most ``wal_autocheckpoint`` pages, about 4 MB, i.e. the newest ~50,000
readings). A delete lost that way only means a reading is sent twice, which
the bridge stores once.

Two connections: the writes (``append``, ``delete``, ``set_state``) go
through one, and the agent runs them on a thread of their own
(edge_agent/spool/writer.py), one at a time; the reads go through the other,
from the event loop. WAL lets a read run while a write waits for its fsync,
and a read sees only committed rows. ``depth``, ``last_id`` and
``dropped_total`` are changed by the writes only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

from core.types import Point

SpooledRow = tuple[int, str, str, int, float]  # id, device_id, metric, time_us, value

_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL,
    metric TEXT NOT NULL,
    time_us INTEGER NOT NULL,
    value REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class Spool:
    def __init__(
        self,
        path: Path,
        max_readings: int,
        synchronous: Literal["full", "normal"] = "full",
    ) -> None:
        self.path = path
        self.max_readings = max_readings
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, one transaction per call.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        self._db.executescript(_SCHEMA)
        self._reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._reader.execute("PRAGMA query_only=ON")
        self.depth = int(self._db.execute("SELECT count(*) FROM readings").fetchone()[0])
        self.dropped_total = self.get_state("dropped_total", 0)
        self.last_id = self._max_id()

    def close(self) -> None:
        self._reader.close()
        self._db.close()

    def append(
        self, readings: Iterable[Point], state: Mapping[str, int] | None = None
    ) -> tuple[int, int]:
        """Stores ``readings`` (and ``state``) in one transaction. Returns the id
        of the first reading stored (the others follow it without a gap: one
        writer) and how many old readings were dropped to stay within
        ``max_readings``."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            cur = db.executemany(
                "INSERT INTO readings (time_us, device_id, metric, value) VALUES (?, ?, ?, ?)",
                readings,
            )
            first_id = self.last_id + 1
            self.depth += cur.rowcount
            self.last_id += cur.rowcount
            dropped = 0
            if self.depth > self.max_readings:
                dropped = db.execute(
                    "DELETE FROM readings WHERE id IN "
                    "(SELECT id FROM readings ORDER BY id LIMIT ?)",
                    (self.depth - self.max_readings,),
                ).rowcount
                self.dropped_total += dropped
                self._put_state("dropped_total", self.dropped_total)
            for key, value in (state or {}).items():
                self._put_state(key, value)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self.depth = int(db.execute("SELECT count(*) FROM readings").fetchone()[0])
            self.dropped_total = _state(db, "dropped_total", 0)  # on this (the writer's) thread
            self.last_id = self._max_id()
            raise
        self.depth -= dropped
        return first_id, dropped

    def read(self, after_id: int, below_id: int | None, limit: int) -> list[SpooledRow]:
        """Up to ``limit`` readings with ``after_id < id < below_id``, oldest first."""
        if below_id is None:
            sql = "SELECT * FROM readings WHERE id > ? ORDER BY id LIMIT ?"
            return self._reader.execute(sql, (after_id, limit)).fetchall()
        sql = "SELECT * FROM readings WHERE id > ? AND id < ? ORDER BY id LIMIT ?"
        return self._reader.execute(sql, (after_id, below_id, limit)).fetchall()

    def read_ids(self, ids: Iterable[int]) -> list[SpooledRow]:
        """The readings with these ids still in the spool, oldest first."""
        wanted = list(ids)
        out: list[SpooledRow] = []
        for i in range(0, len(wanted), 500):  # SQLite's host parameters, at most 999
            chunk = wanted[i : i + 500]
            sql = f"SELECT * FROM readings WHERE id IN ({','.join('?' * len(chunk))})"
            out.extend(self._reader.execute(sql, chunk).fetchall())
        out.sort()
        return out

    def delete(self, ids: Iterable[int]) -> int:
        """Removes acknowledged readings (ids already gone are ignored)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            removed = db.executemany("DELETE FROM readings WHERE id = ?", ((i,) for i in ids))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.depth -= removed.rowcount
        return int(removed.rowcount)

    def _max_id(self) -> int:
        """The highest id ever given (0 for a new spool)."""
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'readings'").fetchone()
        return int(row[0]) if row else 0

    def oldest_time_us(self) -> int | None:
        """The device time of the oldest reading in the spool, None when empty."""
        row = self._reader.execute("SELECT time_us FROM readings ORDER BY id LIMIT 1").fetchone()
        return None if row is None else int(row[0])

    def file_bytes(self) -> int:
        return sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())

    def get_state(self, key: str, default: int) -> int:
        return _state(self._reader, key, default)

    def set_state(self, key: str, value: int) -> None:
        """Stores one state value, in its own transaction."""
        self._put_state(key, value)

    def _put_state(self, key: str, value: int) -> None:
        self._db.execute(
            "INSERT INTO state (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


def _state(db: sqlite3.Connection, key: str, default: int) -> int:
    row = db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
    return default if row is None else int(row[0])
