"""Which side of mqtt-bridge is installed.

One distribution, two sides (pyproject.toml): the base installs what core
needs and no server package; the ``edge`` extra adds what edge_agent needs,
``cloud`` what bridge needs. Each command checks its side before importing
anything of it, so ``bridge`` on a gateway says which extra to install
instead of dying of an ImportError.

The installed distribution's own metadata says what each side needs, so this
cannot disagree with pyproject.toml. Only ``extra == "..."`` markers are read
(pyproject has no others). Where the distribution is not installed (the
source tree on PYTHONPATH) nothing is checked.
"""

from __future__ import annotations

import re
from importlib import metadata

DISTRIBUTION = "mqtt-bridge"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_EXTRA = re.compile(r"""^extra\s*==\s*["']([A-Za-z0-9._-]+)["']$""")


def missing(extra: str, distribution: str = DISTRIBUTION) -> list[str]:
    """The distributions ``extra`` requires that are not installed, sorted."""
    try:
        requires = metadata.requires(distribution) or []
    except metadata.PackageNotFoundError:
        return []
    absent = set()
    for requirement in requires:
        spec, _, marker = requirement.partition(";")
        found = _EXTRA.match(marker.strip())
        name = _NAME.match(spec.strip())
        if found is None or found.group(1) != extra or name is None:
            continue
        try:
            metadata.distribution(name.group(0))
        except metadata.PackageNotFoundError:
            absent.add(name.group(0))
    return sorted(absent)


def problem(extra: str, command: str) -> str | None:
    """None when ``extra`` is installed; else the one-line error ``command``
    prints, naming what is missing and what to install."""
    absent = missing(extra)
    if not absent:
        return None
    return (
        f"{command}: error: the {extra} side of {DISTRIBUTION} is not installed "
        f"(missing {', '.join(absent)}); install it with: "
        f"pip install '{DISTRIBUTION}[{extra}]'"
    )
