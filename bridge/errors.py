"""Errors named for what the caller must do.

Every message is written for a person: it says what went wrong and what to do.
The CLI prints it without a traceback. The root and the shared branches are
core.errors' (its docstring draws the whole tree); these are the bridge's,
with the module each lives in:

    BridgeError                (core.errors)
    ├── ConfigError            (core.errors) bad config: stop; fix it
    ├── RedisUnavailable       the cache did not take a write or answer a read
    │                          (bridge.cache.client): count it and go on; ingest
    │                          never waits for Redis, reads fall back to the database
    ├── ApiError               (bridge.api.problems) a request the API cannot serve
    │                          as asked: answered with an RFC 9457 problem document
    ├── ProtocolViolation      (bridge.source.mqtt) the broker broke MQTT: drop
    │                          the connection (it is also a ConnectionError, so
    │                          paho treats it as one) and let unacked messages
    │                          be redelivered
    ├── NotConnected           (bridge.errors) the bridge has no broker connection
    │                          to publish on now: publish again once connected
    ├── BrokerError            (bridge.broker.errors) a broker tool could not do
    │                          what was asked: the message says what to fix
    └── DatabaseError          (bridge.errors)
        ├── DatabaseUnavailable    cannot reach the server, or it is starting
        │   │                      or shutting down: transient; retry later
        │   └── TransientDbError   (raised by bridge.sink.timescale) a batch was
        │                          not written: retry the same batch with backoff
        ├── DatabaseRejected       login, database name or permission refused:
        │                          stop; fix database.url or the grants
        └── MigrationError         a migration failed or the recorded schema
                                   does not match this bridge: stop; fix
"""

from core.errors import BridgeError, ConfigError

__all__ = [
    "BridgeError",
    "ConfigError",
    "DatabaseError",
    "DatabaseRejected",
    "DatabaseUnavailable",
    "MigrationError",
    "NotConnected",
    "RedisUnavailable",
    "TransientDbError",
]


class RedisUnavailable(BridgeError):
    """Redis cannot take this write (or answer this read) now. The cache misses
    this batch (or the read goes to the database); count it and carry on."""


class NotConnected(BridgeError):
    """No broker connection to publish on, or it dropped before the broker
    took the message. Publish again once connected."""


class DatabaseError(BridgeError):
    """Something about the database."""


class DatabaseUnavailable(DatabaseError):
    """The database cannot be reached right now. Retry with backoff."""


class DatabaseRejected(DatabaseError):
    """The server answered but refused: credentials, database name, grants."""


class MigrationError(DatabaseError):
    """The schema cannot be brought to this bridge's version as things are."""


class TransientDbError(DatabaseUnavailable):
    """A batch was not written; nothing of it may be assumed stored. Retry the
    whole batch later (writes are idempotent). ``reason`` labels the retry
    metric: ``sqlstate_<class>`` or the exception's type name."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
