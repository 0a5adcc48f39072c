"""Recovery like Kafka's: rolls fsync and move the recovery point, a clean close scans nothing
on open, an unclean open scans what lies past the recovery point, and a segment that lost its
tail ends the log there instead of leaving a hole. No Ray."""

from __future__ import annotations

import os
import time

from storage_helpers import payload_of

from raykafka.storage import HEADER_SIZE, CorruptBatch, LogConfig, PartitionLog
from raykafka.storage.checkpoint import RECOVERY_POINT_CHECKPOINT, read_offset_checkpoint
from raykafka.storage.log import CLEAN_SHUTDOWN_FILE

#: 5 batches of 1 record and 200 payload bytes (FRAME bytes each) per segment.
FRAME = HEADER_SIZE + 200
CONFIG = LogConfig(segment_bytes=5 * FRAME + 60)


def fill(directory, batches: int, config: LogConfig = CONFIG) -> PartitionLog:
    log = PartitionLog(directory, config)
    for i in range(batches):
        assert log.append(payload_of(200, i), record_count=1, first_timestamp_ms=i, max_timestamp_ms=i) == i
    return log


def crash(log: PartitionLog) -> None:
    """Leave the log as a killed process does: files as they are, no close, no marker."""
    log._recovery.close()
    for seg in log._segments:
        seg.close()


def wait_for_recovery_point(directory, offset: int) -> None:
    """Until the checkpointed recovery point is at least ``offset``."""
    deadline = time.monotonic() + 10
    while (read_offset_checkpoint(str(directory), RECOVERY_POINT_CHECKPOINT) or -1) < offset:
        assert time.monotonic() < deadline, read_offset_checkpoint(str(directory), RECOVERY_POINT_CHECKPOINT)
        time.sleep(0.01)


def test_a_roll_fsyncs_the_sealed_segment_and_moves_the_recovery_point(tmp_path):
    log = fill(tmp_path, 12)  # segments at 0, 5, 10
    assert log.segment_base_offsets == [0, 5, 10]
    wait_for_recovery_point(tmp_path, 10)
    sealed = log._segments[:-1]
    assert all(seg.synced_bytes == seg.size_bytes > 0 for seg in sealed)
    log.close()


def test_sealed_segment_that_lost_its_tail_ends_the_log_there(tmp_path):
    """The reproduction: 8 segments of 5 batches, the first segment's last 300 bytes lost
    (a power loss before it reached the disk). Before, the log reopened with end 40 and offset
    4 raised CorruptBatch on every read, forever."""
    log = fill(tmp_path, 40)
    assert len(log.segment_base_offsets) == 8
    crash(log)
    first = tmp_path / f"{0:020d}.log"
    os.truncate(first, first.stat().st_size - 300)
    for name in os.listdir(tmp_path):  # as if no roll had reached the disk either
        if name == RECOVERY_POINT_CHECKPOINT:
            os.unlink(tmp_path / name)

    log = PartitionLog(tmp_path, CONFIG)
    assert log.log_end_offset == 3  # batches 3 and 4 were in the lost tail
    assert log.segment_base_offsets == [0]
    assert log.recovery_lost_segments == 7 and log.recovery_truncated_bytes > 0
    for offset in range(3):
        assert len(log.read(offset, 1 << 20)) == 1  # every offset below the end is readable
    assert log.append(payload_of(200, 99), record_count=1, first_timestamp_ms=0, max_timestamp_ms=0) == 3
    log.close()
    assert sorted(n for n in os.listdir(tmp_path) if n.endswith(".log")) == [f"{0:020d}.log"]


def test_a_hole_below_the_recovery_point_is_cut_too(tmp_path):
    log = fill(tmp_path, 40)
    wait_for_recovery_point(tmp_path, 35)
    crash(log)
    third = tmp_path / f"{10:020d}.log"
    os.truncate(third, third.stat().st_size - 10)  # a torn last frame in a trusted segment
    log = PartitionLog(tmp_path, CONFIG)
    assert log.log_end_offset == 14 and log.segment_base_offsets == [0, 5, 10]
    assert len(log.read(13, 1 << 20)) == 1
    log.close()


def test_clean_close_scans_nothing_unclean_scans_past_the_recovery_point(tmp_path):
    log = fill(tmp_path, 23)
    log.close()
    assert os.path.exists(tmp_path / CLEAN_SHUTDOWN_FILE)
    log = PartitionLog(tmp_path, CONFIG)
    assert not os.path.exists(tmp_path / CLEAN_SHUTDOWN_FILE)  # consumed: a crash now is unclean
    assert log.recovery_scanned_segments == 0 and log.log_end_offset == 23
    assert log.append(payload_of(200, 23), record_count=1, first_timestamp_ms=0, max_timestamp_ms=0) == 23
    wait_for_recovery_point(tmp_path, 20)
    crash(log)
    log = PartitionLog(tmp_path, CONFIG)
    assert log.recovery_scanned_segments == 1  # the active segment only: the rest is below it
    assert log.log_end_offset == 24
    crash(log)
    os.unlink(tmp_path / RECOVERY_POINT_CHECKPOINT)
    log = PartitionLog(tmp_path, CONFIG)
    assert log.recovery_scanned_segments == 5 and log.log_end_offset == 24  # no checkpoint: all
    log.close()


def test_damage_after_a_clean_close_is_still_found(tmp_path):
    log = fill(tmp_path, 8)
    log.close()
    active = tmp_path / f"{5:020d}.log"
    os.truncate(active, active.stat().st_size - 7)
    log = PartitionLog(tmp_path, CONFIG)
    assert log.log_end_offset == 7 and log.recovery_truncated_bytes == FRAME - 7
    log.close()


def test_truncation_lowers_the_recovery_point_first(tmp_path):
    log = fill(tmp_path, 12)
    wait_for_recovery_point(tmp_path, 10)
    log.truncate_to(7)
    assert read_offset_checkpoint(str(tmp_path), RECOVERY_POINT_CHECKPOINT) == 7
    for i in range(7, 9):  # new data at offsets the checkpoint once covered
        log.append(payload_of(200, 100 + i), record_count=1, first_timestamp_ms=0, max_timestamp_ms=0)
    crash(log)
    log = PartitionLog(tmp_path, CONFIG)
    assert log.recovery_scanned_segments >= 1 and log.log_end_offset == 9
    try:
        assert len(log.read(8, 1 << 20)) == 1
    except CorruptBatch as exc:  # pragma: no cover - the failure this test guards against
        raise AssertionError(exc) from exc
    log.close()
