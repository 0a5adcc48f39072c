"""Sparse index files: used when sound, rebuilt from the data when not."""

from __future__ import annotations

import os

from storage_helpers import append_batch, read_all

from raykafka.storage import LogConfig, PartitionLog
from raykafka.storage.index import SegmentIndex, load_index
from raykafka.storage.segment import Segment

CFG = LogConfig(segment_bytes=3000, index_interval_bytes=700)


def build(path) -> tuple[list, list[int | None]]:
    log = PartitionLog(path, CFG)
    for i in range(60):
        append_batch(log, [b"v%d" % i] * (i % 3 + 1), [1000 + (i * 37) % 400] * (i % 3 + 1))
    snapshot = read_all(log), [log.offset_for_timestamp(t) for t in range(990, 1410, 9)]
    log.close()
    return snapshot


def sealed_index_loads(path, base: int) -> bool:
    seg = Segment.open_existing(str(path), base)
    try:
        return seg.load_sealed(CFG.index_interval_bytes)
    finally:
        seg.close()


def test_sealed_segments_open_from_their_index_files(tmp_path):
    expected = build(tmp_path / "p")
    log = PartitionLog(tmp_path / "p", CFG)
    bases = log.segment_base_offsets
    assert len(bases) > 3
    log.close()
    assert all(sealed_index_loads(tmp_path / "p", b) for b in bases[:-1])
    log = PartitionLog(tmp_path / "p", CFG)
    seg = log._segments[0]
    assert len(seg.index) > 1  # sparse: more than the first entry, fewer than the batches
    assert (read_all(log), [log.offset_for_timestamp(t) for t in range(990, 1410, 9)]) == expected
    log.close()


def test_damaged_or_missing_index_files_are_rebuilt_from_data(tmp_path):
    expected = build(tmp_path / "p")
    d = tmp_path / "p"
    names = sorted(os.listdir(d))
    index_files = [n for n in names if n.endswith((".index", ".timeindex"))]
    # flip a byte in one, truncate another, delete a third, swap two segments' indexes
    with open(d / index_files[0], "r+b") as f:
        f.seek(20)
        f.write(b"\xff")
    os.truncate(d / index_files[1], 24)
    os.unlink(d / index_files[2])
    os.replace(d / index_files[4], d / index_files[6])
    log = PartitionLog(d, CFG)
    assert (read_all(log), [log.offset_for_timestamp(t) for t in range(990, 1410, 9)]) == expected
    log.close()
    # the rebuilt index files were written back and load cleanly now
    assert all(sealed_index_loads(d, b) for b in PartitionLog(d, CFG).segment_base_offsets[:-1])


def test_index_file_pointing_past_a_shortened_segment_is_ignored(tmp_path):
    build(tmp_path / "p")
    d = tmp_path / "p"
    log = PartitionLog(d, CFG)
    base = log.segment_base_offsets[0]
    log.close()
    size = os.path.getsize(d / f"{base:020d}.log")
    idx = load_index(str(d / f"{base:020d}.index"), str(d / f"{base:020d}.timeindex"), base, size)
    assert idx is not None and idx.positions[-1] < size
    assert load_index(str(d / f"{base:020d}.index"), str(d / f"{base:020d}.timeindex"), base, 10) is None
    assert (
        load_index(str(d / f"{base:020d}.index"), str(d / f"{base:020d}.timeindex"), base + 1, size) is None
    )


def test_index_lookups():
    idx = SegmentIndex(100)
    for offset, pos, ts in [(100, 0, 50), (110, 800, 50), (125, 1700, 90), (130, 2600, 95)]:
        idx.maybe_add(offset, pos, ts, interval_bytes=700)
    idx.maybe_add(131, 2700, 99, interval_bytes=700)  # too close to the last entry: skipped
    assert list(idx.offsets) == [100, 110, 125, 130]
    assert [idx.floor_position(o) for o in (100, 109, 110, 124, 125, 200)] == [0, 0, 800, 800, 1700, 2600]
    # scanning for t starts after the last entry whose running max is still < t
    assert [idx.timestamp_scan_position(t) for t in (10, 50, 51, 90, 96)] == [0, 0, 800, 800, 2600]
    idx.truncate_from(1700)
    assert list(idx.positions) == [0, 800]
