"""Typed configuration: a TOML file, overridden by BRIDGE_* environment variables.

Precedence, highest first: environment (``BRIDGE_DATABASE__URL``, with ``__``
between section and key), then the file given by ``--config`` or
``BRIDGE_CONFIG``, then the sections' defaults. Unknown keys are errors, in the
file and in every section. Loading validates; nothing connects until a command
starts.

    section   Section: the base of every section (unknown keys refused)
    ingest    database, redis, mqtt (BrokerLogin, TlsSettings, Route), batch
    serving   http, api, shutdown
    features  receipts, sparkplug, alarms
    settings  Settings, load_settings, mask_url, masked_dump

Everything is re-exported here: import it from ``bridge.config``.
"""

from __future__ import annotations

from bridge.config.features import AlarmSettings, ReceiptSettings, SparkplugSettings
from bridge.config.ingest import (
    BatchSettings,
    BrokerLogin,
    DatabaseSettings,
    MqttSettings,
    RedisSettings,
    Route,
    TlsSettings,
)
from bridge.config.section import Section
from bridge.config.serving import ApiSettings, HttpSettings, ShutdownSettings
from bridge.config.settings import Settings, load_settings, mask_url, masked_dump

__all__ = [
    "AlarmSettings",
    "ApiSettings",
    "BatchSettings",
    "BrokerLogin",
    "DatabaseSettings",
    "HttpSettings",
    "MqttSettings",
    "ReceiptSettings",
    "RedisSettings",
    "Route",
    "Section",
    "Settings",
    "ShutdownSettings",
    "SparkplugSettings",
    "TlsSettings",
    "load_settings",
    "mask_url",
    "masked_dump",
]
