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
