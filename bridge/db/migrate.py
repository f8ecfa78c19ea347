"""Ordered SQL migrations, applied each in its own transaction and recorded.

Files in the migrations folder are named ``NNNN_name.sql`` (both modes) or
``NNNN_name.plain.sql`` / ``NNNN_name.timescaledb.sql`` (one per mode; a version
needs both). ``bridge_schema_migrations`` records each applied version with
its mode and a checksum of the file applied.

Invariants:
  * A database has one mode, fixed by its first migration; later runs keep it.
  * A migration is applied whole or not at all (its transaction).
  * An applied migration never changes: a checksum mismatch stops the run.
  * Concurrent migrators serialise on an advisory lock; the loser sees the
    winner's work and applies nothing twice.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import asyncpg

from bridge.errors import MigrationError

Mode = Literal["timescaledb", "plain"]
MODES: tuple[Mode, ...] = ("timescaledb", "plain")
_FILE = re.compile(
    r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+?)(?:\.(?P<mode>plain|timescaledb))?\.sql$"
)
SCHEMA_LOCK_KEY = 0x6D717474  # "mqtt": serialises migrators and maintenance

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS bridge_schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    mode       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True)
class Applied:
    version: int
    name: str
    mode: str
    checksum: str


@dataclass(frozen=True)
class Plan:
    mode: Mode
    applied: list[Applied]
    pending: list[Migration]


def discover(directory: Path, mode: Mode) -> list[Migration]:
    """The migrations for ``mode``, in order. Raises MigrationError on a bad folder."""
    if not directory.is_dir():
        raise MigrationError(
            f"migrations folder {directory} does not exist; set database.migrations_dir"
        )
    by_version: dict[int, dict[str | None, Path]] = {}
    names: dict[int, str] = {}
    for path in sorted(directory.glob("*.sql")):
        m = _FILE.match(path.name)
        if not m:
            raise MigrationError(
                f"{path.name}: not a migration file name (NNNN_name.sql or NNNN_name.<mode>.sql)"
            )
        version = int(m["version"])
        if names.setdefault(version, m["name"]) != m["name"]:
            raise MigrationError(
                f"two different migrations share version {version:04d} in {directory}"
            )
        by_version.setdefault(version, {})[m["mode"]] = path
    result = []
    for version in sorted(by_version):
        variants = by_version[version]
        if None in variants and len(variants) > 1:
            raise MigrationError(f"migration {version:04d} has both a common and a per-mode file")
        chosen = variants.get(None) or variants.get(mode)
        if chosen is None:
            raise MigrationError(
                f"migration {version:04d}_{names[version]} has no file for mode {mode}"
            )
        result.append(Migration(version, names[version], chosen, chosen.read_text()))
    return result


@dataclass(frozen=True)
class TimescaleInfo:
    installed: str | None  # extension version created in this database
    available: str | None  # version the server could create
    preloaded: bool  # in shared_preload_libraries, which CREATE EXTENSION needs


async def timescale_info(conn: asyncpg.Connection) -> TimescaleInfo:
    installed = await conn.fetchval(
        "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
    )
    available = await conn.fetchval(
        "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'"
    )
    try:
        preload = await conn.fetchval("SELECT current_setting('shared_preload_libraries')")
        preloaded = "timescaledb" in preload
    except asyncpg.InsufficientPrivilegeError:
        # Unprivileged roles cannot read that setting, but a preloaded library
        # registers its own settings, which anyone can read.
        preloaded = await conn.fetchval(
            "SELECT current_setting('timescaledb.max_background_workers', true) IS NOT NULL"
        )
    return TimescaleInfo(installed, available, preloaded)


async def recorded(conn: asyncpg.Connection) -> list[Applied]:
    """The applied migrations, oldest first; empty for a database never migrated."""
    exists = await conn.fetchval("SELECT to_regclass('bridge_schema_migrations') IS NOT NULL")
    if not exists:
        return []
    rows = await conn.fetch(
        "SELECT version, name, mode, checksum FROM bridge_schema_migrations ORDER BY version"
    )
    return [Applied(r["version"], r["name"], r["mode"], r["checksum"]) for r in rows]


def choose_mode(requested: str, applied: list[Applied], tsdb: TimescaleInfo) -> Mode:
    """The mode to migrate in; raises MigrationError when the request cannot hold."""
    if applied:
        mode = applied[0].mode
        if mode not in MODES:
            raise MigrationError(f"bridge_schema_migrations records an unknown mode {mode!r}")
        if requested not in ("auto", mode):
            raise MigrationError(
                f"this database was migrated in {mode} mode; it cannot switch to {requested}. "
                f'Set database.mode = "auto" or "{mode}", or migrate a new database.'
            )
        return "timescaledb" if mode == "timescaledb" else "plain"
    usable = tsdb.installed is not None or (tsdb.available is not None and tsdb.preloaded)
    if requested == "timescaledb" and not usable:
        if tsdb.available is None:
            why = "the server does not have the TimescaleDB extension: install it"
        else:
            why = (
                "the server has TimescaleDB but does not preload it: add timescaledb to "
                "shared_preload_libraries and restart PostgreSQL"
            )
        raise MigrationError(
            f'database.mode is timescaledb, but {why}. Or set database.mode = "plain" '
            "(bridge db migrate --mode plain)."
        )
    if requested == "plain":
        return "plain"
    return "timescaledb" if usable else "plain"


def plan(directory: Path, mode: Mode, applied: list[Applied]) -> Plan:
    """Checks what was applied against the files; returns what is left to apply."""
    migrations = discover(directory, mode)
    known = {m.version: m for m in migrations}
    for a in applied:
        m = known.get(a.version)
        if m is None:
            raise MigrationError(
                f"the database has migration {a.version:04d}_{a.name}, which this bridge does not "
                "know: the schema is newer than this bridge. Upgrade the bridge."
            )
        if m.checksum != a.checksum:
            raise MigrationError(
                f"migration {m.label} was changed after it was applied ({m.path}). Applied "
                "migrations must never change: restore the file and add a new migration instead."
            )
    done = {a.version for a in applied}
    return Plan(mode, applied, [m for m in migrations if m.version not in done])


async def migrate(
    conn: asyncpg.Connection, directory: Path, requested_mode: str, retention_days: int
) -> Plan:
    """Applies the pending migrations; returns the plan that was carried out."""
    await conn.execute("SELECT pg_advisory_lock($1)", SCHEMA_LOCK_KEY)
    try:
        await conn.execute(_CREATE_TABLE)
        applied = await recorded(conn)
        mode = choose_mode(requested_mode, applied, await timescale_info(conn))
        todo = plan(directory, mode, applied)
        for migration in todo.pending:
            await _apply(conn, migration, mode, retention_days, current=len(applied))
            applied.append(Applied(migration.version, migration.name, mode, migration.checksum))
        return todo
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", SCHEMA_LOCK_KEY)


async def _apply(
    conn: asyncpg.Connection, migration: Migration, mode: Mode, retention_days: int, current: int
) -> None:
    try:
        async with conn.transaction():
            await conn.execute(
                "SELECT set_config('bridge.retention_days', $1, true)", str(retention_days)
            )
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO bridge_schema_migrations (version, name, mode, checksum) "
                "VALUES ($1, $2, $3, $4)",
                migration.version,
                migration.name,
                mode,
                migration.checksum,
            )
    except asyncpg.PostgresError as exc:
        hint = ""
        if exc.sqlstate in ("42P07", "42710", "42723"):  # duplicate table / object / function
            hint = (
                " Objects of this migration already exist without a record in "
                "bridge_schema_migrations: the schema was changed by hand or by another tool, "
                "or a migration was half applied outside this command. Drop those objects or "
                "restore a backup, then run `bridge db migrate` again."
            )
        elif exc.sqlstate == "42501":
            hint = " The database user lacks a privilege this migration needs; ask the DBA."
        raise MigrationError(
            f"migration {migration.label} failed: {exc} (SQLSTATE {exc.sqlstate}). It was "
            f"rolled back; the database stays at {current} applied migration(s).{hint}"
        ) from None
