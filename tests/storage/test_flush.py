"""Flush policy and group commit."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from storage_helpers import payload_of, read_all

from raykafka.storage import LogConfig, PartitionLog


def test_flush_due_by_messages_and_time(tmp_path):
    now = [0]
    log = PartitionLog(tmp_path / "p", LogConfig(flush_messages=5, flush_ms=1000), clock_ms=lambda: now[0])
    assert not log.flush_due()
    log.append(payload_of(8, 0), record_count=4, first_timestamp_ms=0, max_timestamp_ms=0)
    assert not log.flush_due()
    log.append(payload_of(8, 1), record_count=1, first_timestamp_ms=0, max_timestamp_ms=0)
    assert log.flush_due()
    log.flush()
    assert log.flushed_offset == 5 and not log.flush_due()
    log.append(payload_of(8, 2), record_count=1, first_timestamp_ms=0, max_timestamp_ms=0)
    now[0] = 999
    assert not log.flush_due()
    now[0] = 1000
    assert log.flush_due()
    log.sync_through(6)
    assert not log.flush_due()
    now[0] = 5000
    assert not log.flush_due()  # nothing pending
    log.close()


def test_never_forced_by_default(tmp_path):
    log = PartitionLog(tmp_path / "p", clock_ms=lambda: 1 << 60)
    count = log.fsync_count
    for i in range(100):
        log.append(payload_of(8, i), record_count=1, first_timestamp_ms=0, max_timestamp_ms=0)
    assert not log.flush_due()
    assert log.fsync_count == count
    log.close()


def test_flush_covers_rolled_segments_and_the_directory(tmp_path):
    log = PartitionLog(tmp_path / "p", LogConfig(segment_bytes=100))
    count = log.fsync_count
    for i in range(3):
        log.append(payload_of(64, i), record_count=1, first_timestamp_ms=0, max_timestamp_ms=0)
    assert len(log.segment_base_offsets) == 3
    log.flush()
    # Every segment file and the directory (rolls fsync sealed segments in the background too,
    # sharing rounds with this flush, so the count lies between one round and one per roll).
    assert all(seg.synced_bytes == seg.size_bytes for seg in log._segments)
    assert not log._dir_dirty
    after = log.fsync_count
    assert 4 <= after - count <= 3 * 4
    log.flush()
    assert log.fsync_count == after  # nothing new: no round at all
    log.close()


def test_group_commit_many_threads_share_fsyncs(tmp_path):
    log = PartitionLog(tmp_path / "p", LogConfig(segment_bytes=64 * 1024))
    start_count = log.fsync_count
    n_appends = 400
    done = threading.Event()
    calls = []

    def waiter(offset: int) -> int:
        log.sync_through(offset)
        assert log.flushed_offset >= offset
        return offset

    with ThreadPoolExecutor(max_workers=16) as pool:
        for i in range(n_appends):  # the owner thread keeps appending (and rolling) meanwhile
            base = log.append(payload_of(1024, i), record_count=1, first_timestamp_ms=0, max_timestamp_ms=0)
            calls.append(pool.submit(waiter, base + 1))
        results = [c.result(timeout=60) for c in calls]
    done.set()
    assert results == list(range(1, n_appends + 1))
    rounds = log.fsync_count - start_count
    assert 0 < rounds < n_appends
    assert log.flushed_offset == n_appends
    assert len(log.segment_base_offsets) > 3
    # everything was fsynced: no segment has unsynced bytes
    assert all(s.synced_bytes == s.size_bytes for s in log._segments)
    assert [f[2] for f in read_all(log)] == [payload_of(1024, i) for i in range(n_appends)]
    log.close()


def test_sync_through_while_rolling_retention_and_truncation(tmp_path):
    log = PartitionLog(
        tmp_path / "p", LogConfig(segment_bytes=4096, retention_ms=-1, retention_bytes=32 * 1024)
    )
    stop = threading.Event()
    errors: list[BaseException] = []

    def flusher() -> None:
        try:
            while not stop.is_set():
                log.sync_through(log.log_end_offset)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=flusher) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(600):
        log.append(payload_of(512, i), record_count=1, first_timestamp_ms=0, max_timestamp_ms=0)
        if i % 50 == 49:
            log.apply_retention()
        if i % 97 == 96:
            log.truncate_to(log.log_end_offset - 3)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    log.flush()
    assert log.flushed_offset == log.log_end_offset
    assert all(s.synced_bytes == s.size_bytes for s in log._segments)
    expected = read_all(log)
    log.close()
    assert read_all(PartitionLog(tmp_path / "p", LogConfig(segment_bytes=4096))) == expected
