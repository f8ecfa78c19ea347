"""Opening a database connection, with failures translated into errors that say
what to do (bridge.errors). This is the edge where asyncpg's and the OS's
exceptions stop."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import asyncpg

from bridge.config import DatabaseSettings, mask_url
from bridge.errors import ConfigError, DatabaseRejected, DatabaseUnavailable

LOCAL_STACK_HINT = "For the local stack, `make services` starts it."


def where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 5432}"


async def connect(settings: DatabaseSettings) -> asyncpg.Connection:
    """Connects once. Raises DatabaseUnavailable, DatabaseRejected or ConfigError."""
    url = settings.url
    try:
        return await asyncpg.connect(url, timeout=settings.connect_timeout_s)
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
        raise DatabaseRejected(
            f"PostgreSQL at {where(url)} refused the login: {exc}. "
            "Check the user and password in database.url (BRIDGE_DATABASE__URL)."
        ) from None
    except asyncpg.InvalidCatalogNameError as exc:
        raise DatabaseRejected(
            f"PostgreSQL at {where(url)}: {exc}. Create it (createdb) or fix the database "
            "name in database.url."
        ) from None
    except asyncpg.CannotConnectNowError as exc:
        raise DatabaseUnavailable(
            f"PostgreSQL at {where(url)} is not accepting connections yet ({exc}); retry shortly."
        ) from None
    except asyncpg.TooManyConnectionsError as exc:
        raise DatabaseUnavailable(
            f"PostgreSQL at {where(url)} has no free connection slot ({exc}); retry later or "
            "raise max_connections."
        ) from None
    except asyncpg.PostgresError as exc:
        # Anything else the server refuses while letting us in. asyncpg sends
        # every unknown ?parameter of the URL as a server setting, so this is
        # most often a misspelt or invalid one (?timezone=..., ?foo=...).
        raise DatabaseRejected(
            f"PostgreSQL at {where(url)} refused the connection: {exc} (SQLSTATE "
            f"{exc.sqlstate}). Check database.url, in particular its ?parameters: PostgreSQL "
            "takes each one it does not know as a server setting."
        ) from None
    except socket.gaierror as exc:
        raise DatabaseUnavailable(
            f"cannot resolve the database host in {mask_url(url)}: {exc.strerror}. "
            "Check database.url."
        ) from None
    except (OSError, TimeoutError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or exc)
        raise DatabaseUnavailable(
            f"cannot reach PostgreSQL at {where(url)}: {reason}. Is it running, and is "
            f"database.url right? {LOCAL_STACK_HINT}"
        ) from None
    except (ValueError, asyncpg.ClientConfigurationError) as exc:
        raise ConfigError(f"database.url {mask_url(url)} is not usable: {exc}") from None
