"""A real asyncua OPC UA server for the tests, in a thread with its own event
loop: N Double variables ``ns=2;s=v0000`` ... under Objects/2:Plant, whose
values the test changes (each change counted here, on the server's side),
optionally with security, a login, and operation limits it enforces.

It can be stopped and started again on the same port with the same values
and timestamps, as a PLC that restarts keeps its process image.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.common.callback import CallbackType
from asyncua.common.utils import ServiceError
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.integration.harness import free_port_block

NS_URI = "urn:edge-agent-tests:plant"


def node_id(i: int) -> str:
    return f"ns=2;s=v{i:04d}"


def make_cert(folder: Path, name: str, uri: str, server: bool) -> tuple[Path, Path]:
    """A self-signed application certificate (DER) and its key (PEM)."""
    key = cert_gen.generate_private_key()
    host = socket.gethostname()
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        name,
        {},
        [x509.UniformResourceIdentifier(uri), x509.DNSName(host), x509.DNSName("localhost")],
        extended=[ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH],
    )
    cert_path, key_path = folder / f"{name}.der", folder / f"{name}.pem"
    cert_path.write_bytes(cert.public_bytes(Encoding.DER))
    key_path.write_bytes(cert_gen.dump_private_key_as_pem(key))
    return cert_path, key_path


class Logins(UserManager):
    def __init__(self, users: dict[str, str]) -> None:
        self.users = users

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        if username is not None and self.users.get(username) == password:
            return User(role=UserRole.User)
        return None


class OpcServer:
    def __init__(
        self,
        nodes: int,
        *,
        max_nodes_per_read: int = 0,
        claimed_nodes_per_read: int | None = None,  # what it says, when not what it enforces
        max_monitored_items_per_call: int = 0,
        security: tuple[Path, Path] | None = None,  # the server's certificate and key
        trusted_clients: list[Path] | None = None,  # client certificates it accepts (DER)
        users: dict[str, str] | None = None,
        kinds: dict[int, ua.VariantType] | None = None,  # nodes that are not Double
    ) -> None:
        self.port = free_port_block(1)
        self.url = f"opc.tcp://127.0.0.1:{self.port}/test"
        self.nodes = nodes
        self.max_nodes_per_read = max_nodes_per_read
        self.claimed_nodes_per_read = (
            max_nodes_per_read if claimed_nodes_per_read is None else claimed_nodes_per_read
        )
        self.max_monitored_items_per_call = max_monitored_items_per_call
        self.security = security
        self.trusted = [p.read_bytes() for p in trusted_clients or []]
        self.users = users
        self.kinds = kinds or {}
        # What the server holds, kept across restarts: node -> DataValue.
        self.values: dict[int, ua.DataValue] = {}
        self.changes = 0  # value changes made (initial values not included)
        self.reads = 0  # Read requests from clients
        self.largest_read = 0
        self.refused_reads = 0
        self.monitor_calls = 0
        self.largest_monitor_call = 0
        self.rejected_certificates = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: Server | None = None

    def _call(self, coro: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # --- life ------------------------------------------------------------------

    def start(self) -> OpcServer:
        self._call(self._start())
        return self

    async def _start(self) -> None:
        server = Server()
        await server.init()
        server.set_endpoint(self.url)
        server.set_server_name("edge-agent test server")
        if self.security is not None:
            await server.load_certificate(str(self.security[0]))
            await server.load_private_key(str(self.security[1]))
            server.set_security_policy(
                [
                    ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
                    ua.SecurityPolicyType.Basic256Sha256_Sign,
                ]
            )

            async def validate(cert: x509.Certificate, app: ua.ApplicationDescription) -> None:
                if cert.public_bytes(Encoding.DER) not in self.trusted:
                    self.rejected_certificates += 1
                    raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)

            server.set_certificate_validator(validate)  # type: ignore[arg-type]
        if self.users is not None:
            server.iserver.user_manager = Logins(self.users)
            server.set_identity_tokens([ua.UserNameIdentityToken])
        idx = await server.register_namespace(NS_URI)
        assert idx == 2
        plant = await server.nodes.objects.add_object(idx, "Plant")
        for i in range(self.nodes):
            initial = self.values.get(i)
            if initial is None:
                now = dt.datetime.now(dt.UTC)
                kind = self.kinds.get(i, ua.VariantType.Double)
                first = {ua.VariantType.String: "idle", ua.VariantType.Boolean: False}
                initial = ua.DataValue(
                    ua.Variant(first.get(kind, float(i)), kind),
                    SourceTimestamp=now,
                    ServerTimestamp=now,
                )
                self.values[i] = initial
            var = await plant.add_variable(
                ua.NodeId(f"v{i:04d}", idx),
                f"{idx}:v{i:04d}",
                initial.Value,
                initial.Value.VariantType,
            )
            await server.write_attribute_value(var.nodeid, initial)
        await self._limits(server)
        await server.start()
        self._server = server

    async def _limits(self, server: Server) -> None:
        for limit, oid in (
            (
                self.claimed_nodes_per_read,
                ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead,
            ),
            (
                self.max_monitored_items_per_call,
                ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall,
            ),
        ):
            await server.write_attribute_value(
                ua.NodeId(oid), ua.DataValue(ua.Variant(limit, ua.VariantType.UInt32))
            )

        async def pre_read(event: Any, _dispatcher: Any) -> None:
            if not event.is_external:
                return
            n = len(event.request_params.NodesToRead)
            self.reads += 1
            if self.max_nodes_per_read and n > self.max_nodes_per_read:
                self.refused_reads += 1
                raise ServiceError(ua.StatusCodes.BadTooManyOperations)
            self.largest_read = max(self.largest_read, n)

        server.subscribe_server_callback(CallbackType.PreRead, pre_read)
        service = server.iserver.subscription_service
        create = service.create_monitored_items

        async def limited(params: ua.CreateMonitoredItemsParameters) -> Any:
            n = len(params.ItemsToCreate)
            self.monitor_calls += 1
            self.largest_monitor_call = max(self.largest_monitor_call, n)
            if self.max_monitored_items_per_call and n > self.max_monitored_items_per_call:
                raise ServiceError(ua.StatusCodes.BadTooManyOperations)
            return await create(params)

        service.create_monitored_items = limited  # type: ignore[method-assign]

    def stop(self) -> None:
        if self._server is not None:
            self._call(self._server.stop())
            self._server = None

    def close(self) -> None:
        self.stop()

        async def settle() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self._call(settle())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    # --- values ------------------------------------------------------------------

    def change(
        self,
        values: dict[int, Any],
        variant: ua.VariantType = ua.VariantType.Double,
        status: int = ua.StatusCodes.Good,
    ) -> None:
        """Writes new values (one change each), all in one turn of the server's loop."""
        server = self._server
        assert server is not None

        async def write() -> None:
            now = dt.datetime.now(dt.UTC)
            for i, value in values.items():
                dv = ua.DataValue(
                    ua.Variant(value, variant),
                    StatusCode=ua.StatusCode(status),
                    SourceTimestamp=now,
                    ServerTimestamp=now,
                )
                await server.write_attribute_value(ua.NodeId(f"v{i:04d}", 2), dv)
                self.values[i] = dv
                self.changes += 1

        self._call(write())
