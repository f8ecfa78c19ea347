"""Reading an OPC UA server (asyncua): subscriptions and polling, per node group.

One collector per ``[[opcua.servers]]`` entry, one session at a time:

- **Connect.** Security None, or Basic256Sha256 with Sign or SignAndEncrypt
  and the agent's own certificate; the server's certificate must be the one
  trusted in ``server_certificate`` (edge_agent.collect.opcua_security);
  optionally a user name and password.
- **Limits.** Every request is chunked to fit the server's limits, read at
  every session (edge_agent.collect.opcua_requests), and nodes named by
  browse path are resolved to NodeIds then.
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
from collections.abc import Sequence

from asyncua import Client, ua
from asyncua.crypto import security_policies
from asyncua.ua.uaerrors import UaError, UaStatusCodeError

from core.errors import BridgeError
from core.types import Point
from edge_agent.collect import Sink
from edge_agent.collect.opcua_config import OpcUaGroup, OpcUaServer
from edge_agent.collect.opcua_requests import Publish, SessionRequests, Target
from edge_agent.collect.opcua_security import (
    UntrustedServer,
    application_uri,
    trusted_server_certificate,
)
from edge_agent.collect.opcua_values import flatten, time_us
from edge_agent.telemetry import DeviceHealth, Metrics

log = logging.getLogger("edge_agent.opcua")

_SECURITY_REFUSED = (
    "BadCertificateUntrusted",
    "BadSecurityChecksFailed",
    "BadCertificateInvalid",
    "BadCertificateRevoked",
    "BadCertificateUriInvalid",
    "BadSecurityPolicyRejected",
)


class SessionLost(BridgeError):
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
                requests = SessionRequests(client, server, metrics, self._targets)
                await requests.prepare()
                lost = self._lost

                def on_publish(targets: dict[int, Target], lost: asyncio.Event = lost) -> Publish:
                    return lambda result: self._published(result, targets, sink, lost)

                started = await requests.subscribe(on_publish)
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
                await self._until_lost(requests, sink)
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

    async def _until_lost(self, requests: SessionRequests, sink: Sink) -> None:
        polls = {}
        for group in self._server.groups:
            if group.mode == "poll":
                targets = [t for t in self._targets if t.group is group and t.node_id is not None]
                polls[id(group)] = asyncio.create_task(self._poll(requests, group, targets, sink))
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

    # --- values ------------------------------------------------------------------

    async def _published(
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
            await self._store(values, sink)

    async def _store(self, values: Sequence[tuple[Target, ua.DataValue]], sink: Sink) -> None:
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
            await sink.put(self.name, readings)

    async def _poll(
        self, requests: SessionRequests, group: OpcUaGroup, targets: list[Target], sink: Sink
    ) -> None:
        interval = group.interval_s
        jitter = self._metrics.poll_jitter.labels(collector="opcua")
        overruns = self._metrics.poll_overruns.labels(device=self.name)
        due = time.monotonic()

        while True:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            jitter.observe(max(0.0, time.monotonic() - due))
            await self._store(await requests.read(targets), sink)
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
        """Counts a failed or lost session; logs it when the server was up, or
        when the reason is new (a timeout, then a refused certificate: both)."""
        server, health = self._server, self._health
        health.errors += 1
        changed = reason != health.last_error
        health.last_error = reason
        if health.up or changed:
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
