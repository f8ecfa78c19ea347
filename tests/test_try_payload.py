"""`bridge check-config --try-payload FILE --topic T` shows what a route makes
of a sample, and a bad mapping is a one-line config error."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.cli import main

CONFIG = """\
[[mqtt.routes]]
topic = "tele/{device_id}/SENSOR"
codec = "mapping"
options = { preset = "tasmota", time_zone = "Europe/Berlin" }

[[mqtt.routes]]
topic = "sensors/{device_id}"
codec = "mapping"
options = { metrics = { temp = "s.t", hum = "s.h" }, scale = { temp = 0.1 } }

[[mqtt.routes]]
topic = "influx/{device_id}"
codec = "line_protocol"
options = { precision = "s" }
"""
# tasmota/docs, docs/Rules.md (tele/ds1820/SENSOR)
DS18B20 = b'{"Time":"2021-01-13T23:58:41","DS18B20":{"Id":"030597946B04","Temperature":20.9}}'


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "bridge.toml"
    path.write_text(CONFIG)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_prints_the_points(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = tmp_path / "ds.json"
    sample.write_bytes(DS18B20)
    status, out, _ = run(
        capsys, "--config", str(config), "check-config", "--try-payload", str(sample),
        "--topic", "tele/ds1820/SENSOR", "--received-at", "2021-01-13T23:00:00Z",
    )  # fmt: skip
    assert status == 0
    assert "route 'tele/{device_id}/SENSOR', codec mapping" in out
    assert "points (1):\n  2021-01-13T22:58:41.000000Z  ds1820  DS18B20.Temperature  20.9\n" in out


def test_shows_dead_letters_and_fails_without_points(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = tmp_path / "s.json"
    sample.write_bytes(b'{"s": {"t": "warm"}}')
    status, out, _ = run(
        capsys, "--config", str(config), "check-config", "--try-payload", str(sample),
        "--topic", "sensors/s1",
    )  # fmt: skip
    assert status == 1
    assert "points (0):" in out
    assert "  bad_value: 1 point(s) rejected; first: temp: value must be a number" in out
    assert "  missing_path: 1 point(s) rejected; first: metric hum: 's.h' found nothing" in out


def test_line_protocol_shows_string_values_and_each_bad_line(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = tmp_path / "lp.txt"
    sample.write_bytes(b'env temp=21.5,state="ok, dry" 1610582321\nenv temp=NaN 1610582321\n')
    status, out, _ = run(
        capsys, "--config", str(config), "check-config", "--try-payload", str(sample),
        "--topic", "influx/ws-1", "--received-at", "2021-01-14T00:00:00Z",
    )  # fmt: skip
    assert status == 0
    assert "points (1):\n  2021-01-13T23:58:41.000000Z  ws-1  env.temp  21.5\n" in out
    assert "string values (1):\n  2021-01-13T23:58:41.000000Z  ws-1  env.state  'ok, dry'\n" in out
    assert "non_finite_value: 1 point(s) rejected; first: line 2: env.temp" in out


def test_topic_without_payload_is_a_usage_error(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(capsys, "--config", str(config), "check-config", "--topic", "x/y")
    assert status == 1
    assert "--try-payload FILE and --topic T go together" in err


def test_bad_mapping_is_one_line_naming_route_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(CONFIG.replace('hum = "s.h"', 'hum = "s.h["'))
    status, out, err = run(capsys, "--config", str(path), "check-config")
    assert status == 1
    assert out == ""
    assert "route 'sensors/{device_id}'" in err
    assert "options.metrics.hum: 's.h[' is not a JMESPath expression" in err
    assert "Traceback" not in err
