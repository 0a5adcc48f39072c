"""Append/read round trips, rolling, read limits, errors and reopen."""

from __future__ import annotations

import os

import pyarrow as pa
import pytest
from storage_helpers import append_batch, frames, payload_of, read_all

from raykafka.storage import (
    HEADER_SIZE,
    CorruptBatch,
    InvalidRecordBatch,
    LogConfig,
    LogOffsetOutOfRange,
    PartitionLog,
    StorageError,
    decode_record_batch,
    iter_frames,
)


def test_round_trip_real_arrow_batches(tmp_path):
    log = PartitionLog(tmp_path / "p")
    assert (log.log_start_offset, log.log_end_offset, log.size_bytes) == (0, 0, 0)
    assert log.read(0, 1000) == []
    b0 = append_batch(log, [b"a", b"bb", None], [10, 11, 12])
    b1 = append_batch(log, [b"x" * 1000], [20])
    assert (b0, b1, log.log_end_offset) == (0, 3, 4)

    bufs = log.read(0, 1 << 20)
    assert len(bufs) == 1  # contiguous frames of one segment come back as one slice
    (h0, p0), (h1, p1) = list(iter_frames(memoryview(bufs[0])))
    assert (h0.base_offset, h0.record_count, h0.first_timestamp_ms, h0.max_timestamp_ms) == (0, 3, 10, 12)
    assert (h1.base_offset, h1.record_count) == (3, 1)
    rb = decode_record_batch(p0)
    assert rb.column("value").to_pylist() == [b"a", b"bb", None]
    assert rb.column("timestamp_ms").to_pylist() == [10, 11, 12]
    assert decode_record_batch(p1).column("value").to_pylist() == [b"x" * 1000]
    assert log.size_bytes == bufs[0].size

    # reading from an offset inside a batch returns the whole batch holding it
    assert [f[0] for f in frames(log.read(2, 1 << 20))] == [0, 3]
    assert [f[0] for f in frames(log.read(3, 1 << 20))] == [3]
    assert log.read(4, 1 << 20) == []
    log.close()


def test_read_is_zero_copy_from_the_map(tmp_path):
    log = PartitionLog(tmp_path / "p")
    log.append(payload_of(4096, 1), record_count=1, first_timestamp_ms=0, max_timestamp_ms=0)
    a = log.read(0, 1 << 20)[0]
    b = log.read(0, 1 << 20)[0]
    assert a.address == b.address  # same mapped bytes, no copy per read
    assert a.address % 8 == 0 and (a.address + HEADER_SIZE) % 8 == 0
    log.close()


def test_accepts_pyarrow_buffer_and_memoryview(tmp_path):
    log = PartitionLog(tmp_path / "p")
    log.append(pa.py_buffer(payload_of(64, 1)), record_count=2, first_timestamp_ms=0, max_timestamp_ms=0)
    log.append(memoryview(payload_of(64, 2)), record_count=2, first_timestamp_ms=0, max_timestamp_ms=0)
    assert [f[2] for f in read_all(log)] == [payload_of(64, 1), payload_of(64, 2)]
    with pytest.raises(InvalidRecordBatch):
        log.append(b"x" * 7, record_count=1, first_timestamp_ms=0, max_timestamp_ms=0)
    with pytest.raises(ValueError):
        log.append(b"x" * 8, record_count=0, first_timestamp_ms=0, max_timestamp_ms=0)
    log.close()


def test_roll_by_segment_bytes_and_read_across_segments(tmp_path):
    frame = HEADER_SIZE + 256
    log = PartitionLog(tmp_path / "p", LogConfig(segment_bytes=3 * frame, index_interval_bytes=1))
    for i in range(10):
        assert (
            log.append(payload_of(256, i), record_count=2, first_timestamp_ms=i, max_timestamp_ms=i) == 2 * i
        )
    assert log.segment_base_offsets == [0, 6, 12, 18]
    assert sorted(os.listdir(tmp_path / "p"))[:3] == [
        "00000000000000000000.index",
        "00000000000000000000.log",
        "00000000000000000000.timeindex",
    ]
    assert log.size_bytes == 10 * frame
    bufs = log.read(3, 1 << 20)
    assert [b.size for b in bufs] == [2 * frame, 3 * frame, 3 * frame, frame]  # one slice per segment
    assert [f[2] for f in frames(bufs)] == [payload_of(256, i) for i in range(1, 10)]
    assert [f[0] for f in read_all(log)] == list(range(0, 20, 2))
    log.close()


def test_oversized_batch_gets_its_own_segment(tmp_path):
    log = PartitionLog(tmp_path / "p", LogConfig(segment_bytes=100))
    for i in range(3):
        log.append(payload_of(512, i), record_count=1, first_timestamp_ms=0, max_timestamp_ms=0)
    assert log.segment_base_offsets == [0, 1, 2]
    assert [f[2] for f in read_all(log)] == [payload_of(512, i) for i in range(3)]


def test_roll_by_segment_ms(tmp_path):
    now = [1000]
    log = PartitionLog(tmp_path / "p", LogConfig(segment_ms=100), clock_ms=lambda: now[0])
    log.append(payload_of(8, 0), record_count=1, first_timestamp_ms=0, max_timestamp_ms=0)
    now[0] += 100
    log.append(payload_of(8, 1), record_count=1, first_timestamp_ms=0, max_timestamp_ms=0)
    assert log.segment_base_offsets == [0]  # exactly segment_ms old: not yet
    now[0] += 1
    log.append(payload_of(8, 2), record_count=1, first_timestamp_ms=0, max_timestamp_ms=0)
    assert log.segment_base_offsets == [0, 2]
    now[0] += 50
    log.append(payload_of(8, 3), record_count=1, first_timestamp_ms=0, max_timestamp_ms=0)
    assert log.segment_base_offsets == [0, 2]  # the clock restarts at the new segment's first append
    now[0] += 60
    log.append(payload_of(8, 4), record_count=1, first_timestamp_ms=0, max_timestamp_ms=0)
    assert log.segment_base_offsets == [0, 2, 4]
    log.close()


def test_max_bytes_and_max_offset(tmp_path):
    frame = HEADER_SIZE + 128
    log = PartitionLog(tmp_path / "p", LogConfig(segment_bytes=4 * frame))
    for i in range(8):  # batches of 3 records: offsets 0-2, 3-5, ...
        log.append(payload_of(128, i), record_count=3, first_timestamp_ms=0, max_timestamp_ms=0)
    # at least one frame even when max_bytes is smaller than it
    assert [f[0] for f in frames(log.read(0, 1))] == [0]
    assert [f[0] for f in frames(log.read(0, frame))] == [0]
    assert [f[0] for f in frames(log.read(0, 2 * frame + 1))] == [0, 3]
    assert [f[0] for f in frames(log.read(4, 5 * frame))] == [3, 6, 9, 12, 15]  # across a segment boundary
    # max_offset excludes frames whose last offset >= max_offset
    assert [f[0] for f in frames(log.read(0, 1 << 20, max_offset=6))] == [0, 3]
    assert [f[0] for f in frames(log.read(0, 1 << 20, max_offset=5))] == [0]
    assert log.read(0, 1 << 20, max_offset=2) == []
    assert [f[0] for f in frames(log.read(0, 1 << 20, max_offset=24))] == list(range(0, 24, 3))
    log.close()


def test_out_of_range(tmp_path):
    log = PartitionLog(tmp_path / "p")
    for i in range(3):
        log.append(payload_of(8, i), record_count=2, first_timestamp_ms=0, max_timestamp_ms=0)
    with pytest.raises(LogOffsetOutOfRange) as err:
        log.read(7, 100)
    assert (err.value.offset, err.value.log_start_offset, err.value.log_end_offset) == (7, 0, 6)
    assert isinstance(err.value, StorageError)
    assert log.read(6, 100) == []
    log.delete_records(2)
    with pytest.raises(LogOffsetOutOfRange):
        log.read(1, 100)
    assert frames(log.read(2, 100))[0][0] == 2
    with pytest.raises(LogOffsetOutOfRange):
        log.delete_records(7)
    log.close()
    with pytest.raises(StorageError):
        log.read(2, 100)


def test_reopen_after_close_equals_before(tmp_path):
    cfg = LogConfig(segment_bytes=2000, index_interval_bytes=100)
    log = PartitionLog(tmp_path / "p", cfg)
    for i in range(40):
        append_batch(log, [b"v%d" % i] * (i % 4 + 1), [i * 10] * (i % 4 + 1))
    log.delete_records(5)
    before = (
        log.log_start_offset,
        log.log_end_offset,
        log.size_bytes,
        log.segment_base_offsets,
        read_all(log),
    )
    ts_before = [log.offset_for_timestamp(t) for t in range(0, 420, 7)]
    log.close()
    log = PartitionLog(tmp_path / "p", cfg)
    assert log.recovery_truncated_bytes == 0
    assert (
        log.log_start_offset,
        log.log_end_offset,
        log.size_bytes,
        log.segment_base_offsets,
        read_all(log),
    ) == before
    assert [log.offset_for_timestamp(t) for t in range(0, 420, 7)] == ts_before
    # appends continue where they left off
    assert log.append(payload_of(8, 0), record_count=1, first_timestamp_ms=0, max_timestamp_ms=0) == before[1]
    log.close()


def test_append_frames_verbatim(tmp_path):
    src = PartitionLog(tmp_path / "src", LogConfig(segment_bytes=1000))
    for i in range(10):
        append_batch(src, [b"%d" % i] * 3, [i] * 3, leader_epoch=7)
    wire = b"".join(bytes(b) for b in src.read(0, 1 << 20))
    dst = PartitionLog(tmp_path / "dst", LogConfig(segment_bytes=1000))
    assert dst.append_frames(wire) == 30
    assert read_all(dst) == read_all(src)
    assert dst.segment_base_offsets == src.segment_base_offsets
    # frames must continue at the log end and have good CRCs; bad input appends nothing
    with pytest.raises(CorruptBatch):
        dst.append_frames(wire)
    more = src.read(0, 1)[0]
    damaged = bytearray(bytes(more))
    damaged[-1] ^= 1
    with pytest.raises(CorruptBatch):
        dst.append_frames(bytes(damaged))
    assert dst.log_end_offset == 30
    src.close()
    dst.close()


def test_destroy_removes_directory(tmp_path):
    log = PartitionLog(tmp_path / "p")
    log.append(payload_of(8, 0), record_count=1, first_timestamp_ms=0, max_timestamp_ms=0)
    log.destroy()
    assert not (tmp_path / "p").exists()


def test_storage_never_imports_ray():
    import ast

    import raykafka.storage

    package_dir = os.path.dirname(raykafka.storage.__file__)
    for name in os.listdir(package_dir):
        if not name.endswith(".py"):
            continue
        with open(os.path.join(package_dir, name)) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module or ""]
            else:
                continue
            assert not any(m == "ray" or m.startswith("ray.") for m in modules), (name, modules)
