#!/usr/bin/env bash
# GigaTwin's main job: set up the virtual environment, then simulate the reference battery-cell line
# (three weeks of warm-up so that the 14-day aging store is full, then one measured week) and print its KPIs.
# Extra arguments go to `gigatwin simulate` (e.g. --json, --replications 4).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
exec .venv/bin/gigatwin simulate simulations/lines/reference_cell_line.yaml --warmup 504 --hours 168 "$@"
