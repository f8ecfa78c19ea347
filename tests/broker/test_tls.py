"""Credentials never cross the network in clear: the device listener speaks
TLS only and is verified against the CA; the services listener also wants a
client certificate."""

from __future__ import annotations

import ssl
from pathlib import Path

from bridge.broker import ca
from tests.broker.brokers import Cloud
from tests.broker.clients import SUCCESS, Client, connack, plain_mqtt_answer
from tests.integration.harness import wait_until


def test_a_client_trusting_the_dev_ca_gets_in_by_name_and_by_address(cloud: Cloud) -> None:
    pw = cloud.provision("pump-1")
    cloud.reload()
    wait_until(
        lambda: connack(cloud.port, "pump-1", pw, ca=cloud.ca) == SUCCESS, 10, "pump-1 over TLS"
    )
    assert connack(cloud.port, "pump-1", pw, ca=cloud.ca, host="localhost") == SUCCESS


def test_plain_mqtt_on_the_tls_port_gets_no_connack(cloud: Cloud) -> None:
    # The broker reads the CONNECT as a broken TLS record and hangs up, silently.
    assert plain_mqtt_answer(cloud.port) == b""
    wait_until(lambda: cloud.broker.lines("wrong version number") == 1, 5, "the TLS error logged")
    # ...while the same packet on the loopback listener is answered (and refused).
    assert plain_mqtt_answer(cloud.local_port)[:1] == b"\x20"


def test_a_client_that_does_not_trust_the_ca_refuses_the_broker(
    cloud: Cloud, tmp_path: Path
) -> None:
    other = tmp_path / "other-ca"
    ca.make(other, ["localhost", "127.0.0.1"], [], broker_group=None)
    client = Client(cloud.port, "pump-1", "x", ca=other / "ca.crt")
    try:
        assert client.connect() is None
    finally:
        client.close()
    assert isinstance(client.error, ssl.SSLCertVerificationError), client.error


def test_the_services_listener_wants_a_client_certificate_from_the_ca(
    cloud: Cloud, tmp_path: Path
) -> None:
    pw = cloud.passwords["bridge"]
    with_cert = {"cert": cloud.pki / "bridge-svc.crt", "key": cloud.pki / "bridge-svc.key"}
    assert connack(cloud.services_port, "bridge", pw, ca=cloud.ca, **with_cert) == SUCCESS
    assert connack(cloud.services_port, "bridge", pw, ca=cloud.ca) is None
    wait_until(
        lambda: cloud.broker.lines("peer did not return a certificate") == 1, 5, "the TLS error"
    )
    other = tmp_path / "other-ca"
    ca.make(other, ["localhost"], ["bridge-svc"], broker_group=None)
    foreign = {"cert": other / "bridge-svc.crt", "key": other / "bridge-svc.key"}
    assert connack(cloud.services_port, "bridge", pw, ca=cloud.ca, **foreign) is None
