"""`bridge api` and `bridge apikey`: serving the read API and managing its keys."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import asyncpg

from bridge.api.scopes import SCOPES
from bridge.config import Settings
from bridge.db.connect import connect, where
from bridge.errors import BridgeError


def add_api_commands(commands: Any) -> None:
    commands.add_parser(
        "api",
        help="serve the read API (devices, telemetry, analytics, HTTP ingest)",
        description="Serves the read API on http://<api.host>:<api.port>/api/v1/ with its "
        "OpenAPI document at /openapi.json and interactive docs at /docs. Recent data comes "
        "from Redis, history from PostgreSQL; POST /api/v1/telemetry answers after the points "
        "are committed. Every /api/v1 route needs an API key (see `bridge apikey`). Health on "
        "/healthz, /readyz; Prometheus metrics on /metrics. SIGTERM stops it gracefully.",
    )
    keys = commands.add_parser(
        "apikey",
        help="create, list and revoke API keys",
        description="API keys for the read API. A key has scopes: 'read' for the GET routes, "
        "'write' for HTTP ingest. Only a hash is stored: a key is shown once, when created.",
    )
    actions = keys.add_subparsers(dest="apikey_command", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create",
        help="make a key and print it (once)",
        description="Makes a key and prints it. Store it where the client can read it; it "
        "cannot be shown again. Clients send it as 'Authorization: Bearer <key>'.",
    )
    create.add_argument(
        "--scope",
        action="append",
        choices=SCOPES,
        required=True,
        help="read or write; repeat for both",
    )
    create.add_argument("--name", required=True, help="who or what uses the key, e.g. grafana")
    actions.add_parser("list", help="list keys (never their secrets)")
    revoke = actions.add_parser(
        "revoke",
        help="revoke a key",
        description="Revokes a key by its id (the 12 hex digits after 'bk_'). A running API "
        "stops accepting it within api.key_cache_s seconds.",
    )
    revoke.add_argument("key_id", help="the key's id, e.g. 3f9a0c1b2d4e")


def run_api(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.api.server import serve  # noqa: PLC0415 - the web stack loads only to serve

    return serve(settings)


def run_apikey(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_apikey(args, settings))


async def _apikey(args: argparse.Namespace, settings: Settings) -> int:
    conn = await connect(settings.database)
    try:
        await _apikey_action(conn, args)
    except asyncpg.UndefinedTableError:
        raise BridgeError(
            f"the database at {where(settings.database.url)} has no api_keys table; "
            "run `bridge db migrate`"
        ) from None
    finally:
        await conn.close()
    return 0


async def _apikey_action(conn: asyncpg.Connection, args: argparse.Namespace) -> None:
    from bridge.api.keys import create_key, list_keys, revoke_key  # noqa: PLC0415 - see scopes

    if args.apikey_command == "create":
        try:
            print(await create_key(conn, args.name, args.scope))
        except ValueError as exc:
            raise BridgeError(str(exc)) from None
    elif args.apikey_command == "list":
        for k in await list_keys(conn):
            state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
            print(f"{k.key_id}  {','.join(k.scopes):10}  {state:24}  {k.name}")
    elif await revoke_key(conn, args.key_id):
        print(f"revoked {args.key_id}")
    else:
        raise BridgeError(f"no active key {args.key_id!r}; see `bridge apikey list`")
