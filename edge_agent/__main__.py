"""The ``edge-agent`` command (and ``python -m edge_agent``).

It checks that the edge side is installed before importing any of it, so on
a machine with only mqtt-bridge[cloud] it prints one line saying what to
install and exits 1, never an ImportError's traceback. Everything else is
edge_agent.cli's.
"""

from __future__ import annotations

import sys

from core.extras import problem


def main() -> int:
    missing = problem("edge", "edge-agent")
    if missing is not None:
        print(missing, file=sys.stderr)
        return 1
    from edge_agent import cli  # noqa: PLC0415 - only once the edge side is known to be there

    return cli.main()


if __name__ == "__main__":
    sys.exit(main())
