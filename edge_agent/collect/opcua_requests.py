"""One OPC UA session's requests, chunked to fit the server's limits.

Per session: the server's MaxNodesPerRead, MaxMonitoredItemsPerCall and
MaxNodesPerTranslateBrowsePathsToNodeIds are read, and every request is cut
into chunks that fit (``CHUNK`` when the server sets no limit). A server that
answers BadTooManyOperations all the same (its limit says more than it takes)
gets chunks half the size for the rest of the session. Nodes named by browse
path are resolved to NodeIds; subscription groups get their subscription and
monitored items; poll groups' values are read.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from asyncua import Client, ua
from asyncua.ua.uaerrors import UaStatusCodeError

from edge_agent.collect.opcua_config import OpcUaGroup, OpcUaNode, OpcUaServer
from edge_agent.telemetry import Metrics

log = logging.getLogger("edge_agent.opcua")

CHUNK = 1000  # nodes per request when the server sets no limit
T = TypeVar("T")
R = TypeVar("R")
Publish = Callable[[ua.PublishResult], Awaitable[None]]  # asyncua awaits it before acking

_LIMITS = {
    "read": ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead,
    "monitor": ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall,
    "translate": ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerTranslateBrowsePathsToNodeIds,
}


@dataclass
class Target:
    """One configured node: where its values go."""

    group: OpcUaGroup
    node: OpcUaNode
    device_id: str
    node_id: ua.NodeId | None = None  # resolved for this session
    last: tuple[int | None, Any] | None = None  # (source time, value) last stored


class SessionRequests:
    def __init__(
        self, client: Client, server: OpcUaServer, metrics: Metrics, targets: list[Target]
    ) -> None:
        self._client = client
        self._server = server
        self._metrics = metrics
        self._targets = targets
        self.limits = dict.fromkeys(_LIMITS, CHUNK)

    def _skip(self, n: int, reason: str) -> None:
        self._metrics.opcua_skipped.labels(server=self._server.name, reason=reason).inc(n)

    async def read(self, targets: Sequence[Target]) -> list[tuple[Target, ua.DataValue]]:
        """The current values of ``targets``, in chunks of at most MaxNodesPerRead."""

        async def read(part: Sequence[Target]) -> list[ua.DataValue]:
            params = ua.ReadParameters(
                MaxAge=0,
                TimestampsToReturn=ua.TimestampsToReturn.Both,
                NodesToRead=[
                    ua.ReadValueId(NodeId=t.node_id, AttributeId=ua.AttributeIds.Value)
                    for t in part
                ],
            )
            return await self._client.uaclient.read(params)

        return await self.chunked("read", targets, read)

    async def prepare(self) -> None:
        """Reads the server's limits and resolves the browse paths."""
        client = self._client
        ids = [ua.NodeId(ua.Int32(node_id)) for node_id in _LIMITS.values()]
        values = await client.uaclient.read_attributes(ids, ua.AttributeIds.Value)
        for key, value in zip(_LIMITS, values, strict=True):
            good = value.StatusCode is None or value.StatusCode.is_good()
            limit = value.Value.Value if good and value.Value else 0
            self.limits[key] = int(limit) if isinstance(limit, int) and limit > 0 else CHUNK
        log.info(
            "server %s: connected; chunks of %d reads, %d monitored items, %d browse paths "
            "(the server's limits)",
            self._server.name,
            self.limits["read"],
            self.limits["monitor"],
            self.limits["translate"],
        )
        for target in self._targets:
            if target.node.node_id is not None:
                target.node_id = ua.NodeId.from_string(target.node.node_id)
        by_path = [t for t in self._targets if t.node.path is not None]

        async def translate(part: Sequence[Target]) -> list[ua.BrowsePathResult]:
            paths = [self.browse_path(t.node.path or "") for t in part]
            return await client.uaclient.translate_browsepaths_to_nodeids(paths)

        for target, result in await self.chunked("translate", by_path, translate):
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
    def browse_path(path: str) -> ua.BrowsePath:
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

    async def chunked(
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
            part = items[done : done + self.limits[service]]
            counter.inc()
            try:
                results = await call(part)
            except UaStatusCodeError as exc:
                if exc.code != ua.StatusCodes.BadTooManyOperations or len(part) == 1:
                    raise
                self.limits[service] = max(1, len(part) // 2)
                log.warning(
                    "server %s: %d nodes in one %s request are too many for it; "
                    "sending %d at a time",
                    self._server.name,
                    len(part),
                    service,
                    self.limits[service],
                )
                continue
            out.extend(zip(part, results, strict=True))
            done += len(part)
        return out

    async def subscribe(self, on_publish: Callable[[dict[int, Target]], Publish]) -> int:
        """Creates every subscription group's subscription and monitored items;
        ``on_publish(targets)`` makes the callback of a group's publishes, given
        its targets by client handle. Returns the monitored items accepted."""
        client = self._client
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
            created = await client.uaclient.create_subscription(params, on_publish(targets))
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

            for request, result in await self.chunked("monitor", requests, create):
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
