#!/usr/bin/env bash
# Creates .venv with the project, both sides (cloud and edge), and its dev
# tools. Needs Python 3.11+; on Debian/Ubuntu it installs python3-venv when
# the interpreter lacks venv.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON=${PYTHON:-python3}
say() { printf '[venv] %s\n' "$*" >&2; }

command -v "$PYTHON" >/dev/null || { say "error: $PYTHON not found; install Python 3.11 or newer"; exit 1; }
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { say "error: $("$PYTHON" --version) is too old; this project needs Python 3.11 or newer (set PYTHON=...)"; exit 1; }

if [ ! -x .venv/bin/python ]; then
    if ! "$PYTHON" -m venv --help >/dev/null 2>&1 || ! "$PYTHON" -c 'import ensurepip' 2>/dev/null; then
        pkg="python3-venv"
        say "installing $pkg (Debian package)"
        if [ "$(id -u)" -eq 0 ]; then apt-get install -y -qq "$pkg" >/dev/null; else sudo apt-get install -y -qq "$pkg" >/dev/null; fi
    fi
    say "creating .venv"
    "$PYTHON" -m venv .venv
fi
say "installing the project and its dev tools into .venv"
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[cloud,edge,dev]'
