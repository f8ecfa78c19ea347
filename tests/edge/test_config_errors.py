"""A bad register map or topic template is one clear message and exit status 2,
from check-config and from run alike; never a traceback, never a start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.cli import main
from tests.conftest import ROOT

DEVICE = """
[[modbus.devices]]
device_id = "plc-1"
host = "127.0.0.1"
[[modbus.devices.registers]]
metric = "flow_rate"
{register}
"""

OPCUA = """
[[opcua.servers]]
name = "line-1"
url = "opc.tcp://127.0.0.1:4840"
{server}
[[opcua.servers.groups]]
device_id = "press-1"
[[opcua.servers.groups.nodes]]
metric = "flow_rate"
{node}
"""

CASES = {
    "coil as a float": (
        DEVICE.format(register='address = 0\nfunction = "coil"\ntype = "float32"'),
        "a coil is one bit; its type must be bool, not float32",
    ),
    "unknown type": (
        DEVICE.format(register='address = 0\ntype = "float16"'),
        "modbus.devices.0.registers.0.type: Input should be 'int16'",
    ),
    "past the last register": (
        DEVICE.format(register='address = 65534\ntype = "float64"'),
        "float64 at address 65534 runs past register 65535",
    ),
    "bad word order": (
        DEVICE.format(register='address = 0\ntype = "int32"\nword_order = "middle"'),
        "word_order: Input should be 'big' or 'little'",
    ),
    "misspelt key": (
        DEVICE.format(register='adress = 0\ntype = "int32"'),
        "modbus.devices.0.registers.0.adress: unknown key; check its spelling",
    ),
    "a metric mapped twice": (
        DEVICE.format(
            register='address = 0\n[[modbus.devices.registers]]\nmetric = "flow_rate"\naddress = 1'
        ),
        "device plc-1: metric 'flow_rate' is mapped twice",
    ),
    "bad metric name": (
        DEVICE.format(register="address = 0").replace('"flow_rate"', '"flow rate"'),
        "metric name 'flow rate' must match",
    ),
    "topic without a device": (
        '[uplink]\ntopic = "telemetry/{site_id}"',
        "has no {device_id} level",
    ),
    "topic with an unknown field": (
        '[uplink]\ntopic = "telemetry/{site}/{device_id}"',
        "unknown field {site}",
    ),
    "topic with a metric": (
        '[uplink]\ntopic = "telemetry/{device_id}/{metric}"',
        "no {metric} here; a message carries many metrics",
    ),
    "topic with a wildcard": (
        '[uplink]\ntopic = "telemetry/+/{device_id}"',
        "MQTT wildcards (+, #) are not allowed",
    ),
    "not TOML": ("[uplink\n", "is not valid TOML"),
    "overlapping registers": (
        DEVICE.format(
            register='address = 0\ntype = "float32"\n[[modbus.devices.registers]]\n'
            'metric = "pressure"\naddress = 1'
        ),
        "device plc-1: pressure (holding 1) overlaps flow_rate (holding 0-1)",
    ),
    "a gap larger than a request": (
        DEVICE.format(register="address = 0")
        .replace("port = 502", "")
        .replace('host = "127.0.0.1"', 'host = "127.0.0.1"\nmax_gap = 200'),
        "device plc-1: max_gap 200 is larger than one request holds (125 registers)",
    ),
    "unknown NodeId format": (
        OPCUA.format(server="", node='node_id = "ns=2;x=Pump1"'),
        "unknown NodeId format 'ns=2;x=Pump1'",
    ),
    "bad browse path": (
        OPCUA.format(server="", node='path = "Plant/Pump1/Flow"'),
        "browse path 'Plant/Pump1/Flow': each element must be <namespace index>:<name>",
    ),
    "node named twice over": (
        OPCUA.format(server="", node='node_id = "i=2258"\npath = "2:Plant/2:Flow"'),
        "flow_rate: give either node_id or path (exactly one)",
    ),
    "bad security mode": (
        OPCUA.format(server='security_mode = "Sign"', node='node_id = "i=2258"'),
        "bad security mode Sign with security_policy None",
    ),
    "unknown security mode": (
        OPCUA.format(server='security_mode = "Encrypt"', node='node_id = "i=2258"'),
        "opcua.servers.0.security_mode: Input should be 'None', 'Sign' or 'SignAndEncrypt'",
    ),
    "secure without a certificate": (
        OPCUA.format(
            server='security_policy = "Basic256Sha256"\nsecurity_mode = "SignAndEncrypt"',
            node='node_id = "i=2258"',
        ),
        "security_policy Basic256Sha256 needs certificate",
    ),
    "not an opc.tcp url": (
        OPCUA.format(server="", node='node_id = "i=2258"').replace("opc.tcp://", "http://"),
        "must be opc.tcp://host[:port][/path]",
    ),
}


def write(tmp_path: Path, case: str) -> Path:
    config = tmp_path / "edge.toml"
    config.write_text(f'[spool]\npath = "{tmp_path / "spool.db"}"\n{CASES[case][0]}\n')
    return config


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_config_is_one_clear_message_and_exit_2(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(write(tmp_path, case)), "check-config"]) == 2
    err = capsys.readouterr().err
    assert CASES[case][1] in err, err
    assert err.startswith("edge-agent: error: "), err


@pytest.mark.parametrize(
    "case", ["coil as a float", "topic with an unknown field", "unknown NodeId format"]
)
def test_run_refuses_a_bad_config_without_a_traceback(tmp_path: Path, case: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "--config", str(write(tmp_path, case)), "run"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2, out
    assert CASES[case][1] in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "spool.db").exists()  # it never started


def test_the_help_explains_every_command() -> None:
    for command in ([], ["run"], ["simulate"], ["check-config"]):
        out = subprocess.run(
            [sys.executable, "-m", "edge_agent.cli", *command, "--help"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
            check=True,
        )
        assert "usage: edge-agent" in out.stdout
    top = subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "--help"],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert "no matching subscribers" in top
    assert "OLDEST" in top


def test_the_example_config_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(ROOT / "edge.example.toml"), "check-config"]) == 0
    assert "configuration is valid" in capsys.readouterr().out
