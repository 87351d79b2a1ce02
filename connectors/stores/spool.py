"""A durable FIFO of write batches on local disk: where InfluxDB writes wait while the server is down.

Batches are appended to segment files (``<seq>.seg``) and fsynced before :meth:`Spool.append` returns, so a batch
in the spool survives a crash of the process and of the machine. They are read back oldest first
(:meth:`Spool.peek`) and forgotten once the server took them (:meth:`Spool.commit`): a segment is deleted when
all of its batches are committed, and a small ``cursor`` file remembers the position within the oldest one.
Memory use is bounded by one batch; the disk by ``max_bytes``.

A record is a header (magic, payload length, CRC-32, point count, timestamp precision) and the payload (the gzip
body that is sent as is). A torn record at the end of a segment (a crash during an append, which therefore was
never acknowledged) is cut off when the spool is opened; its bytes are kept in ``corrupt/`` for inspection.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, NamedTuple

from connectors.stores.base import StoreError

__all__ = ["Spool", "SpoolRecord"]

log = logging.getLogger("gigatwin.stores.spool")

_MAGIC = b"GTS1"
_HEADER = struct.Struct("<4sIIIB")  # magic, payload length, crc32 of the payload, points, precision code
_PRECISIONS = ("ms", "ns")


class SpoolRecord(NamedTuple):
    """One spooled batch: where it lies (segment number, byte range), its precision, point count and body."""

    segment: int
    offset: int
    end: int
    precision: str
    points: int
    body: bytes


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """The batches waiting for the server, in the folder ``directory`` (created if missing), thread-safe.

    One process at a time: the folder is locked while the spool is open (StoreError if another process holds it).
    """

    def __init__(self, directory: Path, *, segment_bytes: int = 16 << 20, max_bytes: int | None = 1 << 30) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._counts: dict[int, int] = {}  # pending records per segment, oldest segment first
        self._bytes = 0
        self._active: BinaryIO | None = None
        self._active_seq = -1
        self._reader: tuple[int, BinaryIO] | None = None
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._lockfile = (directory / "lock").open("a")
        except OSError as exc:
            raise StoreError(f"spool {directory}: cannot open: {exc}") from exc
        try:
            fcntl.flock(self._lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._lockfile.close()
            raise StoreError(f"spool {directory}: in use by another process ({exc})") from exc
        self._cursor = self._read_cursor()
        try:
            self._recover()
        except OSError as exc:
            self.close()
            raise StoreError(f"spool {directory}: cannot read its segments: {exc}") from exc

    # -- state ----------------------------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Batches waiting to be replayed."""
        with self._lock:
            return sum(self._counts.values())

    @property
    def pending_bytes(self) -> int:
        """Bytes of the batches waiting to be replayed."""
        with self._lock:
            return self._bytes

    def segments(self) -> list[Path]:
        """The segment files on disk, oldest first."""
        return sorted(self.directory.glob("*.seg"))

    # -- writing --------------------------------------------------------------------------------------------
    def append(self, batches: Sequence[tuple[bytes, int]], precision: str) -> None:
        """Append ``(body, points)`` batches and fsync them; StoreError if the disk refuses or the spool is full."""
        code = _PRECISIONS.index(precision)
        data = b"".join(_HEADER.pack(_MAGIC, len(body), zlib.crc32(body), points, code) + body for body, points in batches)
        with self._lock:
            if self.max_bytes is not None and self._bytes + len(data) > self.max_bytes:
                raise StoreError(
                    f"spool {self.directory}: full ({self._bytes} bytes waiting, max_bytes {self.max_bytes}); "
                    "the server has been unreachable for too long"
                )
            f = self._writable(len(data))
            start = f.tell()
            try:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            except OSError as exc:
                self._truncate_after_failure(f, start)
                raise StoreError(f"spool {self.directory}: cannot append: {exc}") from exc
            self._counts[self._active_seq] = self._counts.get(self._active_seq, 0) + len(batches)
            self._bytes += len(data)

    # -- reading --------------------------------------------------------------------------------------------
    def peek(self) -> SpoolRecord | None:
        """The oldest batch not yet committed, or None. A batch whose checksum fails is set aside and skipped."""
        with self._lock:
            while self._counts:
                seq = next(iter(self._counts))
                if self._counts[seq] == 0:
                    return None  # only the active segment can be empty and still listed
                offset = self._cursor[1] if self._cursor[0] == seq else 0
                f = self._open_reader(seq)
                f.seek(offset)
                header = f.read(_HEADER.size)
                magic, length, crc, points, code = _HEADER.unpack(header)
                body = f.read(length)
                record = SpoolRecord(seq, offset, offset + _HEADER.size + length, _PRECISIONS[code], points, body)
                if magic == _MAGIC and zlib.crc32(body) == crc:
                    return record
                log.error("spool %s: batch at %s:%d fails its checksum; set aside in corrupt/", self.directory, seq, offset)
                self._set_aside(header + body, f"{seq}-{offset}")
                self._advance(record)
            return None

    def commit(self, record: SpoolRecord) -> None:
        """Forget ``record`` (the oldest batch): the server has it."""
        with self._lock:
            self._advance(record)

    def reject(self, record: SpoolRecord, reason: str) -> None:
        """Move a batch the server refuses for good to ``rejected/`` with the reason, and go on with the next."""
        with self._lock:
            name = f"{int(time.time() * 1000)}-{record.segment}-{record.offset}"
            self._set_aside(record.body, name, folder="rejected", suffix=".lp.gz")
            (self.directory / "rejected" / f"{name}.reason.txt").write_text(reason + "\n")
            self._advance(record)

    def close(self) -> None:
        """Close the files and release the folder's lock."""
        with self._lock:
            for f in (self._active, self._reader[1] if self._reader else None):
                if f is not None:
                    f.close()
            self._active, self._reader = None, None
            if not self._lockfile.closed:
                self._lockfile.close()

    # -- internals ------------------------------------------------------------------------------------------
    def _segment(self, seq: int) -> Path:
        return self.directory / f"{seq:016d}.seg"

    def _read_cursor(self) -> tuple[int, int]:
        try:
            seq, offset = (self.directory / "cursor").read_text().split()
            return int(seq), int(offset)
        except (OSError, ValueError):
            return -1, 0

    def _write_cursor(self, durable: bool) -> None:
        tmp = self.directory / "cursor.tmp"
        tmp.write_text(f"{self._cursor[0]} {self._cursor[1]}\n")
        os.replace(tmp, self.directory / "cursor")
        if durable:
            _fsync_dir(self.directory)

    def _recover(self) -> None:
        seqs = sorted(int(p.stem) for p in self.directory.glob("*.seg") if p.stem.isdigit())
        cursor_seq, cursor_offset = self._cursor
        for seq in seqs:
            path = self._segment(seq)
            if seq < cursor_seq:
                path.unlink()  # fully replayed before a crash that came before its deletion
                continue
            start = cursor_offset if seq == cursor_seq else 0
            count, nbytes = self._scan(path, start, seq)
            if count:
                self._counts[seq] = count
                self._bytes += nbytes
            else:
                path.unlink()
        self._next_seq = max([*seqs, cursor_seq]) + 1
        if self._counts:
            log.info("spool %s: %d batches from before waiting to be replayed", self.directory, sum(self._counts.values()))

    def _scan(self, path: Path, start: int, seq: int) -> tuple[int, int]:
        """Count the whole records from ``start``; cut a torn tail off (keeping its bytes in corrupt/)."""
        size = path.stat().st_size
        count, pos = 0, start
        with path.open("rb") as f:
            while pos < size:
                f.seek(pos)
                header = f.read(_HEADER.size)
                if len(header) < _HEADER.size:
                    break
                magic, length, _crc, _points, code = _HEADER.unpack(header)
                if magic != _MAGIC or code >= len(_PRECISIONS) or pos + _HEADER.size + length > size:
                    break
                count += 1
                pos += _HEADER.size + length
        if pos < size:
            log.warning(
                "spool %s: segment %d has %d unreadable bytes at its end (an interrupted append); cut off",
                self.directory,
                seq,
                size - pos,
            )
            with path.open("rb") as f:
                f.seek(pos)
                self._set_aside(f.read(), f"{seq}-{pos}")
            with path.open("r+b") as f:
                f.truncate(pos)
                os.fsync(f.fileno())
        return count, pos - start

    def _writable(self, incoming: int) -> BinaryIO:
        f = self._active
        if f is not None and f.tell() > 0 and f.tell() + incoming > self.segment_bytes:
            f.close()  # full: the next append starts a new segment; this one stays until replayed
            f = self._active = None
        if f is None:
            seq = self._next_seq
            self._next_seq += 1
            f = self._active = self._segment(seq).open("ab")
            self._active_seq = seq
            self._counts.setdefault(seq, 0)
            _fsync_dir(self.directory)  # the new file's name must survive a crash as well as its contents
        return f

    def _truncate_after_failure(self, f: BinaryIO, size: int) -> None:
        try:
            f.truncate(size)
            f.seek(size)
        except OSError:
            log.exception("spool %s: cannot cut a failed append off; it will be cut when reopened", self.directory)

    def _open_reader(self, seq: int) -> BinaryIO:
        if self._reader is not None and self._reader[0] == seq:
            return self._reader[1]
        if self._reader is not None:
            self._reader[1].close()
        f = self._segment(seq).open("rb")
        self._reader = (seq, f)
        return f

    def _advance(self, record: SpoolRecord) -> None:
        seq = record.segment
        current = self._cursor[1] if self._cursor[0] == seq else 0
        if seq != next(iter(self._counts), None) or record.offset != current:
            return  # not the oldest batch (already committed): nothing to do
        self._counts[seq] -= 1
        self._bytes -= record.end - record.offset
        self._cursor = (seq, record.end)
        if self._counts[seq] == 0:
            # The oldest segment is done. If it is the one being appended to, the spool is now empty: close it too,
            # the next append starts a new segment.
            if seq == self._active_seq and self._active is not None:
                self._active.close()
                self._active = None
            if self._reader is not None and self._reader[0] == seq:
                self._reader[1].close()
                self._reader = None
            del self._counts[seq]
            self._segment(seq).unlink()
        # Made durable when the spool runs empty: from then on writes go straight to the server, and a stale cursor
        # after a power cut would replay old batches over newer points. Before that, a replay twice is harmless.
        self._write_cursor(durable=not self._counts)

    def _set_aside(self, data: bytes, name: str, folder: str = "corrupt", suffix: str = ".bin") -> None:
        target = self.directory / folder
        target.mkdir(exist_ok=True)
        (target / f"{name}{suffix}").write_bytes(data)
