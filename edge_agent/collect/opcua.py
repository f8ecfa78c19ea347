"""Reading an OPC UA server (asyncua): subscriptions and polling, per node group.

One collector per ``[[opcua.servers]]`` entry, one session at a time:

- **Connect.** Security None, or Basic256Sha256 with Sign or SignAndEncrypt
  and the agent's own certificate; the server's certificate must be the one
  trusted in ``server_certificate`` (edge_agent.collect.opcua_security);
  optionally a user name and password.
- **Limits.** The server's MaxNodesPerRead, MaxMonitoredItemsPerCall and
  MaxNodesPerTranslateBrowsePathsToNodeIds are read once per session; every
  request is chunked to fit (``CHUNK`` when the server sets no limit, and
  half the size after a BadTooManyOperations all the same).
- **Nodes** named by browse path are resolved to NodeIds once per session.
- **Subscription groups**: one subscription each (publishing interval), one
  monitored item per node (sampling interval, queue size, absolute or percent
  deadband). The readings of one publish are spooled in one transaction, and
  the publish is acknowledged only after that, so a crash before the commit
  loses nothing the server still holds.
- **Poll groups**: the nodes' values read every ``interval_s`` on a fixed
  grid, jitter in ``edge_poll_jitter_seconds{collector="opcua"}``, skipped
  slots in ``edge_poll_overruns_total{device="opcua:<server>"}``.
- **Values** become readings as edge_agent.collect.opcua_values says; a Bad
  status is counted by status name (``edge_opcua_bad_values_total``), never
  stored. A node's sample is stored once: one with the same source timestamp
  and value as the last stored (a resubscribe's initial values, a poll of an
  unchanged node) is counted as "repeated" and skipped.
- **Lost session** (server stopped or restarted, network gone, the server's
  watchdog read fails): the session is dropped, and a new one is opened with
  a backoff doubling from ``reconnect_min_s`` to ``reconnect_max_s``; every
  subscription and monitored item is created again. The time without a
  session is the gap: logged when it ends, added to
  ``edge_opcua_gap_seconds_total``, with ``edge_opcua_reconnects_total``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from asyncua import Client, ua
from asyncua.crypto import security_policies
from asyncua.ua.uaerrors import UaError, UaStatusCodeError

from core.types import Point
from edge_agent.collect import Sink
from edge_agent.collect.opcua_config import OpcUaGroup, OpcUaNode, OpcUaServer
from edge_agent.collect.opcua_security import (
    UntrustedServer,
    application_uri,
    trusted_server_certificate,
)
from edge_agent.collect.opcua_values import flatten, time_us
from edge_agent.telemetry import DeviceHealth, Metrics

log = logging.getLogger("edge_agent.opcua")

CHUNK = 1000  # nodes per request when the server sets no limit
T = TypeVar("T")
R = TypeVar("R")

_LIMITS = {
    "read": ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead,
    "monitor": ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall,
    "translate": ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerTranslateBrowsePathsToNodeIds,
}
_SECURITY_REFUSED = (
    "BadCertificateUntrusted",
    "BadSecurityChecksFailed",
    "BadCertificateInvalid",
    "BadCertificateRevoked",
    "BadCertificateUriInvalid",
    "BadSecurityPolicyRejected",
)


@dataclass
class Target:
    """One configured node: where its values go."""

    group: OpcUaGroup
    node: OpcUaNode
    device_id: str
    node_id: ua.NodeId | None = None  # resolved for this session
    last: tuple[int | None, Any] | None = None  # (source time, value) last stored


class SessionLost(Exception):
    """The session ended; open a new one."""


class OpcUaCollector:
    def __init__(self, server: OpcUaServer, metrics: Metrics, health: DeviceHealth) -> None:
        self.name = f"opcua:{server.name}"
        self._server = server
        self._metrics = metrics
        self._health = health
        self._targets = [
            Target(group, node, group.device_of(node))
            for group in server.groups
            for node in group.nodes
        ]
        self._limits = dict.fromkeys(_LIMITS, CHUNK)
        self._lost = asyncio.Event()

    # --- the session's life ----------------------------------------------------

    async def run(self, sink: Sink) -> None:
        server, metrics = self._server, self._metrics
        metrics.opcua_connected.labels(server=server.name).set(0)
        backoff = server.reconnect_min_s
        lost_at: float | None = None
        while True:
            client: Client | None = None
            try:
                client = await self._connect()
                await self._prepare(client)
                started = await self._subscribe(client, sink)
                if lost_at is not None:
                    gap = time.monotonic() - lost_at
                    metrics.opcua_reconnects.labels(server=server.name).inc()
                    metrics.opcua_gap_seconds.labels(server=server.name).inc(gap)
                    log.warning(
                        "server %s: session back after a gap of %.1f s without values; "
                        "%d monitored items re-created",
                        server.name,
                        gap,
                        started,
                    )
                    lost_at = None
                self._up()
                backoff = server.reconnect_min_s
                await self._until_lost(client, sink)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # every failure is counted, logged, retried
                self._failed(self._reason(exc), backoff)
            finally:
                if client is not None:
                    await self._close(client)
            if lost_at is None and self._health.last_ok_at is not None:
                lost_at = time.monotonic()
            metrics.opcua_connected.labels(server=server.name).set(0)
            metrics.opcua_monitored_items.labels(server=server.name).set(0)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, server.reconnect_max_s)

    async def _connect(self) -> Client:
        server = self._server
        client = Client(server.url, timeout=server.timeout_s)
        client.name = client.description = "edge-agent"
        if server.security_policy != "None":
            assert server.certificate is not None
            assert server.private_key is not None
            assert server.server_certificate is not None
            mode = getattr(ua.MessageSecurityMode, server.security_mode)
            policy = security_policies.SecurityPolicyBasic256Sha256
            uri = application_uri(server.certificate)
            if uri:
                client.application_uri = uri
            trusted = await trusted_server_certificate(server, mode, policy.URI)
            await client.set_security(
                policy,
                str(server.certificate),
                str(server.private_key),
                server_certificate=trusted,
                mode=mode,
            )
        if server.username is not None:
            client.set_user(server.username)
        if server.password is not None:
            client.set_password(server.password.get_secret_value())

        # One event per session: a late callback of an old session cannot end a new one.
        session_lost = self._lost = asyncio.Event()

        async def lost(exc: Exception) -> None:
            log.debug("server %s: connection lost: %r", server.name, exc)
            session_lost.set()

        client.connection_lost_callback = lost
        await client.connect()
        return client

    async def _close(self, client: Client) -> None:
        """Closes the session if the server still answers; drops the socket anyway."""
        timeout = self._server.timeout_s
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.close_session(), timeout)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.close_secure_channel(), timeout)
        with contextlib.suppress(Exception):
            client.disconnect_socket()

    async def _until_lost(self, client: Client, sink: Sink) -> None:
        polls = {}
        for group in self._server.groups:
            if group.mode == "poll":
                targets = [t for t in self._targets if t.group is group and t.node_id is not None]
                polls[id(group)] = asyncio.create_task(self._poll(client, group, targets, sink))
        lost = asyncio.create_task(self._lost.wait())
        try:
            done, _ = await asyncio.wait(
                [lost, *polls.values()], return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                if task is not lost and task.exception() is not None:
                    raise SessionLost(self._reason(task.exception()))  # type: ignore[arg-type]
            raise SessionLost("the connection was lost")
        finally:
            for task in [lost, *polls.values()]:
                task.cancel()
            await asyncio.gather(lost, *polls.values(), return_exceptions=True)

    # --- per session: limits, browse paths, subscriptions ------------------------

    async def _prepare(self, client: Client) -> None:
        ids = [ua.NodeId(ua.Int32(node_id)) for node_id in _LIMITS.values()]
        values = await client.uaclient.read_attributes(ids, ua.AttributeIds.Value)
        for key, value in zip(_LIMITS, values, strict=True):
            good = value.StatusCode is None or value.StatusCode.is_good()
            limit = value.Value.Value if good and value.Value else 0
            self._limits[key] = int(limit) if isinstance(limit, int) and limit > 0 else CHUNK
        log.info(
            "server %s: connected; chunks of %d reads, %d monitored items, %d browse paths "
            "(the server's limits)",
            self._server.name,
            self._limits["read"],
            self._limits["monitor"],
            self._limits["translate"],
        )
        for target in self._targets:
            if target.node.node_id is not None:
                target.node_id = ua.NodeId.from_string(target.node.node_id)
        by_path = [t for t in self._targets if t.node.path is not None]

        async def translate(part: Sequence[Target]) -> list[ua.BrowsePathResult]:
            paths = [self._browse_path(t.node.path or "") for t in part]
            return await client.uaclient.translate_browsepaths_to_nodeids(paths)

        for target, result in await self._chunked("translate", by_path, translate):
            target.node_id = None
            if result.StatusCode.is_good() and result.Targets:
                found = result.Targets[0].TargetId  # an ExpandedNodeId: the local part
                target.node_id = ua.NodeId(found.Identifier, found.NamespaceIndex, found.NodeIdType)
            else:
                self._skip(1, "node_error")
                log.warning(
                    "server %s: browse path %s (%s/%s) not found: %s",
                    self._server.name,
                    target.node.path,
                    target.device_id,
                    target.node.metric,
                    result.StatusCode.name,
                )

    @staticmethod
    def _browse_path(path: str) -> ua.BrowsePath:
        elements = []
        for part in path.strip("/").split("/"):
            ns, name = part.split(":", 1)
            elements.append(
                ua.RelativePathElement(
                    ReferenceTypeId=ua.NodeId(ua.Int32(ua.ObjectIds.HierarchicalReferences)),
                    IsInverse=False,  # type: ignore[arg-type]
                    IncludeSubtypes=True,  # type: ignore[arg-type]
                    TargetName=ua.QualifiedName(name, int(ns)),
                )
            )
        return ua.BrowsePath(
            StartingNode=ua.NodeId(ua.Int32(ua.ObjectIds.ObjectsFolder)),
            RelativePath=ua.RelativePath(Elements=elements),
        )

    async def _chunked(
        self,
        service: str,
        items: Sequence[T],
        call: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
    ) -> list[tuple[T, R]]:
        """``call`` on chunks of ``items`` that fit the server's limit for ``service``.

        A server that answers BadTooManyOperations all the same (its limit
        says more than it takes) gets chunks half the size from then on."""
        counter = self._metrics.opcua_requests.labels(server=self._server.name, service=service)
        out: list[tuple[T, R]] = []
        done = 0
        while done < len(items):
            part = items[done : done + self._limits[service]]
            counter.inc()
            try:
                results = await call(part)
            except UaStatusCodeError as exc:
                if exc.code != ua.StatusCodes.BadTooManyOperations or len(part) == 1:
                    raise
                self._limits[service] = max(1, len(part) // 2)
                log.warning(
                    "server %s: %d nodes in one %s request are too many for it; "
                    "sending %d at a time",
                    self._server.name,
                    len(part),
                    service,
                    self._limits[service],
                )
                continue
            out.extend(zip(part, results, strict=True))
            done += len(part)
        return out

    async def _subscribe(self, client: Client, sink: Sink) -> int:
        """Creates every subscription group's subscription and monitored items."""
        accepted = 0
        for group in self._server.groups:
            if group.mode != "subscription":
                continue
            targets = {
                handle: t
                for handle, t in enumerate(self._targets, start=1)
                if t.group is group and t.node_id is not None
            }
            interval_ms = group.publishing_interval_s * 1000
            keepalive = max(1, math.ceil(10_000 / interval_ms))
            params = ua.CreateSubscriptionParameters(
                RequestedPublishingInterval=interval_ms,
                RequestedLifetimeCount=keepalive * 3,
                RequestedMaxKeepAliveCount=keepalive,
                MaxNotificationsPerPublish=0,
                PublishingEnabled=True,
                Priority=0,
            )

            def on_publish(
                result: ua.PublishResult,
                targets: dict[int, Target] = targets,
                lost: asyncio.Event = self._lost,
            ) -> None:
                self._published(result, targets, sink, lost)

            created = await client.uaclient.create_subscription(params, on_publish)
            mfilter = None
            if group.deadband != "none":
                mfilter = ua.DataChangeFilter(
                    Trigger=ua.DataChangeTrigger.StatusValue,
                    DeadbandType=ua.DeadbandType.Absolute
                    if group.deadband == "absolute"
                    else ua.DeadbandType.Percent,
                    DeadbandValue=group.deadband_value,
                )
            requests = [
                ua.MonitoredItemCreateRequest(
                    ItemToMonitor=ua.ReadValueId(
                        NodeId=t.node_id, AttributeId=ua.AttributeIds.Value
                    ),
                    MonitoringMode=ua.MonitoringMode.Reporting,
                    RequestedParameters=ua.MonitoringParameters(
                        ClientHandle=handle,
                        SamplingInterval=group.interval_s * 1000,
                        Filter=mfilter,
                        QueueSize=group.queue_size,
                        DiscardOldest=True,
                    ),
                )
                for handle, t in targets.items()
            ]

            async def create(
                part: Sequence[ua.MonitoredItemCreateRequest], sid: int = created.SubscriptionId
            ) -> list[ua.MonitoredItemCreateResult]:
                return await client.uaclient.create_monitored_items(
                    ua.CreateMonitoredItemsParameters(
                        SubscriptionId=sid,
                        TimestampsToReturn=ua.TimestampsToReturn.Both,
                        ItemsToCreate=list(part),
                    )
                )

            for request, result in await self._chunked("monitor", requests, create):
                if result.StatusCode.is_good():
                    accepted += 1
                    continue
                target = targets[request.RequestedParameters.ClientHandle]
                self._skip(1, "node_error")
                log.warning(
                    "server %s: node %s (%s/%s) not monitored: %s",
                    self._server.name,
                    target.node.name,
                    target.device_id,
                    target.node.metric,
                    result.StatusCode.name,
                )
        self._metrics.opcua_monitored_items.labels(server=self._server.name).set(accepted)
        return accepted

    # --- values ------------------------------------------------------------------

    def _published(
        self, result: ua.PublishResult, targets: dict[int, Target], sink: Sink, lost: asyncio.Event
    ) -> None:
        data = result.NotificationMessage.NotificationData or []
        values: list[tuple[Target, ua.DataValue]] = []
        for notification in data:
            if isinstance(notification, ua.DataChangeNotification):
                for item in notification.MonitoredItems:
                    target = targets.get(item.ClientHandle)
                    if target is not None:
                        values.append((target, item.Value))
            elif (
                isinstance(notification, ua.StatusChangeNotification)
                and not notification.Status.is_good()
            ):
                log.debug(
                    "server %s: subscription status %s", self._server.name, notification.Status.name
                )
                lost.set()
        if values:
            self._store(values, sink)

    def _store(self, values: Sequence[tuple[Target, ua.DataValue]], sink: Sink) -> None:
        """Spools the readings of ``values`` in one transaction; counts the rest."""
        server = self._server
        readings: list[Point] = []
        skipped: Counter[str] = Counter()
        now_us = time.time_ns() // 1000
        for target, dv in values:
            status = dv.StatusCode if dv.StatusCode is not None else ua.StatusCode()
            if status.is_bad():
                self._metrics.opcua_bad_values.labels(server=server.name, status=status.name).inc()
                continue
            value = dv.Value.Value if dv.Value is not None else None
            source_us = time_us(dv.SourceTimestamp)
            server_us = time_us(dv.ServerTimestamp)
            sample = (source_us if source_us is not None else server_us, value)
            if sample == target.last:
                skipped["repeated"] += 1
                continue
            target.last = sample
            if target.group.timestamp == "source":
                at = source_us if source_us is not None else server_us
            else:
                at = server_us if server_us is not None else source_us
            at = at if at is not None else now_us
            for metric, number in flatten(
                target.node.metric, value, server.max_array_elements, skipped
            ):
                readings.append(Point(at, target.device_id, metric, number))
        for reason, n in skipped.items():
            self._skip(n, reason)
        if readings:
            sink.put(self.name, readings)

    async def _poll(
        self, client: Client, group: OpcUaGroup, targets: list[Target], sink: Sink
    ) -> None:
        interval = group.interval_s
        jitter = self._metrics.poll_jitter.labels(collector="opcua")
        overruns = self._metrics.poll_overruns.labels(device=self.name)
        due = time.monotonic()

        async def read(part: Sequence[Target]) -> list[ua.DataValue]:
            params = ua.ReadParameters(
                MaxAge=0,
                TimestampsToReturn=ua.TimestampsToReturn.Both,
                NodesToRead=[
                    ua.ReadValueId(NodeId=t.node_id, AttributeId=ua.AttributeIds.Value)
                    for t in part
                ],
            )
            return await client.uaclient.read(params)

        while True:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            jitter.observe(max(0.0, time.monotonic() - due))
            self._store(await self._chunked("read", targets, read), sink)
            due += interval
            now = time.monotonic()
            if due < now:
                missed = math.ceil((now - due) / interval)
                overruns.inc(missed)
                due += missed * interval

    # --- health ------------------------------------------------------------------

    def _skip(self, n: int, reason: str) -> None:
        self._metrics.opcua_skipped.labels(server=self._server.name, reason=reason).inc(n)

    def _reason(self, exc: BaseException) -> str:
        server = self._server
        if isinstance(exc, UntrustedServer | SessionLost):
            return str(exc)
        name = type(exc).__name__
        if isinstance(exc, UaStatusCodeError | UaError) and any(
            n in name or n in str(exc) for n in _SECURITY_REFUSED
        ):
            return (
                f"the server refused the agent's certificate or security settings ({name}): "
                f"have the server trust {server.certificate} and check security_policy and "
                "security_mode"
            )
        if isinstance(exc, UaStatusCodeError) and "BadUserAccessDenied" in name + str(exc):
            return f"the server refused the login of user {server.username!r} ({name})"
        if isinstance(exc, TimeoutError):
            return f"no answer within {server.timeout_s:g} s"
        return f"{name}: {exc}" if str(exc) else name

    def _up(self) -> None:
        server, health = self._server, self._health
        if not health.up:
            log.info("server %s (%s) connected", server.name, server.url)
        health.up = True
        health.last_ok_at = time.time()
        self._metrics.opcua_connected.labels(server=server.name).set(1)

    def _failed(self, reason: str, retry_in: float) -> None:
        server, health = self._server, self._health
        health.errors += 1
        health.last_error = reason
        if health.up or health.errors == 1:
            log.warning(
                "server %s (%s): %s; retrying in %.1f s, backing off to %.0f s",
                server.name,
                server.url,
                reason,
                retry_in,
                server.reconnect_max_s,
            )
        else:
            log.debug("server %s still unreachable: %s", server.name, reason)
        health.up = False
