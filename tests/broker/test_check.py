"""`bridge broker check` catches a broken config before the broker starts: a
missing password file, a bad path, a file the broker's user cannot read.
Each problem is one line naming the file, line and option, exit status 1;
a sound config passes (and every broker these tests start is checked first,
tests/broker/brokers.py)."""

from __future__ import annotations

import grp
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bridge.cli import main
from tests.broker.brokers import Cloud, Mosquitto, make_cloud, make_edge
from tests.conftest import ROOT


def run_check(capsys: pytest.CaptureFixture[str], conf: Path) -> tuple[int, list[str]]:
    """The exit status of `bridge broker check conf` and its stderr lines."""
    code = main(["broker", "check", str(conf)])
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in err
    return code, err.splitlines()


@pytest.fixture
def stopped_cloud(tmp_path: Path, pki: Path) -> Cloud:
    """A rendered cloud broker, not started: the check comes first."""
    return make_cloud(tmp_path / "cloud", pki)


def test_the_rendered_configs_pass_and_the_brokers_start(
    capsys: pytest.CaptureFixture[str], stopped_cloud: Cloud, tmp_path: Path
) -> None:
    cloud = stopped_cloud
    edge = make_edge(tmp_path / "edge", cloud, "site-1", "gw-site-1")
    for broker in (cloud.broker, edge.broker):
        code, err = run_check(capsys, broker.main_conf)
        assert code == 0, err
        # cloud: include_dir, persistence_location, log folder, 3 x (password_file,
        # acl_file), 2 x (cafile, certfile, keyfile): 15; edge: 3 + 2 + bridge_cafile: 6
        assert err == [
            f"{broker.main_conf}: {15 if broker is cloud.broker else 6} paths checked, no problems"
        ]
    try:
        cloud.broker.start(checked=False)
        edge.broker.start(checked=False)
    finally:
        edge.broker.stop()
        cloud.broker.stop()


def test_a_missing_password_file_is_named_on_every_listener_that_reads_it(
    capsys: pytest.CaptureFixture[str], stopped_cloud: Cloud
) -> None:
    cloud = stopped_cloud
    cloud.passwd.unlink()
    code, err = run_check(capsys, cloud.broker.main_conf)
    assert code == 1
    conf = cloud.broker.conf_d / "cloud.conf"
    problems = [line for line in err if not line.startswith("bridge: error:")]
    assert len(problems) == 3, err
    # The device listener reads the gate, a link left dangling...
    assert problems[0].startswith(f"{conf}:")
    assert f"password_file {cloud.gate}: a link to passwd, which does not exist" in problems[0]
    # ...the services and loopback listeners the file itself.
    for line in problems[1:]:
        assert f"password_file {cloud.passwd}: no such file" in line
        assert "bridge broker render" in line  # what to do about it
    assert err[-1] == (
        f"bridge: error: 3 problem(s) in {cloud.broker.main_conf}; the broker would not "
        "start, or would lose what it should keep"
    )


def test_a_persistence_folder_that_does_not_exist_is_caught_which_mosquitto_does_not(
    capsys: pytest.CaptureFixture[str], stopped_cloud: Cloud, tmp_path: Path
) -> None:
    broker = stopped_cloud.broker
    typo = tmp_path / "cloud" / "dta"
    main_conf = broker.main_conf.read_text()
    broker.main_conf.write_text(main_conf.replace(str(broker.root / "data"), str(typo)))
    code, err = run_check(capsys, broker.main_conf)
    assert code == 1
    assert err[0] == f"{broker.main_conf}:3: persistence_location {typo}/: no such folder"
    assert len(err) == 2
    # Mosquitto itself starts with it, and finds out only when it saves: on
    # the way down, when every queued message should have been written.
    try:
        broker.start(checked=False)
    finally:
        broker.stop()
    assert broker.lines("Error saving in-memory database") == 1


def test_bad_paths_in_the_drop_ins_are_named(
    capsys: pytest.CaptureFixture[str], stopped_cloud: Cloud, tmp_path: Path
) -> None:
    cloud = stopped_cloud
    edge = make_edge(tmp_path / "edge", cloud, "site-1", "gw-site-1")
    cloud_conf = cloud.broker.conf_d / "cloud.conf"
    text = cloud_conf.read_text()
    cloud_conf.write_text(
        text.replace(
            f"certfile {cloud.etc}/server.crt", "certfile /etc/mosquitto/certs/srv.crt", 1
        ).replace(f"acl_file {cloud.etc}/acl", "acl_file acl", 1)
        + f"include_dir {tmp_path}\n"
    )
    code, err = run_check(capsys, cloud.broker.main_conf)
    assert code == 1
    assert len(err) == 4, err
    assert "certfile /etc/mosquitto/certs/srv.crt: no such file; `bridge broker ca" in err[0]
    assert "acl_file acl: not an absolute path" in err[1]
    assert f"include_dir {tmp_path}: Mosquitto ignores include_dir outside the main" in err[2]

    (edge.root / "etc" / "cloud-ca.crt").unlink()
    code, err = run_check(capsys, edge.broker.main_conf)
    assert code == 1
    assert len(err) == 2, err
    assert err[0].startswith(f"{edge.broker.conf_d / 'edge.conf'}:")
    assert "bridge_cafile" in err[0]
    assert "no such file; copy the cloud broker's CA certificate" in err[0]


@pytest.mark.skipif(os.geteuid() != 0, reason="the broker drops privileges only when run as root")
def test_files_the_brokers_user_cannot_read_are_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Run as root, Mosquitto drops to `user` before it reads password files,
    # keys and ACLs: a file only root can reach stops it.
    def broker_reading(secret: Path) -> Mosquitto:
        broker = Mosquitto(tmp_path / "broker", [])
        broker.main_conf.write_text(f"user nobody\ninclude_dir {broker.conf_d}\n")
        (broker.conf_d / "x.conf").write_text(f"listener 1\npassword_file {secret}\n")
        return broker

    in_tmp_path = tmp_path / "passwd"
    in_tmp_path.write_text("")
    code, err = run_check(capsys, broker_reading(in_tmp_path).main_conf)
    assert code == 1
    assert "nobody, the user the broker runs as, cannot enter /tmp/pytest-of-" in err[0]

    shared = Path(tempfile.mkdtemp(dir="/tmp", prefix="bridge-check-"))
    try:
        shared.chmod(0o755)
        root_only = shared / "passwd"
        root_only.write_text("")
        root_only.chmod(0o600)
        broker = broker_reading(root_only)
        code, err = run_check(capsys, broker.main_conf)
        assert code == 1
        assert err[0] == (
            f"{broker.conf_d / 'x.conf'}:2: password_file {root_only}: not readable by nobody, "
            f"the user the broker runs as (e.g. chgrp nobody {root_only}; chmod g+r {root_only})"
        )
        root_only.chmod(0o640)
        os.chown(root_only, 0, grp.getgrnam("nogroup").gr_gid)
        code, err = run_check(capsys, broker.main_conf)
        assert code == 0, err
    finally:
        shutil.rmtree(shared)


def test_the_installed_command_explains_without_a_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "broker", "check", str(tmp_path / "none.conf")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")},
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr == f"bridge: error: config file {tmp_path / 'none.conf'} does not exist\n"
