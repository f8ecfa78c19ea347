"""The base of every configuration section: a frozen pydantic model that
refuses unknown keys, so a misspelt key is an error, never silently ignored."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
