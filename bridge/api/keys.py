"""API keys: made by `bridge apikey create`, checked on every request.

A key reads ``bk_<key_id>_<secret>``: the id finds the row, the secret is 32
random bytes of which only the SHA-256 is stored. Checked keys are remembered
for ``ApiSettings.key_cache_s``, so a busy client costs no database round trip
per request; a revoked key stops working within that time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Literal

import asyncpg

from bridge.api.problems import ApiProblem
from bridge.api.scopes import SCOPES

_TOKEN = re.compile(r"bk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: str
    name: str
    scopes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class KeyRow:
    key_id: str
    name: str
    scopes: tuple[str, ...]
    created_at: object
    revoked_at: object


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


async def create_key(conn: asyncpg.Connection, name: str, scopes: list[str]) -> str:
    """Stores a new key and returns its token, which is shown once and never again."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValueError(f"scopes must be among {', '.join(SCOPES)}; got {', '.join(scopes)}")
    if not 1 <= len(name) <= 128:
        raise ValueError("a key name is 1 to 128 characters")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO api_keys (key_id, name, scopes, secret_hash) VALUES ($1, $2, $3, $4)",
        key_id,
        name,
        sorted(set(scopes)),
        _hash(secret),
    )
    return f"bk_{key_id}_{secret}"


async def list_keys(conn: asyncpg.Connection) -> list[KeyRow]:
    rows = await conn.fetch(
        "SELECT key_id, name, scopes, created_at, revoked_at FROM api_keys ORDER BY created_at"
    )
    return [
        KeyRow(r["key_id"], r["name"], tuple(r["scopes"]), r["created_at"], r["revoked_at"])
        for r in rows
    ]


async def revoke_key(conn: asyncpg.Connection, key_id: str) -> bool:
    """True when an active key was revoked."""
    status = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL", key_id
    )
    return bool(status == "UPDATE 1")


class KeyChecker:
    """Finds the key a request presents; remembers the answer for a while."""

    def __init__(self, pool: asyncpg.Pool, cache_s: float) -> None:
        self._pool = pool
        self._cache_s = cache_s
        self._seen: dict[str, tuple[float, ApiKey | None]] = {}

    async def check(self, token: str) -> ApiKey | None:
        """The key, or None when the token is malformed, unknown, wrong or revoked.
        Raises asyncpg/OSError errors when the database cannot be asked."""
        now = time.monotonic()
        hit = self._seen.get(token)
        if hit is not None and now - hit[0] < self._cache_s:
            return hit[1]
        match = _TOKEN.fullmatch(token)
        key: ApiKey | None = None
        if match is not None:
            key_id, secret = match.groups()
            row = await self._pool.fetchrow(
                "SELECT name, scopes, secret_hash FROM api_keys "
                "WHERE key_id = $1 AND revoked_at IS NULL",
                key_id,
            )
            if row is not None and hmac.compare_digest(bytes(row["secret_hash"]), _hash(secret)):
                key = ApiKey(key_id, row["name"], tuple(row["scopes"]))
        if len(self._seen) > 10_000:  # bounded: a flood of random tokens cannot grow it
            self._seen.clear()
        self._seen[token] = (now, key)
        return key

    async def require(self, token: str | None, scope: Literal["read", "write"]) -> ApiKey:
        """The key, when it exists and has ``scope``; else ApiProblem 401 or 403,
        saying what to send or which key to make. Database errors pass through."""
        if not token:
            raise ApiProblem(
                401,
                "Unauthorized",
                "send an API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'; "
                "an operator makes one with `bridge apikey create`",
                headers={"WWW-Authenticate": 'Bearer realm="bridge"'},
            )
        key = await self.check(token)
        if key is None:
            raise ApiProblem(
                401,
                "Unauthorized",
                "this API key is unknown or revoked",
                headers={"WWW-Authenticate": 'Bearer realm="bridge", error="invalid_token"'},
            )
        if scope not in key.scopes:
            raise ApiProblem(
                403,
                "Forbidden",
                f"this key ({key.name}) lacks the {scope!r} scope; make one with "
                f"`bridge apikey create --scope {scope}`",
            )
        return key
