"""API keys against a real database: stored hashed, checked, scoped, revoked."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from bridge.api.keys import KeyChecker, create_key, list_keys, revoke_key


@pytest.fixture
async def pool(plain_db: str) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(plain_db, min_size=1, max_size=2) as p:
        yield p


async def test_a_key_is_stored_only_as_a_hash(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        token = await create_key(conn, "grafana", ["read"])
        secret = token.split("_", 2)[2]
        row = await conn.fetchrow("SELECT * FROM api_keys")
    assert row is not None
    assert secret.encode() not in b"".join(str(v).encode() for v in row.values())
    assert bytes(row["secret_hash"]) != secret.encode()


async def test_a_created_key_checks_out_with_its_scopes(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        token = await create_key(conn, "ingest", ["write", "read"])
    key = await KeyChecker(pool, cache_s=0).check(token)
    assert key is not None
    assert key.name == "ingest"
    assert key.scopes == ("read", "write")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # wrong secret
        lambda t: "bk_000000000000_" + t.split("_", 2)[2],  # unknown id
        lambda t: t + "x",  # malformed
        lambda t: "",
        lambda t: "Bearer " + t,
    ],
)
async def test_a_wrong_token_is_refused(pool: asyncpg.Pool, mangle) -> None:  # type: ignore[no-untyped-def]
    async with pool.acquire() as conn:
        token = await create_key(conn, "x", ["read"])
    assert await KeyChecker(pool, cache_s=0).check(mangle(token)) is None


async def test_a_revoked_key_stops_working_after_the_cache_time(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        token = await create_key(conn, "old", ["read"])
    cached = KeyChecker(pool, cache_s=3600)
    uncached = KeyChecker(pool, cache_s=0)
    assert await cached.check(token) is not None
    async with pool.acquire() as conn:
        assert await revoke_key(conn, token.split("_")[1])
        assert not await revoke_key(conn, token.split("_")[1])  # already revoked
        [row] = await list_keys(conn)
    assert row.revoked_at is not None
    assert await uncached.check(token) is None
    assert await cached.check(token) is not None  # within key_cache_s, as documented


async def test_bad_scopes_and_names_are_refused(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(ValueError, match="scopes"):
            await create_key(conn, "x", ["admin"])
        with pytest.raises(ValueError, match="scopes"):
            await create_key(conn, "x", [])
        with pytest.raises(ValueError, match="name"):
            await create_key(conn, "", ["read"])
