"""A real InfluxDB 1.x for the integration tests and the store benchmark: its own process, ports and directories.

Never a server that happens to run on the machine: the HTTP API and the RPC (backup) port are both moved to free
loopback ports, everything it writes lives under ``data_dir``, and :meth:`InfluxServer.start` checks in the
server's own log that this process bound the port before it trusts ``/ping``.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

INFLUXD = Path("/usr/bin/influxd")

_CONFIG = """\
# Generated for one test run: loopback only, no reporting, no self-monitoring, no listeners but HTTP.
reporting-disabled = true   # upstream's key
reporting-enabled = false   # Debian's (each build ignores the other's)
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{data_dir}/meta"
  retention-autocreate = true
  logging-enabled = false

[data]
  dir = "{data_dir}/data"
  wal-dir = "{data_dir}/wal"
  index-version = "inmem"
  query-log-enabled = false
  wal-fsync-delay = "0s"

[retention]
  enabled = false

[shard-precreation]
  enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = false
  log-enabled = false
  pprof-enabled = false
  max-row-limit = 0

[logging]
  level = "info"
  suppress-logo = true

[[graphite]]
  enabled = false

[[collectd]]
  enabled = false

[[opentsdb]]
  enabled = false

[[udp]]
  enabled = false

[ifql]
  enabled = false
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class InfluxServer:
    """One ``influxd`` bound to 127.0.0.1 on free ports, with its meta, data and WAL directories under ``data_dir``."""

    def __init__(self, data_dir: Path, *, start_timeout_s: float = 20.0) -> None:
        if not INFLUXD.exists():
            raise RuntimeError(f"{INFLUXD} is missing: `bash tests/run.sh` installs the Debian package influxdb")
        self.data_dir = data_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.start_timeout_s = start_timeout_s
        self.port = free_port()
        self.rpc_port = free_port()
        self.config = self.data_dir / "influxdb.conf"
        self.log = self.data_dir / "influxd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start influxd and wait until it answers ``/ping``; raises RuntimeError with the log's tail if it does not."""
        if self.proc is not None:
            return
        self.config.write_text(_CONFIG.format(data_dir=self.data_dir, http_port=self.port, rpc_port=self.rpc_port))
        log_offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([str(INFLUXD), "-config", str(self.config)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            if self.proc.poll() is not None:
                self._fail(f"influxd exited with code {self.proc.returncode}", log_offset)
            # Our own log line proves the port is ours before any answer on it is trusted.
            if self._bound(log_offset) and self._ping():
                return
            if time.monotonic() > deadline:
                self._fail(f"influxd did not answer /ping on port {self.port} within {self.start_timeout_s:g} s", log_offset)
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop gracefully (SIGTERM, which lets influxd close its WAL), wait for the process, kill it if it hangs."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def restart(self) -> None:
        """Stop and start again on the same ports with the same directories (the data survives)."""
        self.stop()
        self.start()

    def log_tail(self, chars: int = 3000) -> str:
        """The end of influxd's log."""
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def _bound(self, log_offset: int) -> bool:
        with self.log.open("rb") as f:
            f.seek(log_offset)
            text = f.read().decode(errors="replace")
        return "Listening on HTTP" in text and f"127.0.0.1:{self.port}" in text

    def _ping(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=1.0) as resp:
                return int(resp.status) == 204
        except (OSError, urllib.error.URLError):
            return False

    def _fail(self, what: str, log_offset: int) -> None:
        self.stop()
        with self.log.open("rb") as f:
            f.seek(log_offset)
            tail = f.read().decode(errors="replace")[-3000:]
        raise RuntimeError(f"{what}; log {self.log}:\n{tail}")

    def __enter__(self) -> InfluxServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
