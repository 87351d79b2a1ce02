#!/usr/bin/env bash
# GigaTwin's test command: sets up everything it needs (virtual environment, packages, the Debian
# services the integration tests start), then runs the linters, the type checker, the layer contracts
# and the default test suite. Extra arguments go to pytest (e.g. `-m slow` for the long statistical runs).
set -euo pipefail
cd "$(dirname "$0")/.."

# The integration tests start their own broker and database from these binaries (mosquitto_pub plays a PLC gateway);
# the dashboard test drives Debian's Chromium.
need=()
command -v mosquitto >/dev/null 2>&1 || need+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
command -v influxd >/dev/null 2>&1 || need+=(influxdb)
command -v chromium >/dev/null 2>&1 || need+=(chromium chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "== installing the Debian packages ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "note: missing packages and this is not root; run: sudo apt-get install ${need[*]}" >&2
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PY" -m venv .venv
fi
echo "== installing gigatwin with its dev tools and Dask (the what-if tests run on a local Dask cluster)"
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev,dask]'

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy";        .venv/bin/mypy
echo "== import-linter"; .venv/bin/lint-imports
echo "== pytest";      .venv/bin/python -m pytest "$@"
