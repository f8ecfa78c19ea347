"""Alarm rules: what they say, and the checks that refuse a bad one.

A rule is a selector (site, device, device type, metric: each absent means
any), a severity, and one kind of condition:

    threshold  value above/below ``threshold``, for ``for_s`` seconds and/or
               ``count`` readings in a row; clears at ``clear_threshold``
               (hysteresis; default: the threshold itself)
    rate       change per second over ``window_s`` above/below ``threshold``
    stuck      no change beyond ``epsilon`` for ``for_s`` seconds
    no_data    nothing from the series (or, without a metric, from the
               device) for ``for_s`` seconds of the evaluator's clock
    outlier    rolling z-score (``method = "zscore"``) or MAD score
               (``"mad"``) of the newest value against the others in
               ``window_s``, once ``min_samples`` are there

Invariants, checked by ``parse_rule`` (every refusal is a RuleError whose
message names the field and says what to do): the kind is one of the five;
windows and durations are positive and at most MAX_WINDOW_S; a clear
threshold lies on the clearing side of the threshold (at or below it for
``above``, at or above it for ``below``), or the alarm would never clear; a
field that the kind does not use is refused, not ignored.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from bridge.errors import BridgeError

MAX_WINDOW_S = 7 * 86_400  # a week: the evaluator keeps a window in memory per series
MAX_COUNT = 10_000
NAME_PATTERN = r"^[A-Za-z0-9_.:-]+$"
Severity = Literal["critical", "major", "minor", "warning"]
Direction = Literal["above", "below"]
KINDS = ("threshold", "rate", "stuck", "no_data", "outlier")
Window = Annotated[float, Field(gt=0, le=MAX_WINDOW_S)]
Id = Annotated[str, Field(min_length=1, max_length=128, pattern=NAME_PATTERN)]


class RuleError(BridgeError):
    """A rule that cannot be used; the message says why and what to do, and
    ``problems`` holds each (field, message)."""

    def __init__(self, problems: list[tuple[str, str]] | str) -> None:
        if isinstance(problems, str):
            self.problems = [("rule", problems)]
            super().__init__(problems)
        else:
            self.problems = problems
            super().__init__("; ".join(f"{field}: {message}" for field, message in problems))


class Selector(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    site: Id | None = None
    device: Id | None = None
    device_type: Id | None = None
    metric: Id | None = None

    def matches(self, device: str, site: str | None, device_type: str | None, metric: str) -> bool:
        return (
            (self.metric is None or self.metric == metric)
            and (self.device is None or self.device == device)
            and (self.site is None or self.site == site)
            and (self.device_type is None or self.device_type == device_type)
        )


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Id
    severity: Severity = "warning"
    select: Selector = Field(default_factory=Selector)
    enabled: bool = True

    @property
    def keeps_s(self) -> float:
        """How far back from the newest point the window must reach."""
        return 0.0


def _clear_side(direction: str, threshold: float, clear: float | None, what: str) -> None:
    if clear is None:
        return
    if direction == "above" and clear > threshold:
        raise ValueError(
            f"clear_threshold ({clear:g}) must be at or below the threshold ({threshold:g}) of "
            f"an 'above' {what}: it clears when the value falls back to it"
        )
    if direction == "below" and clear < threshold:
        raise ValueError(
            f"clear_threshold ({clear:g}) must be at or above the threshold ({threshold:g}) of "
            f"a 'below' {what}: it clears when the value rises back to it"
        )


class Threshold(_Rule):
    kind: Literal["threshold"]
    direction: Direction
    threshold: float
    clear_threshold: float | None = None
    for_s: Annotated[float, Field(ge=0, le=MAX_WINDOW_S)] = 0
    count: Annotated[int, Field(ge=1, le=MAX_COUNT)] = 1

    @model_validator(mode="after")
    def _sides(self) -> Threshold:
        _clear_side(self.direction, self.threshold, self.clear_threshold, "threshold rule")
        return self

    @property
    def keeps_s(self) -> float:
        return self.for_s


class Rate(_Rule):
    kind: Literal["rate"]
    direction: Direction
    threshold: float  # units per second
    clear_threshold: float | None = None
    window_s: Window

    @model_validator(mode="after")
    def _sides(self) -> Rate:
        _clear_side(self.direction, self.threshold, self.clear_threshold, "rate rule")
        return self

    @property
    def keeps_s(self) -> float:
        return self.window_s


class Stuck(_Rule):
    kind: Literal["stuck"]
    epsilon: Annotated[float, Field(ge=0)] = 0.0
    for_s: Window

    @property
    def keeps_s(self) -> float:
        return self.for_s


class NoData(_Rule):
    kind: Literal["no_data"]
    for_s: Window


class Outlier(_Rule):
    kind: Literal["outlier"]
    method: Literal["zscore", "mad"] = "zscore"
    threshold: Annotated[float, Field(gt=0)] = 3.0
    clear_threshold: Annotated[float, Field(ge=0)] | None = None
    window_s: Window
    min_samples: Annotated[int, Field(ge=3, le=MAX_COUNT)] = 10

    @model_validator(mode="after")
    def _sides(self) -> Outlier:
        _clear_side("above", self.threshold, self.clear_threshold, "outlier rule")
        return self

    @property
    def keeps_s(self) -> float:
        return self.window_s


Rule = Annotated[Threshold | Rate | Stuck | NoData | Outlier, Field(discriminator="kind")]
_RULE: TypeAdapter[Threshold | Rate | Stuck | NoData | Outlier] = TypeAdapter(Rule)
AnyRule = Threshold | Rate | Stuck | NoData | Outlier


def parse_rule(data: object) -> AnyRule:
    """A validated rule, or RuleError listing every problem."""
    if isinstance(data, dict) and data.get("kind") not in KINDS:
        kind = data.get("kind")
        said = "no kind" if kind is None else f"kind {kind!r} is unknown"
        raise RuleError([("kind", f"{said}, use one of {', '.join(KINDS)}")])
    try:
        return _RULE.validate_python(data)
    except ValidationError as exc:
        raise RuleError(describe(exc)) from None


def rule_errors(data: object) -> list[dict[str, str]]:
    """Each problem as {"field", "message"}, for a 422 problem document."""
    try:
        parse_rule(data)
    except RuleError as exc:
        return [{"field": field, "message": message} for field, message in exc.problems]
    return []


def describe(exc: ValidationError) -> list[tuple[str, str]]:
    parts = []
    for err in exc.errors(include_url=False):
        loc = [str(x) for x in err["loc"] if x not in KINDS]
        field = ".".join(loc) or "rule"
        message = err["msg"].removeprefix("Value error, ")
        duration = loc[-1:] in (["for_s"], ["window_s"])
        if err["type"] == "extra_forbidden":
            message = "not a field of this kind of rule; remove it"
        elif err["type"] == "less_than_equal" and duration:
            message = f"at most {MAX_WINDOW_S} s (a week): the evaluator keeps the window in memory"
        elif err["type"] in ("greater_than", "greater_than_equal") and duration:
            message = f"{message} (a window or duration cannot be negative)"
        parts.append((field, message))
    return parts


def load_seed(path: Path) -> list[AnyRule]:
    """Rules from a TOML file of [[rule]] tables; RuleError names the bad one."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RuleError(f"cannot read the rules file {path}: {exc}") from None
    unknown = set(data) - {"rule"}
    if unknown:
        raise RuleError(f"{path}: only [[rule]] tables are allowed, not {sorted(unknown)}")
    rules: list[AnyRule] = []
    for i, item in enumerate(data.get("rule", [])):
        try:
            rules.append(parse_rule(item))
        except RuleError as exc:
            name = item.get("name", f"#{i + 1}") if isinstance(item, dict) else f"#{i + 1}"
            raise RuleError(f"{path}: rule {name}: {exc}") from None
    names = [r.name for r in rules]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise RuleError(f"{path}: rule names must be unique; repeated: {', '.join(dupes)}")
    return rules


def spec_of(rule: AnyRule) -> dict[str, Any]:
    """What is stored in alarm_rules.spec (everything but name and enabled)."""
    return rule.model_dump(mode="json", exclude={"name", "enabled"}, exclude_none=True)


def from_row(name: str, spec: dict[str, Any], enabled: bool) -> AnyRule:
    return parse_rule({**spec, "name": name, "enabled": enabled})
