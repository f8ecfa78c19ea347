"""Typed configuration: a TOML file, overridden by EDGE_* environment variables.

Precedence, highest first: environment (``EDGE_UPLINK__PASSWORD``, with ``__``
between section and key), then the file given by ``--config`` or
``EDGE_CONFIG``, then the sections' defaults. Unknown keys are errors, in the file
and in every section. Loading validates everything a bad value could break
later (register maps, topic templates, device ids, metric names); nothing
connects until a command starts.

    section     Section: the base of every section (unknown keys refused); check_id
    gateway     agent, spool, uplink (TlsSettings), status
    collectors  simulator (Signal, Fault), modbus (ModbusDevice), local_mqtt (LocalRoute)
    settings    Settings, load_settings, masked_dump

OPC UA's section is edge_agent.collect.opcua_config. Everything else is
re-exported here: import it from ``edge_agent.config``.
"""

from __future__ import annotations

from edge_agent.config.collectors import (
    Fault,
    LocalMqttSettings,
    LocalRoute,
    ModbusDevice,
    ModbusSettings,
    Signal,
    SimulatorSettings,
)
from edge_agent.config.gateway import (
    AgentSettings,
    SpoolSettings,
    StatusSettings,
    TlsSettings,
    UplinkSettings,
)
from edge_agent.config.section import Section
from edge_agent.config.settings import Settings, load_settings, masked_dump

__all__ = [
    "AgentSettings",
    "Fault",
    "LocalMqttSettings",
    "LocalRoute",
    "ModbusDevice",
    "ModbusSettings",
    "Section",
    "Settings",
    "Signal",
    "SimulatorSettings",
    "SpoolSettings",
    "StatusSettings",
    "TlsSettings",
    "UplinkSettings",
    "load_settings",
    "masked_dump",
]
