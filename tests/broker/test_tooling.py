"""`bridge broker ...` as a user meets it: real --help, and every mistake
(bad id, missing tool, unwritable file, stale pid file, a bridge that never
gets ready) is one clear line and exit status 1, never a traceback."""

from __future__ import annotations

import http.server
import os
import re
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.broker import acl, passwd
from bridge.cli import main
from tests.conftest import ROOT


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["broker", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@pytest.mark.parametrize(
    "action",
    [
        [],
        ["ca"],
        ["provision"],
        ["revoke"],
        ["gate"],
        ["render", "cloud"],
        ["render", "edge"],
        ["check"],
    ],
)
def test_every_action_has_a_real_help(
    capsys: pytest.CaptureFixture[str], action: list[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["broker", *action, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "usage: bridge broker" in text
    assert len(text) > 400, text


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("pump/1", "contains '/'"),
        ("pump+1", "contains '+'"),
        ("#", "contains '#'"),
        ("pump 1", "contains ' '"),
        ("", "is empty"),
        ("p" * 129, "at most 128"),
        ("plc:7", "':'"),
    ],
)
def test_a_bad_device_id_is_refused_before_anything_is_written(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, says: str
) -> None:
    code, out, err = run(capsys, "provision", name, "--passwd", str(tmp_path / "passwd"))
    assert code == 1
    assert out == ""
    assert err.startswith("bridge: error: ")
    assert says in err
    assert not (tmp_path / "passwd").exists()


def test_provision_prints_only_the_password_on_stdout_and_revoke_removes_the_user(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    file = tmp_path / "passwd"
    code, out, err = run(capsys, "provision", "pump-1", "--passwd", str(file))
    assert code == 0
    password = out.strip()
    assert len(password) == 32
    assert "\n" not in password
    assert "created pump-1" in err
    assert password not in file.read_text()  # only its hash
    assert passwd.users(file) == ["pump-1"]
    assert stat.S_IMODE(file.stat().st_mode) == 0o640

    code, out2, err = run(capsys, "provision", "pump-1", "--passwd", str(file))
    assert (code, "new password for pump-1" in err) == (0, True)
    assert out2.strip() != password
    assert passwd.users(file) == ["pump-1"]

    assert run(capsys, "revoke", "pump-1", "--passwd", str(file))[0] == 0
    assert passwd.users(file) == []
    code, _, err = run(capsys, "revoke", "pump-1", "--passwd", str(file))
    assert code == 1
    assert "pump-1 is not in" in err


def test_gateway_entries_are_added_replaced_and_removed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    base = ["render", "cloud", "--etc", str(etc), "--out", str(tmp_path / "cloud.conf")]
    assert run(capsys, *base)[0] == 0
    rules = etc / "acl"
    gateway = ["--passwd", str(etc / "passwd"), "--acl", str(rules)]
    assert run(capsys, "provision", "gw-1", "--gateway", "site-1", *gateway)[0] == 0
    assert run(capsys, "provision", "gw-2", "--gateway", "site-2", *gateway)[0] == 0
    assert run(capsys, "provision", "gw-1", "--gateway", "site-9", *gateway)[0] == 0
    assert acl.gateways(rules) == {"gw-2": "site-2", "gw-1": "site-9"}
    # Rendering again rewrites the template part and keeps the entries.
    assert run(capsys, *base)[0] == 0
    assert acl.gateways(rules) == {"gw-2": "site-2", "gw-1": "site-9"}
    assert rules.read_text().count("pattern write telemetry/+/%u") == 1
    assert run(capsys, "revoke", "gw-1", *gateway)[0] == 0
    assert acl.gateways(rules) == {"gw-2": "site-2"}
    code, _, err = run(capsys, "provision", "gw-3", "--gateway", "site-3", "--passwd", "x")
    assert code == 1
    assert "--gateway needs --acl" in err


def test_a_missing_tool_is_named_with_its_package(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    code, _, err = run(capsys, "provision", "pump-1", "--passwd", str(tmp_path / "passwd"))
    assert code == 1
    assert "mosquitto_passwd is not installed or not on PATH" in err
    assert "apt-get install mosquitto" in err
    code, _, err = run(capsys, "ca", "--out", str(tmp_path / "pki"))
    assert code == 1
    assert "openssl is not installed" in err


def test_a_password_file_that_cannot_be_written_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run(capsys, "provision", "pump-1", "--passwd", str(tmp_path / "no" / "pw"))
    assert code == 1
    assert f"folder {tmp_path / 'no'} does not exist" in err
    folder = tmp_path / "a-folder"
    folder.mkdir()
    code, _, err = run(capsys, "provision", "pump-1", "--passwd", str(folder))
    assert code == 1
    assert "Is a directory" in err
    # Not writable by this user (tests run as root, whom file modes do not stop).
    file = tmp_path / "passwd"
    file.write_text("")
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if Path(p) == file else real_access(p, mode)
    )
    code, _, err = run(capsys, "provision", "pump-1", "--passwd", str(file))
    assert code == 1
    assert f"cannot write {file}: the file is not writable by this user" in err


def test_reload_refuses_a_missing_or_stale_pid_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    file = tmp_path / "passwd"
    pid_file = tmp_path / "mosquitto.pid"
    args = ["provision", "pump-1", "--passwd", str(file), "--reload", str(pid_file)]
    code, _, err = run(capsys, *args)
    assert code == 1
    assert "does not exist: is the broker running" in err
    pid_file.write_text("garbage\n")
    assert "does not hold a process id" in run(capsys, *args)[2]
    pid_file.write_text(f"{os.getpid()}\n")  # this very test: not a Mosquitto
    assert "not mosquitto: the pid file is stale" in run(capsys, *args)[2]


@pytest.fixture
def readyz() -> Iterator[tuple[str, list[int]]]:
    """An HTTP server answering /readyz with the status codes in the list, in
    turn (the last one for ever)."""
    answers = [503, 503, 200]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(answers.pop(0) if len(answers) > 1 else answers[0])
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/readyz", answers
    finally:
        server.shutdown()


def test_the_gate_opens_only_when_the_bridge_is_ready(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, readyz: tuple[str, list[int]]
) -> None:
    url, answers = readyz
    gate, pw = tmp_path / "passwd.gate", tmp_path / "passwd"
    pw.write_text("")
    where = ["--gate", str(gate), "--passwd", str(pw)]
    assert run(capsys, "gate", "status", *where)[1] == "missing\n"
    assert run(capsys, "gate", "close", *where)[0] == 0
    assert run(capsys, "gate", "status", *where)[1] == "closed\n"
    assert gate.read_text() == ""
    assert run(capsys, "gate", "open", *where, "--when-ready", url, "--timeout", "10")[0] == 0
    assert answers == [200]  # it waited through both 503s
    assert run(capsys, "gate", "status", *where)[1] == "open\n"
    assert os.readlink(gate) == "passwd"

    assert run(capsys, "gate", "close", *where)[0] == 0
    answers[:] = [503]
    code, _, err = run(capsys, "gate", "open", *where, "--when-ready", url, "--timeout", "0.5")
    assert code == 1
    assert "the bridge was not ready within 0 s" in err
    assert "503" in err
    assert run(capsys, "gate", "status", *where)[1] == "closed\n"


def test_render_edge_keeps_the_gateway_password_private(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    secret = tmp_path / "gw.pw"
    secret.write_text("s3cret-gateway-password\n")
    out = tmp_path / "edge.conf"
    code, _, err = run(
        capsys, "render", "edge", "--etc", str(etc), "--out", str(out), "--site", "site-1",
        "--cloud", "broker.example:8883", "--gateway-user", "gw-1",
        "--gateway-password-file", str(secret),
    )  # fmt: skip
    assert code == 0
    text = out.read_text()
    assert "remote_password s3cret-gateway-password\n" in text
    assert "topic telemetry/site-1/+ out 1\n" in text
    assert not re.search(r"\{\{\s*[a-z_]+\s*\}\}", text)
    assert text.startswith("# Written by `bridge broker render edge` from ")
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert "pattern write telemetry/site-1/%u" in (etc / "acl").read_text()
    assert "missing: " in err  # cloud-ca.crt


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--cloud", "broker.example"], "must be HOST:PORT"),
        (["--cloud", "b:1", "--site", "a/b"], "contains '/'"),
        (["--cloud", "b:1", "--etc", "relative"], "must be an absolute path"),
        (["--cloud", "b:1", "--templates", "/nonexistent"], "pass --templates"),
    ],
)
def test_render_edge_mistakes_are_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], says: str
) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    secret = tmp_path / "gw.pw"
    secret.write_text("pw\n")
    defaults = {"--etc": str(etc), "--site": "site-1", "--out": str(tmp_path / "e.conf")}
    for key, value in zip(args[::2], args[1::2], strict=True):
        defaults[key] = value
    argv = [x for kv in defaults.items() for x in kv]
    code, _, err = run(
        capsys,
        "render",
        "edge",
        *argv,
        "--gateway-user",
        "gw",
        "--gateway-password-file",
        str(secret),
    )
    assert code == 1
    assert says in err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--api-user", "bridge"], "must differ"),
        (["--api-user", "a+b"], "API user"),
    ],
)
def test_render_cloud_mistakes_are_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], says: str
) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    code, _, err = run(
        capsys, "render", "cloud", "--etc", str(etc), "--out", str(tmp_path / "c.conf"), *args
    )
    assert code == 1
    assert says in err
    assert not (tmp_path / "c.conf").exists()


def test_ca_reuses_its_ca_and_issues_verifiable_certificates(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pki = tmp_path / "pki"
    argv = ["ca", "--out", str(pki), "--host", "broker.example", "--host", "10.0.0.5"]
    assert run(capsys, *argv, "--client", "bridge")[0] == 0
    ca_cert = (pki / "ca.crt").read_bytes()
    assert run(capsys, *argv)[0] == 0
    assert (pki / "ca.crt").read_bytes() == ca_cert
    for name in ("server", "bridge"):
        assert stat.S_IMODE((pki / f"{name}.key").stat().st_mode) in (0o600, 0o640)
        verify = subprocess.run(
            ["openssl", "verify", "-CAfile", str(pki / "ca.crt"), str(pki / f"{name}.crt")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert verify.returncode == 0, verify.stderr
    san = subprocess.run(
        ["openssl", "x509", "-in", str(pki / "server.crt"), "-noout", "-ext", "subjectAltName"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "DNS:broker.example" in san
    assert "IP Address:10.0.0.5" in san
    code, _, err = run(capsys, "ca", "--out", str(pki), "--host", "not a host!")
    assert code == 1
    assert "neither a host name nor an IP address" in err


def test_the_installed_command_reports_errors_without_a_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "broker", "provision", "a/b", "--passwd", "x"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")},
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("bridge: error: the user name 'a/b' contains '/'")
    assert "Traceback" not in result.stderr
