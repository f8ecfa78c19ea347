"""Runs every doctor check against the deployment a Settings describes.

A check that raises becomes an error finding naming the service and the
reason; the others still run. The order of findings is the order of CHECKS.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import aiomqtt
import asyncpg
import redis.exceptions

from bridge.config import Settings, mask_url
from bridge.db.connect import connect, where
from bridge.doctor import database, services
from bridge.doctor.finding import Finding, Report, Status, bad
from bridge.doctor.options import Options
from bridge.errors import BridgeError


async def doctor(settings: Settings, options: Options) -> Report:
    report = Report()
    report.findings += await _database(settings, options)
    report.findings += await _guard(
        "redis policy",
        f"Redis at {mask_url(settings.redis.url)}",
        services.check_redis(settings, options),
    )
    report.findings += await _guard(
        "broker queues",
        f"the broker at {settings.mqtt.host}:{settings.mqtt.port}",
        services.check_broker(settings, options),
    )
    for role, urls in (("bridge", options.bridge_urls), ("api", options.api_urls)):
        for url in urls:
            report.findings += await asyncio.to_thread(
                services.check_process, url, role, settings, options
            )
    return report


async def _database(settings: Settings, options: Options) -> list[Finding]:
    try:
        conn = await connect(settings.database)
    except BridgeError as exc:
        return [_unreachable("database", str(exc), "start it or fix database.url")]
    out: list[Finding] = []
    try:
        # A table locked by someone else (a migration, a stuck transaction)
        # must turn into a finding, not a doctor waiting forever.
        ms = int(options.timeout_s * 1000)
        await conn.execute(f"SET lock_timeout = {ms}; SET statement_timeout = {ms * 2}")
        for check in database.CHECKS:
            out += await _guard(
                check.__name__.removeprefix("check_").replace("_", " "),
                f"PostgreSQL at {where(settings.database.url)}",
                check(conn, settings, options),
            )
        skew, uncertainty = await database.database_clock_skew(conn)
        out.append(services.skew_finding("database", skew, uncertainty, options))
    finally:
        await conn.close()
    return out


async def _guard(check: str, what: str, work: Awaitable[list[Finding]]) -> list[Finding]:
    try:
        return await work
    except (
        OSError,
        TimeoutError,
        asyncpg.PostgresError,
        aiomqtt.MqttError,
        redis.exceptions.RedisError,
        BridgeError,
    ) as exc:
        return [_unreachable(check, f"{what}: {exc}", "check that it runs, its address and login")]


def _unreachable(check: str, summary: str, fix: str) -> Finding:
    return bad(check, Status.ERROR, summary, fix)
