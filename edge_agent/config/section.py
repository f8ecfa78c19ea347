"""The base of every configuration section (a frozen pydantic model that
refuses unknown keys) and the id rule the sections share."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from core.rules import ID


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_id(value: str, what: str) -> str:
    """``value`` when it is a valid device or site id; ValueError saying the rule."""
    if len(value) > 128 or ID.fullmatch(value) is None:
        raise ValueError(f"{what} {value!r} must be 1 to 128 of [A-Za-z0-9_.:-]")
    return value
