#!/usr/bin/env bash
# GigaTwin's main job: set up the virtual environment, then run the embedded demo. The virtual plant runs the
# reference battery-cell line in-process (warmed up for three weeks so that the 14-day aging store is full, then
# at 60x real time), its telemetry goes through the same ingest pipeline as a plant's into a throw-away SQLite
# store and the live state, and the API and live dashboard come up on 127.0.0.1 (the address is printed).
# No broker, no database server. Ctrl-C stops it. Extra arguments go to `gigatwin demo` (e.g. --port 0, --speed 600).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
exec .venv/bin/gigatwin demo "$@"
