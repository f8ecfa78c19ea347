"""Bounds on what one message may contain. Anything past them is rejected with
a reason (and dead-lettered), never stored and never allowed to crash."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_payload_bytes: int = Field(
        262_144, ge=64, le=16_777_216, description="Larger payloads are rejected whole."
    )
    max_points_per_message: int = Field(
        10_000, ge=1, le=1_000_000, description="A message with more points is rejected whole."
    )
    max_future_skew_s: float = Field(
        300.0,
        ge=0,
        description="Points timestamped further ahead of the receive time are rejected.",
    )
    max_age_days: int = Field(
        90,
        ge=1,
        description="Points older than this are rejected; at most database.retention_days.",
    )
    max_metric_len: int = Field(64, ge=1, le=255, description="Longest metric name accepted.")
    max_id_len: int = Field(128, ge=1, le=255, description="Longest device or site id accepted.")
    max_text_bytes: int = Field(
        4096,
        ge=1,
        le=65_536,
        description="Longest string value accepted, in UTF-8 bytes (telemetry_text).",
    )
