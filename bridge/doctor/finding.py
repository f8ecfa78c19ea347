"""A finding of `bridge doctor` and the report they make.

Invariant: every finding that is not ok carries a fix, a sentence telling
the operator what to do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    PROBLEM = "problem"
    SKIPPED = "skipped"  # does not apply here (e.g. no replica); the fix says how to enable it
    ERROR = "error"  # could not check (e.g. the service is down)


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    summary: str
    fix: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status is not Status.OK and not self.fix:
            raise ValueError(f"finding {self.check!r} ({self.status}) has no fix")


def ok(check: str, summary: str, **data: Any) -> Finding:
    return Finding(check, Status.OK, summary, data=data)


def bad(check: str, status: Status, summary: str, fix: str, **data: Any) -> Finding:
    return Finding(check, status, summary, fix, data)


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not any(f.status in (Status.PROBLEM, Status.ERROR) for f in self.findings)

    def by_check(self, check: str) -> list[Finding]:
        return [f for f in self.findings if f.check == check]

    def as_dict(self) -> dict[str, Any]:
        return {"healthy": self.healthy, "findings": [asdict(f) for f in self.findings]}

    def lines(self) -> list[str]:
        out = []
        for f in self.findings:
            out.append(f"[{f.status.value:>7}] {f.check}: {f.summary}")
            if f.fix:
                out.append(f"          do: {f.fix}")
        problems = sum(f.status in (Status.PROBLEM, Status.ERROR) for f in self.findings)
        out.append(f"{len(self.findings)} findings, {problems} needing action")
        return out
