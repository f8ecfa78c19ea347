"""Device and site ids and metric names: what is valid, and what to say
when it is not. The ids' rule is the topics' (core.topics); a metric name is
``[A-Za-z_][A-Za-z0-9_.:-]*``, checked once per distinct name (a bounded
cache), its length on every call."""

from __future__ import annotations

import re
from typing import TypeGuard

from core.rules.contract import Rejected, kind, show

ID = re.compile(r"[A-Za-z0-9_.:-]+")


def id_problem(value: object, name: str, max_len: int) -> str | None:
    """What is wrong with a device or site id, or None: the topics' rules."""
    if type(value) is not str:
        return f"{name} must be a string, got {kind(value)}"
    if not 1 <= len(value) <= max_len or ID.fullmatch(value) is None:
        return (
            f"{name} {show(value)} must be 1-{max_len} characters of "
            "letters, digits, '_', '.', ':' and '-'"
        )
    return None


METRIC_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]*")

# Names already known to match METRIC_NAME. A device sends the same few names
# in every message, so the regex runs once per name, not once per point. The
# cache holds only a fact about the string (the length limit is checked on
# every call), so sharing it between codecs and contexts is safe; it is
# emptied when full, which bounds it whatever names arrive.
_known_names: dict[str, None] = {}
_KNOWN_NAMES_MAX = 4096


def is_metric_name(name: object, max_len: int) -> TypeGuard[str]:
    if type(name) is not str or len(name) > max_len:
        return False
    if name in _known_names:
        return True
    if METRIC_NAME.fullmatch(name) is None:
        return False
    if len(_known_names) >= _KNOWN_NAMES_MAX:
        _known_names.clear()
    _known_names[name] = None
    return True


def metric_name_problem(name: object, max_len: int) -> str:
    """What is wrong with a name that ``is_metric_name`` refused."""
    if type(name) is not str:
        return f"metric name must be a string, got {show(name)}"
    if len(name) > max_len:
        return f"metric name {show(name)} is longer than {max_len} characters"
    return f"metric name {show(name)} must match [A-Za-z_][A-Za-z0-9_.:-]*"


def config_metric_name(value: str, max_len: int = 64) -> str:
    """A metric name written in a config file; ValueError (what pydantic
    reports as a validation error) saying the rule when it breaks it."""
    if len(value) > max_len or METRIC_NAME.fullmatch(value) is None:
        raise ValueError(
            f"metric name {value!r} must match [A-Za-z_][A-Za-z0-9_.:-]* ({max_len} at most)"
        )
    return value


def metric_name(name: object, max_len: int) -> str:
    """``name`` when it is a valid metric name; raises Rejected otherwise."""
    if type(name) is str and name in _known_names and len(name) <= max_len:
        return name  # the common case, without a call
    if is_metric_name(name, max_len):
        return name
    raise Rejected("bad_metric_name", metric_name_problem(name, max_len))
