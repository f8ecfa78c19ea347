"""Errors named for what the caller must do.

Every message is written for a person: it says what went wrong and what to do.
The CLI prints it without a traceback.

    BridgeError
    ├── ConfigError            bad config file, variable or option: stop; fix it
    ├── RedisUnavailable       (bridge.sink.redis) the cache did not take a write:
    │                          count it and go on; ingest never waits for Redis
    └── DatabaseError
        ├── DatabaseUnavailable    cannot reach the server, or it is starting
        │                          or shutting down: transient; retry later
        ├── DatabaseRejected       login, database name or permission refused:
        │                          stop; fix database.url or the grants
        └── MigrationError         a migration failed or the recorded schema
                                   does not match this bridge: stop; fix
"""


class BridgeError(Exception):
    """Base of every error the bridge raises on purpose."""


class ConfigError(BridgeError):
    """The configuration is invalid. Not retryable: the user must fix it."""


class DatabaseError(BridgeError):
    """Something about the database."""


class DatabaseUnavailable(DatabaseError):
    """The database cannot be reached right now. Retry with backoff."""


class DatabaseRejected(DatabaseError):
    """The server answered but refused: credentials, database name, grants."""


class MigrationError(DatabaseError):
    """The schema cannot be brought to this bridge's version as things are."""
