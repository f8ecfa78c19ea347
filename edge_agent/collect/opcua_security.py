"""The OPC UA server's certificate: trusted explicitly, or on first use when asked.

Before a secure session, the agent asks the server for its endpoints (an
unsecured GetEndpoints, as the standard allows) and compares the certificate
of the endpoint it will use with ``server_certificate``, byte for byte:

- the same: the session is opened with that certificate, and asyncua checks
  again that the server proves it holds its key;
- different: refused, with one log line giving both SHA-256 thumbprints and
  what to do (``UntrustedServer``);
- ``server_certificate`` does not exist and ``trust_on_first_use`` is on: the
  certificate is saved there (DER) and trusted from then on, with a warning.

The agent's own certificate is the operator's to create and to have the
server trust (most servers put an unknown client certificate in a "rejected"
folder until an operator moves it to "trusted").
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from asyncua import Client, ua
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from core.errors import BridgeError
from edge_agent.collect.opcua_config import OpcUaServer

log = logging.getLogger("edge_agent.opcua")


class UntrustedServer(BridgeError):
    """The server's certificate is not the one the agent trusts."""


def thumbprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()[:32]


def load_der(path: Path) -> bytes:
    """A certificate file (DER or PEM) as DER."""
    data = path.read_bytes()
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
    return x509.load_der_x509_certificate(data).public_bytes(Encoding.DER)


def application_uri(path: Path) -> str | None:
    """The URI in a certificate's subject alternative names (a client's
    ApplicationUri must match it, or servers refuse the session)."""
    der = load_der(path)
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


def first_cert(der: bytes) -> bytes:
    """The leading certificate of a DER chain."""
    length = int.from_bytes(der[2:4], "big") + 4
    return der[:length]


async def trusted_server_certificate(
    server: OpcUaServer, mode: ua.MessageSecurityMode, policy_uri: str
) -> bytes:
    """The server's certificate (DER) if it is the trusted one; raises UntrustedServer."""
    probe = Client(server.url, timeout=server.timeout_s)
    endpoints = await probe.connect_and_get_server_endpoints()
    matching = [
        e for e in endpoints if e.SecurityMode == mode and e.SecurityPolicyUri == policy_uri
    ]
    if not matching:
        offered = sorted(
            {f"{e.SecurityPolicyUri.rsplit('#', 1)[-1]}/{e.SecurityMode.name}" for e in endpoints}
        )
        raise UntrustedServer(
            f"it offers no endpoint with {policy_uri.rsplit('#', 1)[-1]}/{mode.name}, only "
            f"{', '.join(offered)}"
        )
    return check_trust(server, first_cert(matching[0].ServerCertificate))


def check_trust(server: OpcUaServer, presented: bytes) -> bytes:
    """``presented`` if it is the trusted certificate (or trusted now, on first use)."""
    path = server.server_certificate
    assert path is not None
    if not path.exists():
        if not server.trust_on_first_use:
            raise UntrustedServer(f"server_certificate {path} does not exist")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(presented)
        log.warning(
            "server %s (%s): trusting its certificate on first use (SHA-256 %s), saved to %s; "
            "from now on only this certificate is accepted",
            server.name,
            server.url,
            thumbprint(presented),
            path,
        )
        return presented
    trusted = load_der(path)
    if presented != trusted:
        raise UntrustedServer(
            f"it presented a certificate (SHA-256 {thumbprint(presented)}) that is not the "
            f"trusted one in {path} (SHA-256 {thumbprint(trusted)}): refusing to connect. If "
            "the server's certificate was renewed, put the new one there"
        )
    return trusted
