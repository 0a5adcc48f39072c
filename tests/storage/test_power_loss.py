"""Simulated power loss (raykafka/storage/faults.py): what the layer keeps and takes away, and
what a log keeps through it. No Ray."""

from __future__ import annotations

import os

import pytest
from storage_helpers import frames, payload_of

from raykafka.storage import PartitionLog, faults
from raykafka.storage.checkpoint import atomic_write, fsync_dir
from raykafka.storage.index import SegmentIndex


@pytest.fixture(autouse=True)
def no_faults_left():
    yield
    faults.clear()


def abandon(log: PartitionLog) -> None:
    """Stop the log as a dying process does: its threads stop, its files close, nothing more
    is written (no flush, no checkpoint, no clean-shutdown marker)."""
    log.destroy(remove_files=False)


def write_file(path, data: bytes, *, fsync: bool) -> None:
    fd = faults.open_file(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, data)
    if fsync:
        faults.fsync(fd, path)
    os.close(fd)


def append(log: PartitionLog, size: int, seed: int) -> int:
    return log.append(payload_of(size, seed), record_count=1, first_timestamp_ms=seed, max_timestamp_ms=seed)


# -- the layer ---------------------------------------------------------------------------------


def test_unsynced_bytes_and_entries_are_lost(tmp_path):
    faults.track_power_loss()
    write_file(tmp_path / "a", b"x" * 100, fsync=True)
    fsync_dir(str(tmp_path))  # a's name is durable now, with its 100 fsynced bytes
    fd = faults.open_file(tmp_path / "a", os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"y" * 50)  # never fsynced
    os.close(fd)
    write_file(tmp_path / "c", b"w" * 10, fsync=False)
    fsync_dir(str(tmp_path))  # c's name is durable, none of its bytes
    write_file(tmp_path / "b", b"z" * 10, fsync=True)  # fsynced, but its name never was

    lost = faults.simulate_power_loss(tmp_path)

    assert (tmp_path / "a").read_bytes() == b"x" * 100
    assert not (tmp_path / "b").exists()
    assert (tmp_path / "c").read_bytes() == b""
    assert lost == faults.PowerLoss(bytes_cut=50 + 10, entries_undone=1)
    assert faults.simulate_power_loss(tmp_path) == faults.PowerLoss(0, 0)  # what is left is on disk


def test_an_unsynced_rename_is_undone_and_the_replaced_file_comes_back(tmp_path):
    (tmp_path / "old").write_bytes(b"before tracking: on disk")
    faults.track_power_loss()
    index = SegmentIndex(0)
    index.add(0, 0, 5)
    index.write_files(str(tmp_path / "i.index"), str(tmp_path / "i.timeindex"))  # no fsync at all
    atomic_write(str(tmp_path / "old"), b"new")  # fsync, rename, fsync the directory
    write_file(tmp_path / "tmp", b"newer", fsync=True)
    faults.replace(tmp_path / "tmp", tmp_path / "old")  # its directory is never fsynced after

    faults.simulate_power_loss(tmp_path)

    assert (tmp_path / "old").read_bytes() == b"new"
    # The index files were renamed into place before that directory fsync, so their names are
    # durable, but none of their bytes were fsynced.
    assert sorted(os.listdir(tmp_path)) == ["i.index", "i.timeindex", "old"]
    assert (tmp_path / "i.index").read_bytes() == b""


def test_an_unsynced_unlink_is_undone(tmp_path):
    faults.track_power_loss()
    write_file(tmp_path / "kept", b"k" * 64, fsync=True)
    fsync_dir(str(tmp_path))
    faults.unlink(tmp_path / "kept")
    faults.simulate_power_loss(tmp_path)
    assert (tmp_path / "kept").read_bytes() == b"k" * 64


def test_a_cut_file_leaves_a_readers_memory_map_valid(tmp_path):
    faults.track_power_loss()
    log = PartitionLog(tmp_path / "p")
    append(log, 64, 0)
    log.flush()
    append(log, 64, 1)  # not fsynced: cut by the power loss
    held = log.read(0, 1 << 20)  # zero-copy slices of the segment's memory map
    before = frames(held)
    abandon(log)
    assert faults.simulate_power_loss(tmp_path).bytes_cut == 48 + 64
    assert frames(held) == before  # the old pages: no SIGBUS, same bytes
    log = PartitionLog(tmp_path / "p")
    assert frames(log.read(0, 1 << 20)) == before[:1]
    log.close()


def test_a_new_log_directory_survives_a_power_loss(tmp_path):
    """The log's directory entries (tmp_path/a, tmp_path/a/p) must be durable before anything
    in them is: an acknowledged flush is worth nothing if the directory holding it vanishes."""
    faults.track_power_loss()
    log = PartitionLog(tmp_path / "a" / "p")
    append(log, 64, 0)
    log.flush()
    abandon(log)
    faults.simulate_power_loss(tmp_path)
    log = PartitionLog(tmp_path / "a" / "p")
    assert log.log_end_offset == 1
    log.close()


# -- property tests ----------------------------------------------------------------------------
