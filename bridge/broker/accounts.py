"""Device ids as MQTT usernames, and the passwords generated for them.

The convention the whole deployment rests on: a device's MQTT username is its
device id, which is also the last level of its telemetry topic
(telemetry/<site>/<device>). The ACL's ``%u`` patterns then confine each
device to its own topics, and the bridge takes the device id from the topic.

Ids follow the bridge's rule ([A-Za-z0-9_.:-], at most 128 characters), less
':', which cannot appear in a username of Mosquitto's password file (it is
the separator). Such devices can still be reached through a gateway.
"""

from __future__ import annotations

import re
import secrets

from bridge.broker.errors import BrokerError

MAX_LEN = 128
_ALLOWED = re.compile(r"[A-Za-z0-9_.:-]+")


def check_id(value: str, what: str = "device id") -> str:
    """Returns ``value`` if it is a valid id (as a topic level), else raises."""
    if not value:
        raise BrokerError(f"the {what} is empty")
    if len(value) > MAX_LEN:
        raise BrokerError(
            f"the {what} {value[:20]!r}... is {len(value)} characters; at most {MAX_LEN}"
        )
    if not _ALLOWED.fullmatch(value):
        bad = sorted({c for c in value if not _ALLOWED.fullmatch(c)})
        raise BrokerError(
            f"the {what} {value!r} contains {', '.join(repr(c) for c in bad)}; "
            "use only letters, digits and _ . : -"
        )
    return value


def check_username(value: str, what: str = "device id") -> str:
    """Returns ``value`` if it can be an MQTT username in the password file."""
    check_id(value, what)
    if ":" in value:
        raise BrokerError(
            f"the {what} {value!r} contains ':', which Mosquitto's password file cannot "
            "hold in a username; a device with such an id can only publish through a gateway"
        )
    return value


def new_password() -> str:
    """A random password: 32 URL-safe characters, 192 bits."""
    return secrets.token_urlsafe(24)
