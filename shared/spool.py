"""A local durable spool: where accepted callbacks go when Redis cannot take them.

Records are appended and fsynced before the gateway answers, so a spooled callback is as
durable as a queued one. Each process appends to its own `<host>-<pid>-<n>.active` file (a new
n for every file, so a rename can never overwrite an older file of the same process); replay
rotates it to `.ready`, and any process may claim a `.ready` file (or the `.active` file of a
dead process on this host) by an atomic rename, so several gateways can share one directory.

Record framing: 4-byte big-endian length, 4-byte CRC32, payload. A torn tail (a crash in the
middle of an append) is detected by the length/CRC and ignored: it was never fsynced, so never
acknowledged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import time
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from shared.errors import SpoolError

logger = logging.getLogger(__name__)

_HEADER = struct.Struct(">II")
_MAX_RECORD = 64 * 1024 * 1024


class Spool:
    """Append-only record files in one directory; methods are blocking (call them off-loop)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._host = socket.gethostname().replace("-", "_")
        self._fd: int | None = None
        self._active: Path | None = None

    def append(self, records: Sequence[bytes]) -> None:
        """Append records and fsync; on failure nothing partial is left behind (SpoolError)."""
        frame = b"".join(_HEADER.pack(len(r), zlib.crc32(r)) + r for r in records)
        try:
            fd = self._open()
            start = os.lseek(fd, 0, os.SEEK_END)
            try:
                os.write(fd, frame)
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)
                raise
        except OSError as e:
            raise SpoolError(f"cannot write spool {self.directory}: {e.strerror}") from e

    def _open(self) -> int:
        if self._fd is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._active = self.directory / f"{self._host}-{os.getpid()}-{time.time_ns()}.active"
            self._fd = os.open(self._active, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
            _fsync_dir(self.directory)
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def rotate(self) -> None:
        """Hand this process's active file over to replay."""
        if self._fd is None or self._active is None:
            return
        self.close()
        with contextlib.suppress(FileNotFoundError):
            os.rename(self._active, self._active.with_suffix(".ready"))
        self._active = None

    def claim(self) -> Path | None:
        """Atomically take one file to replay: a `.ready` one, or a dead process's `.active` one."""
        if not self.directory.is_dir():
            return None
        for path in sorted(self.directory.iterdir()):
            if path.suffix == ".ready" or (path.suffix == ".active" and self._orphaned(path)):
                claimed = path.with_suffix(f".claimed-{os.getpid()}")
                try:
                    os.rename(path, claimed)
                except FileNotFoundError:
                    continue  # another process took it first
                return claimed
        return None

    def _orphaned(self, path: Path) -> bool:
        host, pid, _ = path.stem.rsplit("-", 2) if path.stem.count("-") >= 2 else ("", "", "")
        if host != self._host or not pid.isdigit() or int(pid) == os.getpid():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def release(self, path: Path) -> None:
        """Give a claimed file back for a later attempt."""
        os.rename(path, path.with_suffix(".ready"))

    def pending_bytes(self) -> int:
        if not self.directory.is_dir():
            return 0
        return sum(p.stat().st_size for p in self.directory.iterdir() if p.is_file())


def read_records(path: Path) -> Iterator[bytes]:
    """Every whole record of a spool file; stops quietly at a torn tail."""
    with path.open("rb") as f:
        while True:
            header = f.read(_HEADER.size)
            if len(header) < _HEADER.size:
                return
            length, crc = _HEADER.unpack(header)
            payload = f.read(length) if length <= _MAX_RECORD else b""
            if len(payload) != length or zlib.crc32(payload) != crc:
                logger.warning("spool %s: torn record at the tail ignored (never acknowledged)", path.name)
                return
            yield payload


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
