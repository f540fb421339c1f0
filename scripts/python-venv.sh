#!/usr/bin/env bash
# Creates .venv at the repository root (idempotent) with happybase, the Python HBase Thrift1 client
# the emulator's independent check runs against.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi

if ! "$venv/bin/python" -c 'import happybase' 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check happybase
fi

"$venv/bin/python" -c 'import happybase; print("happybase", happybase.__version__)'
