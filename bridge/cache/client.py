"""The connection to the cache's Redis that the writer and the reader share:
the client, the bound on every call, and what a failure means.

Errors (the only one raised on purpose; bridge.errors has the tree):

    RedisUnavailable   Redis did not take the write or answer the read:
                       refused or lost connection, timeout, loading,
                       READONLY replica, OOM, or any other error reply (the
                       message names it and says what to do). Count it and
                       move on; the next call tries again, reconnecting if
                       needed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Self

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    ConnectionError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

from bridge.cache.keys import DEFAULT_PREFIX, Keys
from bridge.config import mask_url
from bridge.errors import RedisUnavailable


class CacheClient:
    """Use as ``async with``. Entering creates the client but does not
    connect, so it succeeds while Redis is down; each call connects as
    needed, so a Redis that comes back is used again without a new client.
    Every call is bounded by about ``timeout_s`` and raises
    ``RedisUnavailable`` when Redis cannot serve it."""

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX, timeout_s: float = 2.0) -> None:
        self.url = url
        self.prefix = prefix
        self.keys = Keys(prefix)
        self.timeout_s = timeout_s
        self._client: aioredis.Redis | None = None

    async def __aenter__(self) -> Self:
        self._client = aioredis.Redis.from_url(
            self.url,
            socket_timeout=self.timeout_s,
            socket_connect_timeout=self.timeout_s,
            # No retries inside redis-py: a failed batch is the caller's to count.
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,  # so the casts on replies hold
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    @property
    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            raise RuntimeError(f"use {type(self).__name__} inside 'async with'")
        return self._client

    @contextlib.asynccontextmanager
    async def _guard(self, what: str) -> AsyncIterator[None]:
        """Bounds the block by ``timeout_s`` and turns redis-py's exceptions
        into RedisUnavailable with a message that says what to do."""
        try:
            async with asyncio.timeout(self.timeout_s):
                yield
        except (TimeoutError, RedisError) as exc:
            raise RedisUnavailable(
                f"could not {what} Redis at {mask_url(self.url)}: {self._hint(exc)}"
            ) from exc

    def _hint(self, exc: Exception) -> str:
        if isinstance(exc, TimeoutError | RedisTimeoutError):
            return (
                f"no answer within {self.timeout_s:g} s; Redis is overloaded, blocked by a "
                "long command, or unreachable: check it and the network"
            )
        hint = next(hint for cls, hint in _HINTS if isinstance(exc, cls))
        return hint.format(exc=str(exc).rstrip("."))


# What to do about each redis-py exception; the first class that matches wins.
_HINTS: tuple[tuple[type[Exception], str], ...] = (
    (BusyLoadingError, "it is loading its data after a restart; later batches will get through"),
    (AuthenticationError, "{exc}; fix the user or password in redis.url"),
    (ConnectionError, "{exc}; start Redis or fix redis.url"),
    (ReadOnlyError, "it is a read-only replica; point redis.url at the primary"),
    (OutOfMemoryError, "it is out of memory; raise its maxmemory or give it an eviction policy"),
    (Exception, "it answered with an error: {exc}"),
)
