"""A real Mosquitto for the integration tests: started from the shipped configuration on a free loopback port.

Never a broker that happens to run on the machine: each test gets its own process, port and persistence
directory, and stops it afterwards.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SHIPPED_CONF = Path(__file__).resolve().parents[2] / "connectors" / "mosquitto" / "mosquitto.conf"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port`` now."""
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class MosquittoServer:
    """One mosquitto process with the shipped configuration, bound to 127.0.0.1 on its own port."""

    def __init__(self, workdir: Path, extra: str = "") -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise RuntimeError("mosquitto is not installed: `bash tests/run.sh` installs the Debian package")
        self.binary = binary
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.conf = self.dir / "mosquitto.conf"
        self.log = self.dir / "mosquitto.log"
        lines = []
        for raw in SHIPPED_CONF.read_text().splitlines():
            key = raw.split(" ", 1)[0]
            if key == "listener":
                raw = f"listener {self.port} 127.0.0.1"
            elif key == "persistence_location":
                raw = f"persistence_location {self.dir}/"
            lines.append(raw)
        # Run as the current user (root in CI) so that files written by the fixture stay readable.
        lines += ["user root", f"log_dest file {self.log}", "log_type error", "log_type warning", extra]
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """mqtt://127.0.0.1:PORT"""
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the broker and wait until it accepts connections."""
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout_s
        while not listening(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.proc.stderr.read().decode() if self.proc.stderr and self.proc.poll() is not None else ""
                tail = self.log.read_text()[-2000:] if self.log.exists() else ""
                self.stop()
                raise RuntimeError(f"mosquitto did not start on port {self.port}: {err} {tail}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop gracefully (SIGTERM: mosquitto saves its persistent sessions), then wait for the port to close."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def restart(self) -> None:
        """Stop and start again on the same port with the same persistence directory."""
        self.stop()
        self.start()

    def __enter__(self) -> MosquittoServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
