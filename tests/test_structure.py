"""The house rule on module size: no Python module under core/, bridge/ or
edge_agent/ is over 400 lines. A module that grows past it holds more than
one idea; split it by idea (a package whose __init__ re-exports, as
bridge.config and core.rules do) rather than raising the limit."""

from __future__ import annotations

from tests.conftest import ROOT

MAX_LINES = 400
PACKAGES = ("core", "bridge", "edge_agent")


def module_lines() -> dict[str, int]:
    """Every module of the packages, by path from the repository root, with
    its number of lines."""
    return {
        str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def test_the_walk_sees_every_package() -> None:
    found = module_lines()
    for path in ("core/rules/times.py", "bridge/config/settings.py", "edge_agent/forward.py"):
        assert path in found


def test_no_module_is_over_400_lines() -> None:
    over = {path: n for path, n in module_lines().items() if n > MAX_LINES}
    named = ", ".join(f"{path} has {n} lines" for path, n in sorted(over.items()))
    assert over == {}, f"over {MAX_LINES} lines (split by idea): {named}"
