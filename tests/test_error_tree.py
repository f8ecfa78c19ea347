"""One error tree: every exception class the project defines descends from
core.errors.BridgeError, so a caller can tell the project's errors from
anyone else's, and the tree drawn in core/errors.py is the whole of it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from core.errors import BridgeError

PACKAGES = ("core", "bridge", "edge_agent")


def defined_exceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for name in PACKAGES:
        package = importlib.import_module(name)
        modules = [package.__name__]
        modules += [m.name for m in pkgutil.walk_packages(package.__path__, f"{name}.")]
        for module_name in modules:
            module = importlib.import_module(module_name)
            for cls in vars(module).values():
                if (
                    inspect.isclass(cls)
                    and issubclass(cls, BaseException)
                    and cls.__module__ == module_name
                ):
                    found[f"{module_name}.{cls.__qualname__}"] = cls
    return found


def test_every_exception_class_is_in_the_tree() -> None:
    found = defined_exceptions()
    for name in ("core.errors.ConfigError", "bridge.errors.DatabaseError"):
        assert name in found  # the walk sees every package
    assert "edge_agent.collect.modbus.DeviceError" in found
    outside = {name for name, cls in found.items() if not issubclass(cls, BridgeError)}
    assert outside == set(), "outside core.errors.BridgeError's tree"
