"""Live-status latency while the default forecast refreshes, against forecasts off, in the same run.

    .venv/bin/python simulations/bench/bench_status_during_forecast.py [--seconds 100] [--rate 50]

Starts ``gigatwin demo --speed 60`` (the reference line) twice: with ``GIGATWIN_FORECAST_PERIOD_S=60`` (the
default: 100 replications to the end of the shift in one forkserver process, refreshed every minute; the run waits
for the first) and with 0 (no refresh). Each time, ``GET /status`` at ``--rate`` requests a second on one
keep-alive connection for ``--seconds`` (spanning refreshes), and prints p50, p99 and the slowest. A benchmark,
not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import subprocess
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def run(period: str, seconds: float, rate: float) -> dict[str, object]:
    """One demo with the given forecast period: the status latency while it runs."""
    env = {**os.environ, "GIGATWIN_FORECAST_PERIOD_S": period}
    command = [str(ROOT / ".venv" / "bin" / "python"), "-m", "api.cli", "demo", "--port", "0", "--speed", "60"]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        port = 0
        for line in proc.stdout:
            found = re.search(r"dashboard at http://127.0.0.1:(\d+)/", line)
            if found:
                port = int(found.group(1))
                break
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=180)
        conn.request("GET", "/api/v1/lines")
        line_id = json.loads(conn.getresponse().read())[0]["id"]
        if period != "0":  # wait for the first refresh
            conn.request("GET", f"/api/v1/lines/{line_id}/forecast")
            conn.getresponse().read()
        latencies = []
        end = time.monotonic() + seconds
        due = time.monotonic()
        while time.monotonic() < end:
            started = time.perf_counter()
            conn.request("GET", f"/api/v1/lines/{line_id}/status")
            conn.getresponse().read()
            latencies.append((time.perf_counter() - started) * 1000)
            due += 1.0 / rate
            time.sleep(max(0.0, due - time.monotonic()))
    finally:
        proc.terminate()
        proc.wait(30)
    a = np.array(latencies)
    return {
        "forecast_period_s": period,
        "requests": len(a),
        "p50_ms": round(float(np.percentile(a, 50)), 2),
        "p99_ms": round(float(np.percentile(a, 99)), 2),
        "max_ms": round(float(a.max()), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Live-status latency while the default forecast refreshes")
    parser.add_argument("--seconds", type=float, default=100.0)
    parser.add_argument("--rate", type=float, default=50.0)
    args = parser.parse_args()
    for period in ("60", "0"):
        print(json.dumps(run(period, args.seconds, args.rate)), flush=True)


if __name__ == "__main__":
    main()
