"""Typed settings from a TOML file and environment variables, loaded the same
way for the bridge and the edge agent: the environment wins over the file,
unknown keys are errors, and every failure is one message saying what to fix."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    TomlConfigSettingsSource,
)

from core.errors import ConfigError

S = TypeVar("S", bound=BaseSettings)


class SettingsProblem(ConfigError):
    """The file or the variables do not make valid settings; the message says why."""


def load(cls: type[S], path: Path | None, env: str, overrides: dict[str, Any] | None = None) -> S:
    """``cls`` from ``path`` (when given) and its environment variables, which
    ``env`` names in messages (e.g. "BRIDGE_*"); ``overrides`` (section -> key
    -> value) win over both. Raises SettingsProblem."""
    if path is not None:
        _check_toml(path)

    class FromFile(cls):  # type: ignore[valid-type,misc]
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if path is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
            return tuple(sources)

    where = f"{path} and {env} variables" if path else f"{env} variables"
    try:
        data = FromFile().model_dump()
        for section, values in (overrides or {}).items():
            data[section] = {**data[section], **values}
        return cls.model_validate(data)
    except ValidationError as exc:
        raise SettingsProblem(f"invalid configuration ({where}):\n{_describe(exc)}") from None


def _check_toml(path: Path) -> None:
    try:
        with path.open("rb") as f:
            tomllib.load(f)
    except FileNotFoundError:
        raise SettingsProblem(f"config file {path} does not exist") from None
    except OSError as exc:
        raise SettingsProblem(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsProblem(f"config file {path} is not valid TOML: {exc}") from None


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = "unknown key; check its spelling" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"  {loc}: {msg.removeprefix('Value error, ')}")
    return "\n".join(lines)
