"""A full disk (a real tmpfs): appends fail with a typed, retriable StorageFull, nothing is
left half-written, appends resume once space is freed, and retention can free it. No Ray.
Before: after ENOSPC every later append failed with an internal AssertionError ("segment file
position drifted before write") until the process restarted."""

from __future__ import annotations

import pytest
from storage_helpers import payload_of

from raykafka.storage import LogConfig, PartitionLog, StorageFull
from tests.tmpfs import fill_with_ballast, mounted_tmpfs


def append(log: PartitionLog, i: int, size: int = 4000) -> int:
    return log.append(payload_of(size, i), record_count=1, first_timestamp_ms=i, max_timestamp_ms=i)


def read_values(log: PartitionLog) -> list[bytes]:
    from raykafka.storage import iter_frames

    out = []
    offset = log.log_start_offset
    while offset < log.log_end_offset:
        for buf in log.read(offset, 1 << 20):
            for header, payload in iter_frames(memoryview(buf)):
                out.append(bytes(payload))
                offset = header.next_offset
    return out


def test_full_disk_is_typed_cut_back_and_appends_resume(tmp_path):
    with mounted_tmpfs(tmp_path / "disk", 256 * 1024) as disk:
        log = PartitionLog(disk / "p", LogConfig(segment_bytes=64 * 1024))
        appended = []
        with pytest.raises(StorageFull, match="no space left"):
            for i in range(1000):
                assert append(log, i) == i
                appended.append(payload_of(4000, i))
        end = log.log_end_offset
        assert end == len(appended) > 10
        for _ in range(3):  # still full: the same typed error, nothing drifts
            with pytest.raises(StorageFull):
                append(log, 999)
        assert log.log_end_offset == end
        assert read_values(log) == appended  # nothing acknowledged lost, nothing half-written

        # Free space (as an operator would): appends resume in the same process.
        log.delete_records(log.segment_base_offsets[2])
        kept = appended[log.log_start_offset :]
        assert append(log, 1000) == end
        assert read_values(log) == [*kept, payload_of(4000, 1000)]
        log.close()
        reopened = PartitionLog(disk / "p", LogConfig(segment_bytes=64 * 1024))
        assert reopened.recovery_truncated_bytes == 0
        assert read_values(reopened) == [*kept, payload_of(4000, 1000)]
        reopened.close()


def test_retention_frees_a_full_disk(tmp_path):
    with mounted_tmpfs(tmp_path / "disk", 256 * 1024) as disk:
        config = LogConfig(segment_bytes=32 * 1024, retention_bytes=64 * 1024)
        log = PartitionLog(disk / "p", config)
        for i in range(30):
            append(log, i)
        ballast = fill_with_ballast(disk)  # someone else filled the disk to the last byte
        with pytest.raises(StorageFull):
            append(log, 30)
        assert log.apply_retention() > 0  # it must not need to write first
        start = log.log_start_offset
        assert start > 0
        assert append(log, 30) == 30
        assert read_values(log) == [payload_of(4000, i) for i in range(start, 31)]
        ballast.unlink()
        log.close()
        reopened = PartitionLog(disk / "p", config)
        assert reopened.log_start_offset == start and reopened.log_end_offset == 31
        reopened.close()
