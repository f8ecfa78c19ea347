"""Polling PLCs over Modbus TCP (pymodbus), one task per device.

Each device's register map is read in as few requests as possible: entries of
the same function whose registers are adjacent share one request (at most 125
registers or 2000 bits, the protocol's limits); a gap between two entries is
read only when it is at most the device's ``max_gap`` (0 by default, since a
PLC may refuse addresses it does not map). All readings of one
poll carry the poll's start time and are spooled in one transaction.

A device that does not answer (refused, timed out, a Modbus exception) is
marked down in /healthz and ``edge_device_up``, counted in
``edge_device_errors_total``, logged once when it goes down and once when it
comes back, and polled again after a backoff that doubles from its poll
interval up to ``backoff_max_s``. Its task only ever waits on its own
socket, so a dead device never delays another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass, field

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException, ModbusIOException

from core.errors import BridgeError
from core.types import Point
from edge_agent.collect import Sink
from edge_agent.collect.registers import BIT_FUNCTIONS, RegisterSpec, decode
from edge_agent.config import ModbusDevice
from edge_agent.telemetry import DeviceHealth, Metrics

log = logging.getLogger("edge_agent.modbus")

MAX_REGISTERS = 125  # per read request (Modbus application protocol, 6.3)
MAX_BITS = 2000


@dataclass
class Block:
    """One read request: ``count`` registers or bits from ``start``."""

    function: str
    start: int
    count: int
    specs: list[RegisterSpec] = field(default_factory=list)


def plan(registers: list[RegisterSpec], max_gap: int = 0) -> list[Block]:
    """The read requests that cover a register map, reading across gaps of at
    most ``max_gap`` unmapped registers (or bits)."""
    blocks: list[Block] = []
    for spec in sorted(registers, key=lambda s: (s.function, s.address)):
        limit = MAX_BITS if spec.function in BIT_FUNCTIONS else MAX_REGISTERS
        last = blocks[-1] if blocks else None
        end = spec.address + spec.words
        if (
            last is not None
            and last.function == spec.function
            and spec.address <= last.start + last.count + max_gap
            and max(end, last.start + last.count) - last.start <= limit
        ):
            last.count = max(end, last.start + last.count) - last.start
        else:
            last = Block(spec.function, spec.address, spec.words)
            blocks.append(last)
        last.specs.append(spec)
    return blocks


class DeviceError(BridgeError):
    """The device did not give a usable answer; the poll failed."""


class ModbusPoller:
    def __init__(self, device: ModbusDevice, metrics: Metrics, health: DeviceHealth) -> None:
        self.name = f"modbus:{device.device_id}"
        self._device = device
        self._metrics = metrics
        self._health = health
        self._blocks = plan(device.registers, device.max_gap)
        self._client = AsyncModbusTcpClient(
            device.host, port=device.port, timeout=device.timeout_s, retries=0, reconnect_delay=0
        )

    async def run(self, sink: Sink) -> None:
        device = self._device
        self._metrics.device_up.labels(device=device.device_id).set(0)
        backoff = device.poll_interval_s
        next_poll = time.monotonic()
        try:
            while True:
                await asyncio.sleep(max(0.0, next_poll - time.monotonic()))
                started = time.monotonic()
                poll = asyncio.ensure_future(self._poll())
                try:
                    readings = await asyncio.shield(poll)
                except asyncio.CancelledError:
                    # Stopping. Finish the poll under way (bounded by the request
                    # timeout): what the device has served is not thrown away.
                    with contextlib.suppress(Exception):
                        await sink.put(self.name, await poll)
                    raise
                except (DeviceError, ModbusException, OSError, TimeoutError) as exc:
                    self._client.close()
                    self._failed(self._reason(exc), backoff)
                    next_poll = time.monotonic() + backoff
                    backoff = min(backoff * 2, device.backoff_max_s)
                    continue
                await sink.put(self.name, readings)
                self._answered()
                backoff = device.poll_interval_s
                # Keep the schedule; skip polls that a slow answer made us miss.
                next_poll += device.poll_interval_s
                if next_poll < started:
                    next_poll = started + device.poll_interval_s
        finally:
            self._client.close()

    async def _poll(self) -> list[Point]:
        device = self._device
        client = self._client
        if not client.connected and not await client.connect():
            raise DeviceError(f"cannot connect to {device.host}:{device.port}")
        time_us = time.time_ns() // 1000
        readings: list[Point] = []
        for block in self._blocks:
            read = {
                "holding": client.read_holding_registers,
                "input": client.read_input_registers,
                "coil": client.read_coils,
                "discrete": client.read_discrete_inputs,
            }[block.function]
            response = await read(block.start, count=block.count, device_id=device.unit)
            if response.isError():
                raise DeviceError(
                    f"Modbus exception {getattr(response, 'exception_code', '?')} reading "
                    f"{block.count} {block.function} at {block.start}"
                )
            raw = response.bits if block.function in BIT_FUNCTIONS else response.registers
            for spec in block.specs:
                at = spec.address - block.start
                value = decode(spec, raw[at : at + spec.words])
                if not math.isfinite(value):
                    self._metrics.bad_values.labels(device=device.device_id).inc()
                    continue
                readings.append(Point(time_us, device.device_id, spec.metric, value))
        return readings

    def _reason(self, exc: Exception) -> str:
        if isinstance(exc, ModbusIOException | TimeoutError):
            return f"no answer within {self._device.timeout_s:g} s"
        return str(exc) or type(exc).__name__

    def _failed(self, reason: str, retry_in: float) -> None:
        device, health = self._device, self._health
        health.errors += 1
        health.last_error = reason
        self._metrics.device_errors.labels(device=device.device_id).inc()
        self._metrics.device_up.labels(device=device.device_id).set(0)
        if health.up or health.errors == 1:
            log.warning(
                "device %s (%s:%d) does not answer: %s; retrying in %.1f s, backing off to %.0f s",
                device.device_id,
                device.host,
                device.port,
                reason,
                retry_in,
                device.backoff_max_s,
            )
        else:
            log.debug("device %s still down: %s", device.device_id, reason)
        health.up = False

    def _answered(self) -> None:
        device, health = self._device, self._health
        if not health.up:
            log.info("device %s (%s:%d) answers", device.device_id, device.host, device.port)
        health.up = True
        health.last_ok_at = time.time()
        self._metrics.device_up.labels(device=device.device_id).set(1)
