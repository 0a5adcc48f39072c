"""offset_for_timestamp: time index + exact record lookup."""

from __future__ import annotations

from storage_helpers import append_batch, payload_of

from raykafka.storage import ATTR_LOG_APPEND_TIME, LogConfig, PartitionLog


def brute_force(batches: list[list[int]], start: int, t: int) -> int | None:
    offset = 0
    for timestamps in batches:
        for ts in timestamps:
            if offset >= start and ts >= t:
                return offset
            offset += 1
    return None


def test_offset_for_timestamp_matches_brute_force(tmp_path):
    # non-monotonic timestamps within and across batches, several segments, dense and sparse index
    batches = [[5, 3, 9], [2], [20, 15, 25, 11], [12], [30, 1], [8, 8], [40], [35, 45, 41]]
    for interval in (1, 10_000):
        log = PartitionLog(
            tmp_path / f"p{interval}", LogConfig(segment_bytes=2500, index_interval_bytes=interval)
        )
        for ts in batches:
            append_batch(log, [b"v"] * len(ts), ts)
        assert len(log.segment_base_offsets) > 2
        for t in range(0, 50):
            assert log.offset_for_timestamp(t) == brute_force(batches, 0, t), t
        log.delete_records(4)  # inside the batch [20, 15, 25, 11]
        for t in range(0, 50):
            assert log.offset_for_timestamp(t) == brute_force(batches, 4, t), t
        log.close()


def test_log_append_time_batches_use_max_timestamp(tmp_path):
    log = PartitionLog(tmp_path / "p")
    log.append(payload_of(64, 0), record_count=5, first_timestamp_ms=100, max_timestamp_ms=100)
    log.append(
        payload_of(64, 1),  # not an Arrow payload: LogAppendTime must not need decoding
        record_count=5,
        first_timestamp_ms=200,
        max_timestamp_ms=200,
        attributes=ATTR_LOG_APPEND_TIME,
    )
    assert log.offset_for_timestamp(150) == 5
    assert log.offset_for_timestamp(200) == 5
    assert log.offset_for_timestamp(201) is None
    log.delete_records(7)
    assert log.offset_for_timestamp(150) == 7
    log.close()


def test_empty_log_has_no_timestamp(tmp_path):
    log = PartitionLog(tmp_path / "p")
    assert log.offset_for_timestamp(0) is None
    log.close()
