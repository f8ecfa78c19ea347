"""Errors named for what the caller must do.

Every message is written for a person: it says what went wrong and what to do.
The CLI prints it without a traceback. The root and the shared branches are
core.errors'; these are the bridge's.

    BridgeError                (core.errors)
    ├── ConfigError            (core.errors) bad config: stop; fix it
    ├── RedisUnavailable       the cache did not take a write or answer a read
    │                          (bridge.cache.client): count it and go on; ingest
    │                          never waits for Redis, reads fall back to the database
    ├── ApiError               (bridge.api.problems) a request the API cannot serve
    │                          as asked: answered with an RFC 9457 problem document
    └── DatabaseError
        ├── DatabaseUnavailable    cannot reach the server, or it is starting
        │                          or shutting down: transient; retry later
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
    "RedisUnavailable",
]


class RedisUnavailable(BridgeError):
    """Redis cannot take this write (or answer this read) now. The cache misses
    this batch (or the read goes to the database); count it and carry on."""


class DatabaseError(BridgeError):
    """Something about the database."""


class DatabaseUnavailable(DatabaseError):
    """The database cannot be reached right now. Retry with backoff."""


class DatabaseRejected(DatabaseError):
    """The server answered but refused: credentials, database name, grants."""


class MigrationError(DatabaseError):
    """The schema cannot be brought to this bridge's version as things are."""
