"""A deterministic fleet of simulated devices.

Device ``d`` of ``devices`` takes a reading of every signal at each tick
``k`` (every ``1 / rate`` seconds from ``start``). A value depends only on
(seed, d, signal, k), through a counter-based hash, never on when or how
often the agent ran: the same settings give the same readings, so a test can
compute exactly what was generated.

Each signal has a device-specific level inside [min, max], a daily cycle
(with a device-specific phase), a slow drift, noise, occasional spikes beyond
the range, and dropouts (a reading that is never generated). Values are
rounded to 3 decimals, as a sensor would send them. An injected fault
([[simulator.faults]]) makes one signal of one device read a fixed value for
a window of time (an overheating pump) instead of its normal value; dropouts
still drop readings.

The simulator's clock (the next tick) is saved in the spool with the readings
of each tick, in the same transaction. After a restart it resumes from there
and generates, at once, the ticks its devices took while the agent was down,
like devices that log locally; so a run that was killed produces the same
readings as one that was not.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass

from core.types import Point
from edge_agent.collect import Sink
from edge_agent.config import Signal, SimulatorSettings

log = logging.getLogger("edge_agent.simulator")

_M64 = (1 << 64) - 1
_TWO_PI = 2 * math.pi
_DAY_US = 86_400_000_000
_CHUNK = 50_000  # readings per spool transaction while catching up

STATE_START = "simulator_start_us"
STATE_NEXT_TICK = "simulator_next_tick"


def _mix(x: int) -> int:
    """splitmix64's finaliser: a well-spread 64-bit hash of a 64-bit integer."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _unit(x: int) -> float:
    """A hash as a float in [0, 1)."""
    return (x >> 11) * (1.0 / (1 << 53))


@dataclass(frozen=True, slots=True)
class _Series:
    """One signal of one device: its constants, drawn once from the seed."""

    device_id: str
    signal: Signal
    key: int
    level: float
    phase: float
    drift: float
    faults: list[tuple[int, int, float]]  # (from µs, until µs after start, value)


class Fleet:
    """The readings of every tick; pure, so tests can enumerate them."""

    def __init__(self, settings: SimulatorSettings, start_us: int) -> None:
        self.settings = settings
        self.start_us = start_us
        self.period_us = max(1, round(1_000_000 / settings.rate))
        width = max(4, len(str(settings.devices - 1)))
        self.series: list[_Series] = []
        for d in range(settings.devices):
            device_id = f"{settings.device_prefix}-{d:0{width}d}"
            for s, signal in enumerate(settings.signals):
                key = _mix(_mix(settings.seed & _M64) ^ (d << 16) ^ s)
                span = signal.max - signal.min
                self.series.append(
                    _Series(
                        device_id,
                        signal,
                        key,
                        level=signal.min + span * (0.3 + 0.4 * _unit(_mix(key ^ 1))),
                        phase=_TWO_PI * _unit(_mix(key ^ 2)),
                        drift=span * signal.drift_per_day * (2 * _unit(_mix(key ^ 3)) - 1),
                        faults=[
                            (round(f.start_s * 1e6), round(f.end_s * 1e6), f.value)
                            for f in settings.faults
                            if f.device == d and f.signal == signal.name
                        ],
                    )
                )

    @property
    def last_tick(self) -> int | None:
        """The last tick to generate, or None to go on for ever."""
        if self.settings.duration_s is None:
            return None
        return math.ceil(self.settings.duration_s * 1_000_000 / self.period_us) - 1

    def tick_time_us(self, tick: int) -> int:
        return self.start_us + tick * self.period_us

    def due_tick(self, now_us: int) -> int:
        """The last tick whose time has come (-1 before the first)."""
        return (now_us - self.start_us) // self.period_us

    def readings(self, tick: int) -> list[Point]:
        t = self.tick_time_us(tick)
        days = (t - self.start_us) / _DAY_US
        cycle = _TWO_PI * ((t % _DAY_US) / _DAY_US)
        salt = _mix(tick)
        out: list[Point] = []
        for series in self.series:
            sig = series.signal
            h = _mix(series.key ^ salt)
            if _unit(h) < sig.dropout_probability:
                continue
            span = sig.max - sig.min
            value = (
                series.level
                + sig.daily * span / 2 * math.sin(cycle + series.phase)
                + series.drift * days
            )
            value = min(sig.max, max(sig.min, value))
            h1, h2 = _mix(h ^ 0x51), _mix(h ^ 0x52)
            # Noise: the sum of three uniforms, roughly normal, in about +-1.5.
            value += sig.noise * span * (_unit(h1) + _unit(h2) + _unit(_mix(h ^ 0x53)) - 1.5)
            if _unit(_mix(h ^ 0x54)) < sig.spike_probability:
                value += span * (0.5 + _unit(h1)) * (1 if h2 & 1 else -1)
            for start, end, faulty in series.faults:
                if start <= t - self.start_us < end:
                    value = faulty
            out.append(Point(t, series.device_id, sig.name, round(value, 3)))
        return out


class Simulator:
    name = "simulator"

    def __init__(self, settings: SimulatorSettings) -> None:
        self._settings = settings

    async def run(self, sink: Sink) -> None:
        now_us = time.time_ns() // 1000
        start_us = sink.state(STATE_START)
        if start_us is None:
            configured = self._settings.start
            start_us = now_us if configured is None else round(configured * 1_000_000)
        fleet = Fleet(self._settings, start_us)
        next_tick = sink.state(STATE_NEXT_TICK) or 0
        behind = fleet.due_tick(now_us) - next_tick + 1
        if next_tick and behind > 1:
            log.info("catching up %d ticks the devices took while the agent was down", behind)
        log.info(
            "simulating %d devices x %d signals, %g readings/s each, seed %d",
            self._settings.devices,
            len(self._settings.signals),
            self._settings.rate,
            self._settings.seed,
        )
        per_tick = max(1, len(fleet.series))
        while True:
            last = fleet.last_tick
            if last is not None and next_tick > last:
                log.info("simulation finished: %d ticks generated", next_tick)
                return
            due = fleet.due_tick(time.time_ns() // 1000)
            if last is not None:
                due = min(due, last)
            if due < next_tick:
                wait_us = fleet.tick_time_us(next_tick) - time.time_ns() // 1000
                await asyncio.sleep(max(0.0, wait_us / 1e6))
                continue
            # Several ticks per transaction while catching up; one otherwise.
            upto = min(due, next_tick + max(1, _CHUNK // per_tick) - 1)
            batch: list[Point] = []
            for tick in range(next_tick, upto + 1):
                batch.extend(fleet.readings(tick))
            next_tick = upto + 1
            await sink.put(self.name, batch, {STATE_START: start_us, STATE_NEXT_TICK: next_tick})
            await asyncio.sleep(0)  # let the forwarder run between chunks
