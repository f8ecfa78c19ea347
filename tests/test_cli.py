"""The `bridge` command as a user runs it: clear output, clear errors, never a traceback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.cli import guessable_group
from bridge.config import DatabaseSettings, MqttSettings
from bridge.db.migrate import discover
from tests.conftest import Stack

BRIDGE = [sys.executable, "-m", "bridge.cli"]


def bridge(*args: str, url: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    if url is not None:
        environ["BRIDGE_DATABASE__URL"] = url
    environ.update(env)
    return subprocess.run(
        [*BRIDGE, *args], capture_output=True, text=True, env=environ, timeout=60, check=False
    )


def assert_clear_error(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("bridge: error: ")
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr


def test_help_explains_the_commands() -> None:
    out = bridge("--help")
    assert out.returncode == 0
    for word in ("db", "check-config", "--config", "BRIDGE_DATABASE__URL"):
        assert word in out.stdout
    db_help = bridge("db", "--help").stdout
    for action in ("migrate", "status", "maintain"):
        assert action in db_help


def test_edge_agent_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0
    assert "spool" in out.stdout


def test_migrate_then_status_in_plain_mode(empty_db: str) -> None:
    first = bridge("db", "migrate", "--mode", "plain", url=empty_db)
    assert first.returncode == 0, first.stderr
    assert "applied 0001_registry" in first.stdout
    assert "applied 0002_telemetry" in first.stdout
    second = bridge("db", "migrate", url=empty_db)
    assert second.returncode == 0, second.stderr
    assert "nothing to apply" in second.stdout
    status = bridge("db", "status", url=empty_db)
    assert status.returncode == 0, status.stderr
    latest = discover(DatabaseSettings().migrations_dir, "plain")[-1].version
    assert f"version {latest} (up to date)" in status.stdout
    assert "plain PostgreSQL" in status.stdout
    assert re.search(r"9 day partition\(s\), \d{4}-\d\d-\d\d \.\. \d{4}-\d\d-\d\d", status.stdout)
    data = json.loads(bridge("db", "status", "--json", url=empty_db).stdout)
    assert data["mode"] == "plain"
    assert data["version"] == latest
    assert data["pending"] == []
    assert set(data["features"]) == {"partitions", "rollups", "retention"}


def test_migrate_then_status_in_timescaledb_mode(stack: Stack, empty_db: str) -> None:
    if stack.timescaledb is not None:
        pytest.skip(stack.timescaledb)
    first = bridge("db", "migrate", url=empty_db)  # auto picks TimescaleDB when it can
    assert first.returncode == 0, first.stderr
    assert "up to date in timescaledb mode" in first.stdout
    assert "nothing to apply" in bridge("db", "migrate", url=empty_db).stdout
    status = bridge("db", "status", url=empty_db)
    assert status.returncode == 0, status.stderr
    assert re.search(r"^mode: +TimescaleDB \d+\.\d+", status.stdout, re.M), status.stdout
    for line in ("hypertable: ", "compression: policy", "retention: policy"):
        assert line in status.stdout
    for view in ("telemetry_1m", "telemetry_1h"):
        assert f"continuous aggregate {view}: real-time" in status.stdout
    data = json.loads(bridge("db", "status", "--json", url=empty_db).stdout)
    assert data["mode"] == "timescaledb"
    assert data["pending"] == []


def test_status_of_an_unmigrated_database_says_what_to_do(empty_db: str) -> None:
    status = bridge("db", "status", url=empty_db)
    assert status.returncode == 0, status.stderr
    assert "version 0" in status.stdout
    assert "Run `bridge db migrate`" in status.stdout


def test_maintain_reports_its_work(plain_db: str) -> None:
    out = bridge("db", "maintain", url=plain_db)
    assert out.returncode == 0, out.stderr
    assert "mode: plain" in out.stdout
    assert "rollup hours refreshed" in out.stdout


def test_maintain_before_migrate_says_to_migrate(empty_db: str) -> None:
    assert_clear_error(bridge("db", "maintain", url=empty_db), "bridge db migrate")


def test_database_down_is_a_clear_error() -> None:
    # Nothing listens on port 1.
    assert_clear_error(
        bridge("db", "status", url="postgresql://postgres@127.0.0.1:1/x"),
        "cannot reach PostgreSQL at 127.0.0.1:1",
        "Is it running",
    )


@pytest.mark.parametrize(
    ("url", "phrase"),
    [
        ("mysql://db/x", "must start with postgresql://"),
        ("postgresql://", "has no host"),
        ("postgresql://h:notaport/x", "invalid port"),
        ("postgresql://h:0/x", "invalid port: 0"),
    ],
)
def test_bad_database_url_is_a_clear_error(url: str, phrase: str) -> None:
    assert_clear_error(bridge("db", "status", url=url), "database.url", phrase)


@pytest.mark.parametrize(
    ("query", "phrase"),
    [
        ("foo=bar", 'unrecognized configuration parameter "foo"'),
        ("timezone=Nowhere", 'invalid value for parameter "TimeZone"'),
    ],
)
def test_bad_database_url_parameter_is_a_clear_error(stack: Stack, query: str, phrase: str) -> None:
    # asyncpg sends unknown URL parameters to the server as settings; the
    # server's refusal comes during the connection, not from a query.
    assert_clear_error(
        bridge("db", "migrate", url=f"{stack.pg_url()}?{query}"),
        "refused the connection",
        phrase,
        "?parameters",
    )


def test_missing_database_is_a_clear_error(stack: Stack) -> None:
    assert_clear_error(
        bridge("db", "migrate", url=stack.pg_url("no_such_db")),
        'database "no_such_db" does not exist',
    )


def test_wrong_password_is_a_clear_error(stack: Stack) -> None:
    import asyncio

    import asyncpg

    async def make_role() -> None:
        conn = await asyncpg.connect(stack.pg_url())
        try:
            await conn.execute(
                "DO $$ BEGIN CREATE ROLE pw_user LOGIN PASSWORD 'right'; "
                "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
            )
        finally:
            await conn.close()

    asyncio.run(make_role())
    url = f"postgresql://pw_user:{{}}@127.0.0.1:{stack.pg_port}/postgres"
    assert bridge("db", "status", url=url.format("right")).returncode == 0
    assert_clear_error(
        bridge("db", "status", url=url.format("wrong")), "refused the login", "database.url"
    )


def test_half_applied_schema_is_a_clear_error(empty_db: str) -> None:
    import asyncio

    import asyncpg

    async def hand_made() -> None:
        conn = await asyncpg.connect(empty_db)
        try:
            await conn.execute("CREATE TABLE devices (device_id text)")
        finally:
            await conn.close()

    asyncio.run(hand_made())
    assert_clear_error(
        bridge("db", "migrate", url=empty_db),
        "0001_registry failed",
        "rolled back",
        "bridge db migrate",
    )


def test_config_file_unknown_key_is_an_error(tmp_path: Path) -> None:
    cfg = tmp_path / "bridge.toml"
    cfg.write_text('[database]\nurl = "postgresql://u@h/db"\nretention_dayz = 3\n')
    assert_clear_error(
        bridge("--config", str(cfg), "check-config"), "database.retention_dayz", "unknown key"
    )


def test_print_config_masks_secrets(tmp_path: Path) -> None:
    cfg = tmp_path / "bridge.toml"
    cfg.write_text('[database]\nurl = "postgresql://u:s3cret@h:5432/db"\n')
    out = bridge("--config", str(cfg), "--print-config")
    assert out.returncode == 0, out.stderr
    assert "s3cret" not in out.stdout
    assert json.loads(out.stdout)["database"]["url"] == "postgresql://u:***@h:5432/db"


def test_example_config_is_the_generated_reference_and_loads() -> None:
    from tests.conftest import ROOT

    out = bridge("config-reference")
    assert out.returncode == 0, out.stderr
    example = ROOT / "bridge.example.toml"
    assert out.stdout == example.read_text(), (
        "regenerate: bridge config-reference > bridge.example.toml"
    )
    assert bridge("--config", str(example), "check-config").returncode == 0


def test_bad_route_is_a_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "bridge.toml"
    cfg.write_text('[[mqtt.routes]]\ntopic = "telemetry/{site_id}"\ncodec = "seed_json"\n')
    assert_clear_error(bridge("--config", str(cfg), "check-config"), "device_id")
    cfg.write_text('[[mqtt.routes]]\ntopic = "t/{device_id}"\ncodec = "xml"\n')
    assert_clear_error(bridge("--config", str(cfg), "check-config"), "unknown codec 'xml'")


def test_a_production_broker_read_with_the_default_share_group_is_warned_about() -> None:
    assert guessable_group(MqttSettings(host="127.0.0.1")) is None  # the local dev stack
    assert guessable_group(MqttSettings(host="broker.example", group="bridge-5d0c1f0e")) is None
    for mqtt in (
        MqttSettings(host="broker.example"),
        MqttSettings(host="127.0.0.1", username="bridge", password="x"),
    ):
        warning = guessable_group(mqtt)
        assert warning is not None
        assert mqtt.host in warning
        assert "mqtt.group" in warning
