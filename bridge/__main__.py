"""The ``bridge`` command (and ``python -m bridge``).

It checks that the cloud side is installed before importing any of it, so on
a machine with only mqtt-bridge[edge] it prints one line saying what to
install and exits 1, never an ImportError's traceback. Everything else is
bridge.cli's.
"""

from __future__ import annotations

import sys

from core.extras import problem


def main() -> int:
    missing = problem("cloud", "bridge")
    if missing is not None:
        print(missing, file=sys.stderr)
        return 1
    from bridge import cli  # noqa: PLC0415 - only once the cloud side is known to be there

    return cli.main()


if __name__ == "__main__":
    sys.exit(main())
