"""Finding and running the external programs the tooling drives.

``run`` raises BrokerError when the program is missing (naming the Debian
package to install) or fails (quoting its own message); it never raises
anything else.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence

from bridge.broker.errors import BrokerError

PACKAGES = {"openssl": "openssl", "mosquitto_passwd": "mosquitto", "mosquitto": "mosquitto"}


def find(program: str) -> str:
    """The full path of ``program``, or BrokerError saying how to install it."""
    path = shutil.which(program)
    if path is None:
        package = PACKAGES.get(program, program)
        raise BrokerError(
            f"{program} is not installed or not on PATH; install it with: apt-get install {package}"
        )
    return path


def run(
    argv: Sequence[str], what: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Runs ``argv`` (its first element looked up on PATH); ``what`` says what
    it was doing, for the error message."""
    program = find(argv[0])
    try:
        result = subprocess.run(
            [program, *argv[1:]],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BrokerError(f"{what}: {argv[0]} did not finish within {timeout:.0f} s") from None
    except OSError as exc:
        raise BrokerError(f"{what}: cannot run {program}: {exc.strerror or exc}") from None
    if result.returncode != 0:
        said = " ".join((result.stderr or result.stdout).split())[-500:]
        raise BrokerError(f"{what}: {argv[0]} failed (exit {result.returncode}): {said}")
    return result
