"""The local spool: fsynced appends, rotation that never overwrites, torn tails, orphan claims."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.errors import SpoolError
from shared.spool import Spool, read_records


def _replay_all(spool: Spool) -> list[bytes]:
    out: list[bytes] = []
    while (path := spool.claim()) is not None:
        out += list(read_records(path))
        path.unlink()
    return out


def test_records_survive_rotation_and_repeated_failed_replays(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([b"one", b"two"])
    spool.rotate()
    claimed = spool.claim()
    assert claimed is not None
    spool.release(claimed)  # replay failed: given back
    spool.append([b"three"])
    spool.rotate()  # a second ready file of the same process must not replace the first
    assert sorted(_replay_all(spool)) == [b"one", b"three", b"two"]
    assert list(tmp_path.iterdir()) == []


def test_a_torn_tail_is_ignored_and_whole_records_are_kept(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([b"kept-1", b"kept-2"])
    spool.rotate()
    (ready,) = tmp_path.iterdir()
    with ready.open("ab") as f:
        f.write(b"\x00\x00\x00\x10\x00\x00")  # a header cut short by a crash
    assert list(read_records(ready)) == [b"kept-1", b"kept-2"]
    with ready.open("ab") as f:
        f.write(b"\x00\x00\x00\x05" + b"\x00\x00\x00\x00" + b"abcde")  # whole length, wrong CRC
    assert list(read_records(ready)) == [b"kept-1", b"kept-2"]


def test_the_active_file_of_a_dead_process_is_claimed(tmp_path: Path) -> None:
    script = f"from shared.spool import Spool; Spool({str(tmp_path)!r}).append([b'orphan'])"
    subprocess.run([sys.executable, "-c", script], check=True, cwd=Path(__file__).parents[2])
    (active,) = tmp_path.iterdir()
    assert active.suffix == ".active"
    assert _replay_all(Spool(tmp_path)) == [b"orphan"]


def test_a_live_process_keeps_its_active_file(tmp_path: Path) -> None:
    mine = Spool(tmp_path)
    mine.append([b"still being written"])
    assert Spool(tmp_path).claim() is None
    mine.close()


def test_an_unwritable_spool_raises_and_leaves_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(SpoolError):
        Spool(blocker / "spool").append([b"x"])
    assert os.listdir(tmp_path) == ["file"]
