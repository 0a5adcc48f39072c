"""A disk that fails (EIO on fsync or write, injected under the storage engine): the log fails
for good and says so; a failed fsync is never retried into a false success. No Ray."""

from __future__ import annotations

import errno

import pytest
from storage_helpers import payload_of

from raykafka.storage import LogConfig, LogDirFailed, PartitionLog, faults


@pytest.fixture(autouse=True)
def no_faults_left():
    yield
    faults.clear()


def append(log: PartitionLog, i: int) -> int:
    return log.append(payload_of(64, i), record_count=1, first_timestamp_ms=i, max_timestamp_ms=i)


def test_a_failed_fsync_fails_the_log_for_good(tmp_path):
    log = PartitionLog(tmp_path / "p", LogConfig(flush_messages=1))
    assert append(log, 0) == 0
    log.flush()
    assert log.flushed_offset == 1
    faults.inject("fsync", tmp_path / "p", errno.EIO)
    assert append(log, 1) == 1
    with pytest.raises(LogDirFailed, match="disk failed"):
        log.flush()
    fsyncs = log.fsync_count
    faults.clear()  # "the disk answers again": a retried fsync could now claim success
    with pytest.raises(LogDirFailed):
        log.flush()
    assert log.fsync_count == fsyncs and log.flushed_offset == 1  # no retry, no false claim
    for call in (lambda: append(log, 2), lambda: log.read(0, 1 << 20), lambda: log.delete_records(1)):
        with pytest.raises(LogDirFailed):
            call()
    assert isinstance(log.failure, LogDirFailed)
    log.close()  # lets go of the files without trying to flush
    reopened = PartitionLog(tmp_path / "p")  # a new process on a healthy disk: what is there is read
    assert reopened.log_end_offset == 2
    reopened.close()


def test_a_failed_write_fails_the_log_and_leaves_no_partial_frame(tmp_path):
    log = PartitionLog(tmp_path / "p")
    assert append(log, 0) == 0
    faults.inject("write", tmp_path / "p", errno.EIO)
    with pytest.raises(LogDirFailed):
        append(log, 1)
    faults.clear()
    with pytest.raises(LogDirFailed):
        append(log, 1)
    log.close()
    reopened = PartitionLog(tmp_path / "p")
    assert reopened.log_end_offset == 1 and reopened.recovery_truncated_bytes == 0
    reopened.close()


# -- a read-only disk (EROFS): the same as a failing one ------------------------------------------


def test_a_read_only_disk_fails_the_log_on_write(tmp_path):
    log = PartitionLog(tmp_path / "p")
    assert append(log, 0) == 0
    faults.inject("write", tmp_path / "p", errno.EROFS)
    with pytest.raises(LogDirFailed, match="errno 30"):
        append(log, 1)
    faults.clear()
    with pytest.raises(LogDirFailed):
        append(log, 1)
    log.close()
    reopened = PartitionLog(tmp_path / "p")
    assert reopened.log_end_offset == 1
    reopened.close()


def test_a_read_only_disk_fails_the_log_when_a_roll_opens_a_file(tmp_path):
    log = PartitionLog(tmp_path / "p", LogConfig(segment_bytes=200))
    assert append(log, 0) == 0
    faults.inject("open", tmp_path / "p", errno.EROFS)
    with pytest.raises(LogDirFailed, match="errno 30"):
        append(log, 1)  # rolls first: the index files and the new segment cannot be created
    faults.clear()
    with pytest.raises(LogDirFailed):
        append(log, 1)
    log.close()
    reopened = PartitionLog(tmp_path / "p", LogConfig(segment_bytes=200))
    assert reopened.log_end_offset == 1
    reopened.close()


def test_a_read_only_disk_seen_by_the_recovery_point_thread_fails_the_log(tmp_path):
    log = PartitionLog(tmp_path / "p", LogConfig(segment_bytes=200))
    faults.inject("open", tmp_path / "p" / "recovery-point.checkpoint", errno.EROFS)
    append(log, 0)
    append(log, 1)  # rolls: the background thread fsyncs segment 0, then cannot checkpoint
    log._recovery._thread.join()  # it stops at its first failure
    with pytest.raises(LogDirFailed, match="errno 30"):
        append(log, 2)
    assert isinstance(log.failure, LogDirFailed)
    log.close()


def test_closing_on_a_read_only_disk_raises_log_dir_failed_and_lets_go_of_the_files(tmp_path):
    log = PartitionLog(tmp_path / "p")
    append(log, 0)
    faults.inject("open", tmp_path / "p", errno.EROFS)
    with pytest.raises(LogDirFailed, match="errno 30"):
        log.close()  # the recovery point and the clean-shutdown marker cannot be written
    assert log._segments == []
    log.close()  # closed now: a second close does nothing
    faults.clear()
    reopened = PartitionLog(tmp_path / "p")
    assert reopened.log_end_offset == 1 and reopened.recovery_scanned_segments == 1  # not clean
    reopened.close()
