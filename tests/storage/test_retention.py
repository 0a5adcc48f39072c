"""Log start offset: delete_records, retention by time and size; truncate_to."""

from __future__ import annotations

import os

import pytest
from storage_helpers import frames, payload_of, read_all

from raykafka.storage import HEADER_SIZE, LogConfig, LogOffsetOutOfRange, PartitionLog
from raykafka.storage.checkpoint import RECOVERY_POINT_CHECKPOINT

FRAME = HEADER_SIZE + 64


def fill(log: PartitionLog, n: int, ts_of=lambda i: i) -> None:
    for i in range(n):
        log.append(payload_of(64, i), record_count=1, first_timestamp_ms=ts_of(i), max_timestamp_ms=ts_of(i))


def test_delete_records_moves_start_and_survives_reopen(tmp_path):
    cfg = LogConfig(segment_bytes=3 * FRAME)
    log = PartitionLog(tmp_path / "p", cfg)
    fill(log, 10)
    assert log.segment_base_offsets == [0, 3, 6, 9]
    assert log.delete_records(4) == 4
    assert log.segment_base_offsets == [3, 6, 9]  # [0, 3) deleted, [3, 6) still holds offset 4
    assert not os.path.exists(tmp_path / "p" / "00000000000000000000.log")
    assert log.delete_records(2) == 4  # never back
    assert frames(log.read(4, 1))[0][0] == 4
    log.close()
    log = PartitionLog(tmp_path / "p", cfg)
    assert (log.log_start_offset, log.log_end_offset) == (4, 10)
    assert [f[0] for f in read_all(log)] == list(range(4, 10))
    # deleting everything rolls so that the old active segment can go too
    log.delete_records(10)
    assert log.segment_base_offsets == [10]
    assert log.size_bytes == 0 and log.read(10, 100) == []
    log.close()
    log = PartitionLog(tmp_path / "p", cfg)
    assert (log.log_start_offset, log.log_end_offset, log.segment_base_offsets) == (10, 10, [10])
    assert log.append(payload_of(8, 0), record_count=1, first_timestamp_ms=0, max_timestamp_ms=0) == 10
    log.close()


def test_retention_by_time(tmp_path):
    now = [1000]
    cfg = LogConfig(segment_bytes=2 * FRAME, retention_ms=100)
    log = PartitionLog(tmp_path / "p", cfg, clock_ms=lambda: now[0])
    fill(log, 7, ts_of=lambda i: 1000 + 100 * i)  # segments [0,1] [2,3] [4,5] [6]; max ts 1100, 1300, 1500
    assert log.segment_base_offsets == [0, 2, 4, 6]
    now[0] = 1200
    assert log.apply_retention() == 0  # 1200 - 1100 is not > 100
    now[0] = 1401
    assert log.apply_retention() == 2
    assert (log.log_start_offset, log.segment_base_offsets) == (4, [4, 6])
    now[0] = 10_000
    assert log.apply_retention() == 1  # never the active segment
    assert (log.log_start_offset, log.segment_base_offsets) == (6, [6])
    log.close()
    assert PartitionLog(tmp_path / "p", cfg).log_start_offset == 6


def test_retention_by_bytes(tmp_path):
    cfg = LogConfig(segment_bytes=2 * FRAME, retention_ms=-1, retention_bytes=3 * FRAME)
    log = PartitionLog(tmp_path / "p", cfg)
    fill(log, 7)  # 4 segments of 2,2,2,1 frames
    assert log.apply_retention() == 2  # 7 -> 5 -> 3 frames; 3 - 2 < 3 stops
    assert log.size_bytes == 3 * FRAME and log.log_start_offset == 4
    assert log.apply_retention() == 0
    log.update_config(LogConfig(segment_bytes=2 * FRAME, retention_ms=-1, retention_bytes=0))
    assert log.apply_retention() == 1
    assert log.segment_base_offsets == [6]
    log.close()


def test_retention_never_passes_the_high_watermark(tmp_path):
    """Records not yet on every in-sync replica stay, however old: a segment holding any offset at
    or past ``max_offset`` (the high watermark) is kept, and so is everything after it."""
    cfg = LogConfig(segment_bytes=2 * FRAME, retention_ms=0)
    now = [10_000]
    log = PartitionLog(tmp_path / "p", cfg, clock_ms=lambda: now[0])
    fill(log, 7)  # segments [0,1] [2,3] [4,5] [6], all expired
    assert log.apply_retention(max_offset=3) == 1  # [2,3] holds offset 3: not yet
    assert (log.log_start_offset, log.segment_base_offsets) == (2, [2, 4, 6])
    assert log.apply_retention(max_offset=4) == 1
    assert log.apply_retention(max_offset=4) == 0
    assert [f[0] for f in read_all(log)] == [4, 5, 6]
    assert log.apply_retention(max_offset=7) == 1
    assert log.log_start_offset == 6
    log.close()


def test_retention_forever(tmp_path):
    now = [0]
    log = PartitionLog(
        tmp_path / "p", LogConfig(segment_bytes=FRAME, retention_ms=-1), clock_ms=lambda: now[0]
    )
    fill(log, 4)
    now[0] = 1 << 50
    assert log.apply_retention() == 0
    log.close()


@pytest.mark.parametrize("reopen", [False, True])
def test_truncate_to(tmp_path, reopen):
    cfg = LogConfig(segment_bytes=4 * FRAME, index_interval_bytes=1)
    log = PartitionLog(tmp_path / "p", cfg)
    for i in range(10):  # batches of 2: offsets 0-1, 2-3, ... 18-19; segments of 4 batches
        log.append(payload_of(64, i), record_count=2, first_timestamp_ms=i, max_timestamp_ms=i, attributes=1)
    assert log.segment_base_offsets == [0, 8, 16]
    log.truncate_to(11)  # inside batch 10-11: the whole batch goes
    assert (log.log_end_offset, log.segment_base_offsets) == (10, [0, 8])
    assert log.size_bytes == 5 * FRAME
    files = sorted(n for n in os.listdir(tmp_path / "p") if n != RECOVERY_POINT_CHECKPOINT)
    assert files == [
        "00000000000000000000.index",
        "00000000000000000000.log",
        "00000000000000000000.timeindex",
        "00000000000000000008.log",
        "00000000000000000008.snapshot",  # producer state (none here) at the roll to 8; 16's went
    ]
    assert log.offset_for_timestamp(5) is None and log.offset_for_timestamp(4) == 8
    if reopen:
        log.close()
        log = PartitionLog(tmp_path / "p", cfg)
    assert [f[2] for f in read_all(log)] == [payload_of(64, i) for i in range(5)]
    assert log.append(payload_of(64, 99), record_count=1, first_timestamp_ms=0, max_timestamp_ms=0) == 10
    log.truncate_to(8)
    assert (log.log_end_offset, log.segment_base_offsets) == (8, [0, 8])
    log.truncate_to(100)  # beyond the end: nothing to do
    log.delete_records(4)
    with pytest.raises(LogOffsetOutOfRange):
        log.truncate_to(2)
    log.truncate_to(4)
    assert log.log_end_offset == 4 and log.segment_base_offsets == [0]
    log.close()


def test_truncate_with_live_reader_buffers_keeps_them_valid(tmp_path):
    log = PartitionLog(tmp_path / "p")
    fill(log, 6)
    held = log.read(0, 1 << 20)  # zero-copy slices of the mapped file
    before = bytes(held[0])
    inode = os.stat(tmp_path / "p" / "00000000000000000000.log").st_ino
    log.truncate_to(2)  # ftruncate under live slices would SIGBUS: copy instead
    assert os.stat(tmp_path / "p" / "00000000000000000000.log").st_ino != inode  # copied, not cut
    assert bytes(held[0]) == before
    assert log.log_end_offset == 2
    assert [f[2] for f in read_all(log)] == [payload_of(64, 0), payload_of(64, 1)]
    del held
    log.truncate_to(1)  # nobody holds slices now: cut in place
    assert os.stat(tmp_path / "p" / "00000000000000000000.log").st_size == FRAME
    log.close()
    assert PartitionLog(tmp_path / "p").log_end_offset == 1
