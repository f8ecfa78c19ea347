"""Who gets in: no anonymous client and no wrong password on any listener;
users added or removed take effect on a reload, without a restart; and on
the device listener no client can take over another's session."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.cli import main
from tests.broker.brokers import Cloud
from tests.broker.clients import NOT_AUTHORIZED, SUCCESS, Client, connack
from tests.integration.harness import wait_until


def listeners(cloud: Cloud) -> list[tuple[str, int, dict[str, Path]]]:
    """Each listener: its name, port and TLS settings."""
    client_cert = {"cert": cloud.pki / "bridge-svc.crt", "key": cloud.pki / "bridge-svc.key"}
    return [
        ("device (TLS)", cloud.port, {"ca": cloud.ca}),
        ("services (mutual TLS)", cloud.services_port, {"ca": cloud.ca, **client_cert}),
        ("loopback (plain)", cloud.local_port, {}),
    ]


def test_anonymous_clients_and_wrong_passwords_are_refused_on_every_listener(
    cloud: Cloud,
) -> None:
    password = cloud.provision("pump-1")
    cloud.reload()
    for name, port, tls in listeners(cloud):
        wait_until(
            lambda port=port, tls=tls: connack(port, "pump-1", password, **tls) == SUCCESS,  # type: ignore[misc]
            10,
            f"pump-1 logged in on the {name} listener",
        )
        assert connack(port, None, None, **tls) == NOT_AUTHORIZED, name
        assert connack(port, "pump-1", "wrong", **tls) == NOT_AUTHORIZED, name
        assert connack(port, "pump-1", "", **tls) == NOT_AUTHORIZED, name
        assert connack(port, "nobody", password, **tls) == NOT_AUTHORIZED, name


def test_provision_and_revoke_take_effect_on_reload_without_a_restart(
    cloud: Cloud, capsys: pytest.CaptureFixture[str]
) -> None:
    pid_file = str(cloud.broker.pid_file)
    passwd = str(cloud.passwd)
    assert main(["broker", "provision", "pump-7", "--passwd", passwd, "--reload", pid_file]) == 0
    first = capsys.readouterr().out.strip()
    wait_until(
        lambda: connack(cloud.port, "pump-7", first, ca=cloud.ca) == SUCCESS, 10, "new device in"
    )

    # A new password replaces the old one at once.
    assert main(["broker", "provision", "pump-7", "--passwd", passwd, "--reload", pid_file]) == 0
    second = capsys.readouterr().out.strip()
    assert second != first
    wait_until(
        lambda: connack(cloud.port, "pump-7", first, ca=cloud.ca) == NOT_AUTHORIZED,
        10,
        "old password refused",
    )
    device = Client(cloud.port, "pump-7", second, ca=cloud.ca)
    assert device.connect() == SUCCESS

    # Revoking disconnects the device and keeps it out.
    assert main(["broker", "revoke", "pump-7", "--passwd", passwd, "--reload", pid_file]) == 0
    try:
        assert device.disconnected.wait(10), "a revoked device stays connected"
    finally:
        device.close()
    assert connack(cloud.port, "pump-7", second, ca=cloud.ca) == NOT_AUTHORIZED
    assert connack(cloud.local_port, "pump-7", second) == NOT_AUTHORIZED


def test_a_device_cannot_take_over_the_bridges_session_by_reusing_its_client_id(
    cloud: Cloud,
) -> None:
    password = cloud.provision("pump-1")
    cloud.reload()
    worker = Client(
        cloud.local_port,
        "bridge",
        cloud.passwords["bridge"],
        client_id="bridge-host-0",
        session_expiry=600,
    )
    assert worker.connect() == SUCCESS
    intruder = Client(cloud.port, "pump-1", password, client_id="bridge-host-0", ca=cloud.ca)
    try:
        wait_until(lambda: intruder.connect() == SUCCESS, 10, "pump-1 logged in")
        # On the device listener a client id is the username: the intruder got
        # "pump-1", and the bridge's connection and session are untouched.
        assert cloud.broker.lines("as pump-1 (") >= 1
        assert not worker.disconnected.wait(1.0), "the bridge worker was disconnected"
    finally:
        intruder.close()
        worker.close()
