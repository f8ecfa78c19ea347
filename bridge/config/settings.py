"""The whole configuration (Settings), how it is loaded (load_settings) and
how it is shown with its secrets masked (mask_url, masked_dump).

Settings checks what ties sections together (limits against retention, the
reconnect delays, the packet size against the payload limit) and compiles
every route, so a configuration that loads is one the bridge can run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bridge.config.features import AlarmSettings, ReceiptSettings, SparkplugSettings
from bridge.config.ingest import BatchSettings, DatabaseSettings, MqttSettings, RedisSettings
from bridge.config.serving import ApiSettings, HttpSettings, ShutdownSettings
from bridge.errors import ConfigError
from core import settings_file
from core.limits import Limits


class Settings(BaseSettings):
    """The whole configuration. Section names are the TOML tables."""

    model_config = SettingsConfigDict(
        env_prefix="BRIDGE_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)  # type: ignore[arg-type]
    redis: RedisSettings = Field(default_factory=RedisSettings)  # type: ignore[arg-type]
    mqtt: MqttSettings = Field(default_factory=MqttSettings)  # type: ignore[arg-type]
    batch: BatchSettings = Field(default_factory=BatchSettings)  # type: ignore[arg-type]
    receipts: ReceiptSettings = Field(default_factory=ReceiptSettings)  # type: ignore[arg-type]
    limits: Limits = Field(default_factory=Limits)  # type: ignore[arg-type]
    http: HttpSettings = Field(default_factory=HttpSettings)  # type: ignore[arg-type]
    api: ApiSettings = Field(default_factory=ApiSettings)  # type: ignore[arg-type]
    shutdown: ShutdownSettings = Field(default_factory=ShutdownSettings)  # type: ignore[arg-type]
    sparkplug: SparkplugSettings = Field(default_factory=SparkplugSettings)  # type: ignore[arg-type]
    alarms: AlarmSettings = Field(default_factory=AlarmSettings)  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.limits.max_age_days > self.database.retention_days:
            raise ValueError(
                "limits.max_age_days must not exceed database.retention_days: older points "
                "would be written only to be dropped"
            )
        if self.mqtt.reconnect_min_s > self.mqtt.reconnect_max_s:
            raise ValueError("mqtt.reconnect_min_s must not exceed mqtt.reconnect_max_s")
        if self.mqtt.max_packet_bytes <= self.limits.max_payload_bytes:
            raise ValueError(
                "mqtt.max_packet_bytes must exceed limits.max_payload_bytes (topic and header "
                "come on top), or no payload_too_large message could ever be dead-lettered"
            )
        for route in self.mqtt.routes:
            route.compile(self.limits)
        return self


def load_settings(path: Path | None = None) -> Settings:
    """Loads and validates the configuration; raises ConfigError saying what to fix.

    ``path`` defaults to $BRIDGE_CONFIG; with neither, defaults and environment only.
    """
    if path is None and os.environ.get("BRIDGE_CONFIG"):
        path = Path(os.environ["BRIDGE_CONFIG"])
    try:
        return settings_file.load(Settings, path, "BRIDGE_*")
    except settings_file.SettingsProblem as exc:
        raise ConfigError(str(exc)) from None


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def masked_dump(settings: Settings) -> dict[str, Any]:
    """The settings as plain data, secrets masked, for --print-config."""
    data = settings.model_dump(mode="json")
    data["database"]["url"] = mask_url(settings.database.url)
    data["redis"]["url"] = mask_url(settings.redis.url)
    if settings.mqtt.password is not None:
        data["mqtt"]["password"] = "***"  # noqa: S105 - the mask, not a password
    broker = settings.api.broker
    if broker is not None and broker.password is not None:
        data["api"]["broker"]["password"] = "***"  # noqa: S105
    return data
