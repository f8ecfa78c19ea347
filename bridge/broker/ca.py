"""A development CA, a server certificate and client certificates, made with
the openssl command line (no Python dependency).

Files in the output folder (keys 0600, certificates 0644):

    ca.key, ca.crt          the CA; kept and reused when present
    server.key, server.crt  the broker's certificate, issued again on each run,
                            with every --host as a subjectAltName (DNS or IP);
                            run as root, the key is 0640 and group mosquitto,
                            since Mosquitto reads it as that user
    <name>.key, <name>.crt  one client certificate per --client (CN = name),
                            for the mutual-TLS services listener

Keys are ECDSA P-256: fast, and supported by every TLS stack a device or
gateway is likely to have (OpenSSL, mbedTLS, wolfSSL). This is for
development and tests; in production use certificates from your own PKI.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bridge.broker import tools
from bridge.broker.accounts import check_username
from bridge.broker.errors import BrokerError
from bridge.broker.files import check_writable, describe, share_with_group

CA_DAYS = 3650
_DNS = re.compile(
    r"(?=.{1,253}$)(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
)
_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass
class Issued:
    folder: Path
    ca_created: bool
    files: list[Path] = field(default_factory=list)


def subject_alt_names(hosts: Sequence[str]) -> str:
    """'DNS:localhost,IP:127.0.0.1' for ['localhost', '127.0.0.1']."""
    names = []
    for host in hosts:
        try:
            names.append(f"IP:{ipaddress.ip_address(host)}")
        except ValueError:
            if not _DNS.fullmatch(host):
                raise BrokerError(f"{host!r} is neither a host name nor an IP address") from None
            names.append(f"DNS:{host}")
    if not names:
        raise BrokerError("the server certificate needs at least one --host")
    return ",".join(names)


def _openssl(args: list[str], what: str) -> None:
    tools.run(["openssl", *args], what=what)


def _private(key: Path) -> None:
    """Creates ``key`` empty with mode 0600 before openssl writes it, so the
    key is never readable by others, not even for a moment."""
    try:
        os.close(os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        key.chmod(0o600)
    except OSError as exc:
        raise BrokerError(f"cannot write {key}: {describe(exc)}") from None


def _serial() -> str:
    return "0x" + secrets.token_hex(16)


def _issue(
    folder: Path, name: str, subject: str, extensions: str, *, days: int, scratch: Path
) -> list[Path]:
    key, cert, csr = folder / f"{name}.key", folder / f"{name}.crt", scratch / f"{name}.csr"
    ext = scratch / f"{name}.ext"
    ext.write_text(extensions)
    _private(key)
    _openssl(
        ["req", "-new", *_KEY, "-keyout", str(key), "-out", str(csr), "-subj", subject],
        f"making the key of {name}",
    )
    _openssl(
        [
            "x509", "-req", "-in", str(csr), "-CA", str(folder / "ca.crt"),
            "-CAkey", str(folder / "ca.key"), "-set_serial", _serial(), "-days", str(days),
            "-sha256", "-extfile", str(ext), "-out", str(cert),
        ],
        f"signing the certificate of {name}",
    )  # fmt: skip
    cert.chmod(0o644)
    return [key, cert]


def make(
    folder: Path,
    hosts: Sequence[str],
    clients: Sequence[str],
    days: int = 825,
    broker_group: str | None = "mosquitto",
) -> Issued:
    """Makes (or reuses) the CA, issues the server certificate and the client ones."""
    tools.find("openssl")
    san = subject_alt_names(hosts)
    for client in clients:
        check_username(client, "client certificate name")
        if client in ("ca", "server"):
            raise BrokerError(f"a client certificate cannot be named {client!r} (a file of the CA)")
    if days < 1:
        raise BrokerError("--days must be at least 1")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BrokerError(f"cannot create {folder}: {describe(exc)}") from None
    check_writable(folder / "ca.key")
    issued = Issued(folder, ca_created=False)
    ca_key, ca_crt = folder / "ca.key", folder / "ca.crt"
    if ca_key.exists() != ca_crt.exists():
        raise BrokerError(
            f"{folder} holds only one of ca.key and ca.crt; remove it to make a new CA"
        )
    with tempfile.TemporaryDirectory(prefix="bridge-ca-") as tmp:
        scratch = Path(tmp)
        if not ca_key.exists():
            _private(ca_key)
            _openssl(
                [
                    "req", "-x509", "-new", *_KEY, "-keyout", str(ca_key), "-out", str(ca_crt),
                    "-days", str(CA_DAYS), "-sha256", "-subj", "/CN=mqtt-bridge development CA",
                    "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                    "-addext", "subjectKeyIdentifier=hash",
                ],
                "making the CA",
            )  # fmt: skip
            ca_crt.chmod(0o644)
            issued.ca_created = True
            issued.files += [ca_key, ca_crt]
        first = hosts[0]
        issued.files += _issue(
            folder,
            "server",
            f"/CN={first}",
            f"subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
            "authorityKeyIdentifier=keyid\n",
            days=days,
            scratch=scratch,
        )
        if share_with_group(folder / "server.key", broker_group):
            (folder / "server.key").chmod(0o640)  # the broker reads it as its own user
        for client in clients:
            issued.files += _issue(
                folder,
                client,
                f"/CN={client}",
                "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=clientAuth\nauthorityKeyIdentifier=keyid\n",
                days=days,
                scratch=scratch,
            )
    return issued
