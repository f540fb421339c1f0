#!/usr/bin/env bash
# Creates .venv at the repository root (idempotent) with happybase, the Python HBase Thrift1 client
# the emulator's independent check runs against.
#
#   scripts/python-venv.sh --moto   also moto[server] (`moto_server`, a local S3-compatible server: the
#                                   fault suite's durable storage for a Tansu broker it restarts)
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

if [ "${1:-}" = --moto ]; then
    if [ ! -x "$venv/bin/moto_server" ]; then
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'moto[server]'
    fi
    "$venv/bin/python" -c 'import moto; print("moto", moto.__version__)'
fi
