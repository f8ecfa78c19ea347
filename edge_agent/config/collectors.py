"""The collectors' sections: the simulated fleet (simulator, its signals and
injected faults), Modbus TCP devices (modbus, each with its register map)
and the gateway's own broker (local_mqtt). OPC UA's section is
edge_agent.collect.opcua_config.

Everything a bad value could break later is checked at load: register maps
(edge_agent.collect.registers.check_map), topic templates, device ids,
metric names, faults on signals and devices that exist.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from core.rules import config_metric_name
from core.topics import TopicTemplate
from edge_agent.collect.registers import RegisterSpec, check_map
from edge_agent.config.section import Section, check_id


class Signal(Section):
    name: str = Field(description="Metric name.")
    min: float = Field(description="Low end of the normal range.")
    max: float = Field(description="High end of the normal range.")
    noise: float = Field(0.01, ge=0, le=1, description="Noise, as a fraction of the range.")
    daily: float = Field(
        0.2, ge=0, le=1, description="Daily cycle's amplitude, as a fraction of the range."
    )
    drift_per_day: float = Field(
        0.05, ge=0, le=1, description="Slow drift, as a fraction of the range per day at most."
    )
    spike_probability: float = Field(
        0.001, ge=0, le=1, description="Chance that a reading is a spike beyond the range."
    )
    dropout_probability: float = Field(
        0.002, ge=0, le=1, description="Chance that a reading is missing (never generated)."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return config_metric_name(value)

    @model_validator(mode="after")
    def _range(self) -> Signal:
        if self.min >= self.max:
            raise ValueError(f"signal {self.name}: min must be below max")
        return self


def _esp_signals() -> list[Signal]:
    """The seed's electric-submersible-pump signals."""
    return [
        Signal(name="flow_rate", min=1000, max=1500),  # type: ignore[call-arg]
        Signal(name="pip", min=2500, max=3000),  # type: ignore[call-arg]
        Signal(name="temperature", min=60, max=80),  # type: ignore[call-arg]
    ]


class Fault(Section):
    """An injected fault: a signal of one device reads ``value`` for a while,
    e.g. an overheating pump, to see alarms raised and cleared."""

    device: int = Field(ge=0, description="Device index (0 is <prefix>-0000).")
    signal: str = Field(description="The signal that misbehaves, e.g. temperature.")
    start_s: float = Field(ge=0, description="From this many seconds after the first reading...")
    end_s: float = Field(gt=0, description="...until this many (exclusive); then normal again.")
    value: float = Field(description="What the signal reads meanwhile.")

    @model_validator(mode="after")
    def _window(self) -> Fault:
        if self.end_s <= self.start_s:
            raise ValueError("a fault's end_s must be after its start_s")
        return self


class SimulatorSettings(Section):
    devices: int = Field(100, ge=1, le=1_000_000, description="Simulated devices.")
    rate: float = Field(
        1.0, gt=0, le=1000, description="Readings per device per second (each with every signal)."
    )
    seed: int = Field(1, description="Same seed, same fleet, same values: fully deterministic.")
    device_prefix: str = Field(
        "esp", description="Device ids are <prefix>-0000, <prefix>-0001, ..."
    )
    start: float | None = Field(
        None,
        description="Epoch seconds of the first reading (default: when first started). Kept "
        "in the spool: after a restart the simulator catches up the readings its devices "
        "took while the agent was down, like devices with their own data logger.",
    )
    duration_s: float | None = Field(
        None,
        gt=0,
        description="Stop generating after this many seconds of readings (default: never).",
    )
    signals: list[Signal] = Field(
        default_factory=_esp_signals,
        min_length=1,
        description="Signals of every device (default: flow_rate, pip, temperature).",
    )

    @field_validator("device_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return check_id(value, "device_prefix")

    faults: list[Fault] = Field(
        default_factory=list,
        description="Injected faults, e.g. [[simulator.faults]] device = 0, signal = "
        '"temperature", start_s = 60, end_s = 180, value = 120.0.',
    )

    @model_validator(mode="after")
    def _unique(self) -> SimulatorSettings:
        names = [s.name for s in self.signals]
        if len(set(names)) != len(names):
            raise ValueError("signal names must be unique")
        for fault in self.faults:
            if fault.signal not in names:
                raise ValueError(f"fault on unknown signal {fault.signal!r}; signals: {names}")
            if fault.device >= self.devices:
                raise ValueError(f"fault on device {fault.device}, but there are {self.devices}")
        return self


class ModbusDevice(Section):
    device_id: str = Field(description="Device id, as the bridge will store it.")
    host: str = Field(description="PLC host name or address.")
    port: int = Field(502, ge=1, le=65535, description="Modbus TCP port.")
    unit: int = Field(1, ge=0, le=255, description="Modbus unit (slave) id.")
    poll_interval_s: float = Field(1.0, gt=0, description="Poll every this many seconds.")
    timeout_s: float = Field(1.0, gt=0, description="Timeout of one request or connect.")
    backoff_max_s: float = Field(
        60.0, gt=0, description="Longest wait between attempts while the device does not answer."
    )
    max_gap: int = Field(
        0, ge=0, description="Unmapped registers (bits) one request may read across (0: none)."
    )
    registers: list[RegisterSpec] = Field(min_length=1, description="The register map.")

    @field_validator("device_id")
    @classmethod
    def _id(cls, value: str) -> str:
        return check_id(value, "device_id")

    @model_validator(mode="after")
    def _unique(self) -> ModbusDevice:
        seen: set[str] = set()
        for reg in self.registers:
            if reg.metric in seen:
                raise ValueError(f"device {self.device_id}: metric {reg.metric!r} is mapped twice")
            seen.add(reg.metric)
        check_map(self.device_id, self.registers, self.max_gap)
        return self


class ModbusSettings(Section):
    # What these do: edge_agent/collect/modbus_fleet.py.
    max_concurrent: int = Field(32, ge=1, le=10_000, description="Polls in flight at once.")
    commit_interval_s: float = Field(
        0.25, ge=0, le=5, description="Polls ending within this long share one spool commit."
    )
    stagger: bool = Field(True, description="Spread the devices' polls over their interval.")
    devices: list[ModbusDevice] = Field(
        default_factory=list, description="PLCs polled over Modbus TCP."
    )

    @model_validator(mode="after")
    def _unique(self) -> ModbusSettings:
        ids = [d.device_id for d in self.devices]
        if len(set(ids)) != len(ids):
            raise ValueError("device ids must be unique")
        return self


class LocalRoute(Section):
    topic: str = Field(
        description="Topic template on the gateway's broker, e.g. sensors/{device_id}/{metric}."
    )
    codec: Literal["seed_json", "flat_json", "raw_value"] = Field(
        "seed_json", description="Payload codec: seed_json, flat_json, raw_value."
    )

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        TopicTemplate(value)
        return value


class LocalMqttSettings(Section):
    enabled: bool = Field(False, description="Subscribe to the gateway's own broker.")
    host: str = Field("127.0.0.1", description="The gateway broker's host.")
    port: int = Field(1883, ge=1, le=65535, description="The gateway broker's port.")
    username: str | None = Field(None, description="Broker user.")
    password: SecretStr | None = Field(None, description="Broker password.")
    client_id: str = Field(
        "edge-agent-local", pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="MQTT client id."
    )
    routes: list[LocalRoute] = Field(
        default_factory=lambda: [
            LocalRoute(topic="sensors/{device_id}/{metric}", codec="raw_value")
        ],
        min_length=1,
        description="Topic templates and their codecs, as in the bridge's routes.",
    )
