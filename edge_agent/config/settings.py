"""The whole configuration (Settings), how it is loaded (load_settings) and
how it is shown with its secrets masked (masked_dump)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from core import settings_file
from edge_agent.collect.opcua_config import OpcUaSettings
from edge_agent.config.collectors import LocalMqttSettings, ModbusSettings, SimulatorSettings
from edge_agent.config.gateway import AgentSettings, SpoolSettings, StatusSettings, UplinkSettings
from edge_agent.errors import ConfigError


class Settings(BaseSettings):
    """The whole configuration. Section names are the TOML tables."""

    model_config = SettingsConfigDict(
        env_prefix="EDGE_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    agent: AgentSettings = Field(default_factory=AgentSettings)  # type: ignore[arg-type]
    spool: SpoolSettings = Field(default_factory=SpoolSettings)  # type: ignore[arg-type]
    uplink: UplinkSettings = Field(default_factory=UplinkSettings)  # type: ignore[arg-type]
    status: StatusSettings = Field(default_factory=StatusSettings)  # type: ignore[arg-type]
    simulator: SimulatorSettings = Field(default_factory=SimulatorSettings)  # type: ignore[arg-type]
    modbus: ModbusSettings = Field(default_factory=ModbusSettings)  # type: ignore[arg-type]
    local_mqtt: LocalMqttSettings = Field(default_factory=LocalMqttSettings)  # type: ignore[arg-type]
    opcua: OpcUaSettings = Field(default_factory=OpcUaSettings)


def load_settings(path: Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Loads and validates the configuration; raises ConfigError saying what to fix.

    ``path`` defaults to $EDGE_CONFIG. ``overrides`` (section -> key -> value,
    from command-line options) win over everything else.
    """
    if path is None and os.environ.get("EDGE_CONFIG"):
        path = Path(os.environ["EDGE_CONFIG"])
    try:
        return settings_file.load(Settings, path, "EDGE_*", overrides)
    except settings_file.SettingsProblem as exc:
        raise ConfigError(str(exc)) from None


def masked_dump(settings: Settings) -> dict[str, Any]:
    """The settings as plain data, secrets masked, for --print-config."""
    data = settings.model_dump(mode="json")
    for section in ("uplink", "local_mqtt"):
        if data[section]["password"] is not None:
            data[section]["password"] = "***"  # noqa: S105 - the mask, not a password
    for server in data["opcua"]["servers"]:
        if server["password"] is not None:
            server["password"] = "***"  # noqa: S105 - the mask, not a password
    return data
