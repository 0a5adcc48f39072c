"""Simulated power loss (raykafka/storage/faults.py): what the layer keeps and takes away. No Ray."""

from __future__ import annotations

import os

import pytest

from raykafka.storage import faults
from raykafka.storage.checkpoint import atomic_write, fsync_dir
from raykafka.storage.index import SegmentIndex


@pytest.fixture(autouse=True)
def no_faults_left():
    yield
    faults.clear()


def write_file(path, data: bytes, *, fsync: bool) -> None:
    fd = faults.open_file(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, data)
    if fsync:
        faults.fsync(fd, path)
    os.close(fd)


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


# -- property tests ----------------------------------------------------------------------------
