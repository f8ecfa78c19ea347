"""Migrations: idempotence, recording, and the failure modes a user can hit."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import asyncpg
import pytest

from bridge.config import DatabaseSettings
from bridge.db.migrate import Applied, TimescaleInfo, choose_mode, discover, migrate, recorded
from bridge.errors import MigrationError

MIGRATIONS = DatabaseSettings().migrations_dir
SHIPPED = discover(MIGRATIONS, "plain")
VERSIONS = [m.version for m in SHIPPED]
NEXT = f"{VERSIONS[-1] + 1:04d}"  # the version a new migration would take

SCHEMA_SNAPSHOT = """
SELECT c.relname, c.relkind, a.attname, format_type(a.atttypid, a.atttypmod)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = 'public'
ORDER BY 1, 3
"""


async def _snapshot(conn: asyncpg.Connection) -> list[tuple[object, ...]]:
    return [tuple(r) for r in await conn.fetch(SCHEMA_SNAPSHOT)]


async def test_migrate_twice_changes_nothing(empty_db: str) -> None:
    conn = await asyncpg.connect(empty_db)
    try:
        first = await migrate(conn, MIGRATIONS, "plain", 90)
        assert [m.label for m in first.pending] == [m.label for m in SHIPPED]
        assert [m.label for m in first.pending][:2] == ["0001_registry", "0002_telemetry"]
        before = await _snapshot(conn)
        second = await migrate(conn, MIGRATIONS, "auto", 90)
        assert second.pending == []
        assert second.mode == "plain"
        assert await _snapshot(conn) == before
        assert [a.version for a in await recorded(conn)] == VERSIONS
    finally:
        await conn.close()


async def test_concurrent_migrators_apply_each_migration_once(empty_db: str) -> None:
    conns = [await asyncpg.connect(empty_db) for _ in range(3)]
    try:
        plans = await asyncio.gather(*(migrate(c, MIGRATIONS, "plain", 90) for c in conns))
        assert sorted(len(p.pending) for p in plans) == [0, 0, len(SHIPPED)]
        assert [a.version for a in await recorded(conns[0])] == VERSIONS
    finally:
        for c in conns:
            await c.close()


async def test_objects_created_by_hand_give_a_clear_error_and_roll_back(empty_db: str) -> None:
    conn = await asyncpg.connect(empty_db)
    try:
        await conn.execute("CREATE TABLE alerts (id int)")  # created outside the migrations
        with pytest.raises(MigrationError) as err:
            await migrate(conn, MIGRATIONS, "plain", 90)
        message = str(err.value)
        assert "0001_registry failed" in message
        assert "rolled back" in message
        assert "bridge db migrate" in message
        # Nothing of the failed migration stayed: devices came before alerts in it.
        assert await conn.fetchval("SELECT to_regclass('devices')") is None
        assert await recorded(conn) == []
    finally:
        await conn.close()


async def test_failing_migration_is_rolled_back_whole(empty_db: str, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder)
    (folder / f"{NEXT}_broken.sql").write_text("CREATE TABLE half_done (id int);\nSELECT 1 / 0;\n")
    conn = await asyncpg.connect(empty_db)
    try:
        with pytest.raises(MigrationError, match=rf"{NEXT}_broken failed: division by zero"):
            await migrate(conn, folder, "plain", 90)
        assert await conn.fetchval("SELECT to_regclass('half_done')") is None
        assert [a.version for a in await recorded(conn)] == VERSIONS
    finally:
        await conn.close()


async def test_changed_applied_migration_is_refused(empty_db: str, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder)
    conn = await asyncpg.connect(empty_db)
    try:
        await migrate(conn, folder, "plain", 90)
        path = folder / "0001_registry.sql"
        path.write_text(path.read_text() + "\n-- edited\n")
        with pytest.raises(MigrationError, match="0001_registry was changed after it was applied"):
            await migrate(conn, folder, "plain", 90)
    finally:
        await conn.close()


async def test_schema_newer_than_the_bridge_is_refused(plain_db: str) -> None:
    conn = await asyncpg.connect(plain_db)
    try:
        await conn.execute(
            "INSERT INTO bridge_schema_migrations (version, name, mode, checksum) "
            "VALUES (99, 'from_the_future', 'plain', 'x')"
        )
        with pytest.raises(MigrationError, match="newer than this bridge"):
            await migrate(conn, MIGRATIONS, "auto", 90)
    finally:
        await conn.close()


async def test_a_migrated_database_keeps_its_mode(plain_db: str) -> None:
    conn = await asyncpg.connect(plain_db)
    try:
        with pytest.raises(MigrationError, match="cannot switch to timescaledb"):
            await migrate(conn, MIGRATIONS, "timescaledb", 90)
    finally:
        await conn.close()


def test_every_version_has_a_file_for_each_mode() -> None:
    plain = discover(MIGRATIONS, "plain")
    tsdb = discover(MIGRATIONS, "timescaledb")
    assert [m.version for m in plain] == [m.version for m in tsdb]
    assert [m.version for m in plain] == list(range(1, len(plain) + 1))


def test_bad_migration_file_name_is_refused(tmp_path: Path) -> None:
    (tmp_path / "1_short.sql").write_text("SELECT 1")
    with pytest.raises(MigrationError, match="not a migration file name"):
        discover(tmp_path, "plain")


ABSENT = TimescaleInfo(installed=None, available=None, preloaded=False)
NOT_PRELOADED = TimescaleInfo(installed=None, available="2.28.3", preloaded=False)
PRELOADED = TimescaleInfo(installed=None, available="2.28.3", preloaded=True)
CREATED = TimescaleInfo(installed="2.28.3", available="2.28.3", preloaded=True)


@pytest.mark.parametrize(
    ("tsdb", "mode"),
    [
        (ABSENT, "plain"),
        (NOT_PRELOADED, "plain"),
        (PRELOADED, "timescaledb"),
        (CREATED, "timescaledb"),
    ],
)
def test_auto_mode_uses_timescaledb_only_when_it_can_be_created(
    tsdb: TimescaleInfo, mode: str
) -> None:
    assert choose_mode("auto", [], tsdb) == mode


def test_plain_mode_can_be_chosen_with_timescaledb_present() -> None:
    # How the tests get a plain database on a server that preloads TimescaleDB.
    assert choose_mode("plain", [], CREATED) == "plain"


@pytest.mark.parametrize(
    ("tsdb", "phrase"),
    [
        (ABSENT, "does not have the TimescaleDB extension: install it"),
        (NOT_PRELOADED, "add timescaledb to shared_preload_libraries and restart PostgreSQL"),
    ],
)
def test_timescaledb_mode_without_the_extension_says_what_to_do(
    tsdb: TimescaleInfo, phrase: str
) -> None:
    with pytest.raises(MigrationError) as err:
        choose_mode("timescaledb", [], tsdb)
    assert phrase in str(err.value)
    assert 'database.mode = "plain"' in str(err.value)


def test_a_recorded_mode_wins_over_what_the_server_offers() -> None:
    applied = [Applied(1, "registry", "plain", "x")]
    assert choose_mode("auto", applied, CREATED) == "plain"
    applied = [Applied(1, "registry", "timescaledb", "x")]
    assert choose_mode("auto", applied, ABSENT) == "timescaledb"
