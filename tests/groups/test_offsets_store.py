"""OffsetsStore: a group's committed offsets in a storage-engine log. No Ray.

Commit and reopen (latest wins), snapshot compaction (the log start moves to the
snapshot, old segments go, nothing is forgotten), and a torn tail (a commit cut off
by a crash is dropped on reopen; everything before it survives).
"""

from __future__ import annotations

import os

import pytest

from raykafka.groups.offsets_store import OffsetsStore
from raykafka.storage.segment import LOG_SUFFIX
from raykafka.types import TopicPartition


def tp(topic: str, p: int, offset: int | None = None) -> TopicPartition:
    return TopicPartition(topic, p, offset)


def segment_files(directory) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.endswith(LOG_SUFFIX))


def reopen(store: OffsetsStore, directory, **kw) -> OffsetsStore:
    store.close()
    return OffsetsStore(directory, **kw)


def test_commit_and_reopen_latest_wins(tmp_path):
    d = tmp_path / "g"
    store = OffsetsStore(d)
    assert store.committed == {}
    store.commit({tp("t", 0): 5, tp("t", 1): 7, tp("other.topic_x-1", 3): 0})
    store.commit({tp("t", 0): 6})
    store.commit({})  # nothing to do
    want = {tp("t", 0): 6, tp("t", 1): 7, tp("other.topic_x-1", 3): 0}
    assert store.committed == want
    store = reopen(store, d)
    assert store.committed == want
    store.commit({tp("t", 1): 2})  # offsets may go back (a seek + commit), as in Kafka
    store = reopen(store, d)
    assert store.committed[tp("t", 1)] == 2
    store.close()


def test_keys_carry_no_offset_and_large_offsets_round_trip(tmp_path):
    store = OffsetsStore(tmp_path / "g")
    store.commit({tp("t", 0, offset=99): 2**62})
    (key,) = store.committed
    assert key.offset is None
    store = reopen(store, tmp_path / "g")
    assert store.committed == {tp("t", 0): 2**62}
    store.close()


def test_epochs_are_stored_with_offsets_and_old_values_read_without_one(tmp_path):
    """A commit carries the leader epoch of the record it follows (KIP-320), through a reopen and
    a snapshot; a later commit without one forgets it; an 8-byte value of an older version reads
    as an offset with no epoch."""
    import struct

    import numpy as np
    import pyarrow as pa

    from raykafka.storage.arrays import binary_array, int_array
    from raykafka.storage.records import HEADERS_TYPE, RECORD_SCHEMA, encode_record_batch

    d = tmp_path / "g"
    store = OffsetsStore(d, snapshot_every_bytes=1)  # every commit also writes a snapshot
    store.commit({tp("t", 0): 5, tp("t", 1): 7}, {tp("t", 0): 3})
    assert (store.committed, store.epochs) == ({tp("t", 0): 5, tp("t", 1): 7}, {tp("t", 0): 3})
    store = reopen(store, d)
    assert (store.committed, store.epochs) == ({tp("t", 0): 5, tp("t", 1): 7}, {tp("t", 0): 3})
    store.commit({tp("t", 0): 9})
    assert store.epochs == {}
    old = pa.RecordBatch.from_arrays(  # a commit as the version before epochs wrote it
        [
            binary_array([b"t\x002"]),
            binary_array([struct.pack("<q", 41)]),
            int_array(np.zeros(1, dtype=np.int64)),
            pa.nulls(1, HEADERS_TYPE),
        ],
        schema=RECORD_SCHEMA,
    )
    store.log.append(encode_record_batch(old), record_count=1, first_timestamp_ms=0, max_timestamp_ms=0)
    store = reopen(store, d)
    assert store.committed == {tp("t", 0): 9, tp("t", 1): 7, tp("t", 2): 41}
    assert store.epochs == {}
    store.close()


def test_commit_is_fsynced_before_it_is_visible(tmp_path):
    store = OffsetsStore(tmp_path / "g")
    before = store.log.fsync_count
    store.commit({tp("t", 0): 1})
    assert store.log.fsync_count > before
    assert store.log.flushed_offset == store.log.log_end_offset
    store.close()


def test_snapshot_compaction_keeps_every_offset_and_drops_old_segments(tmp_path):
    d = tmp_path / "g"
    store = OffsetsStore(d, snapshot_every_bytes=64 << 10)
    store.commit({tp("rare", 0): 11, tp("rare", 1): 12})  # committed once, long ago
    expected = {tp("rare", 0): 11, tp("rare", 1): 12}
    # ~ 1.4 MiB of commits (~900 bytes each): two 1 MiB segments and many snapshots.
    for i in range(1_500):
        batch = {tp("busy", p): i * 10 + p for p in range(8)}
        store.commit(batch)
        expected.update(batch)
    assert store.committed == expected
    assert store.log.log_start_offset > 0, "no snapshot was taken"
    assert segment_files(d)[0] != f"{0:020d}{LOG_SUFFIX}", "the first segment was not deleted"
    assert len(segment_files(d)) <= 2
    store = reopen(store, d, snapshot_every_bytes=64 << 10)
    assert store.committed == expected
    # Replay started at the last snapshot: less than the threshold plus one snapshot was read.
    assert store._bytes_since_snapshot < (64 << 10) + 4096, store._bytes_since_snapshot
    # Commits after reopen (and their snapshots) go on from there.
    for i in range(500):
        store.commit({tp("busy", 0): 10**9 + i})
    expected[tp("busy", 0)] = 10**9 + 499
    store = reopen(store, d)
    assert store.committed == expected
    store.close()


def test_snapshot_interrupted_before_moving_the_log_start(tmp_path, monkeypatch):
    """A crash between writing the snapshot and moving the log start: replay reads both."""
    d = tmp_path / "g"
    store = OffsetsStore(d, snapshot_every_bytes=1 << 40)
    store.commit({tp("t", 0): 1, tp("t", 1): 1})
    store.commit({tp("t", 0): 2})
    store._append(store.committed, store.epochs)  # the snapshot's batch, as _snapshot writes it
    store.log.flush()
    store = reopen(store, d)
    assert store.committed == {tp("t", 0): 2, tp("t", 1): 1}
    store.close()


@pytest.mark.parametrize("cut", [1, 10, 47, 60])
def test_torn_tail_drops_only_the_unfinished_commit(tmp_path, cut):
    d = tmp_path / "g"
    store = OffsetsStore(d)
    store.commit({tp("t", 0): 10, tp("t", 1): 20})
    size_before_last = os.path.getsize(d / segment_files(d)[-1])
    store.commit({tp("t", 0): 11, tp("t", 1): 21})
    store.close()
    path = d / segment_files(d)[-1]
    last_frame = os.path.getsize(path) - size_before_last
    assert cut < last_frame
    with open(path, "r+b") as f:  # the last commit was cut off by the crash
        f.truncate(os.path.getsize(path) - cut)
    store = OffsetsStore(d)
    assert store.committed == {tp("t", 0): 10, tp("t", 1): 20}
    store.commit({tp("t", 1): 22})  # appends after the repaired tail
    store = reopen(store, d)
    assert store.committed == {tp("t", 0): 10, tp("t", 1): 22}
    store.close()


def test_garbage_after_the_last_commit_is_ignored(tmp_path):
    d = tmp_path / "g"
    store = OffsetsStore(d)
    store.commit({tp("t", 0): 3})
    store.close()
    with open(d / segment_files(d)[-1], "ab") as f:
        f.write(b"\x00" * 13 + b"\xff" * 100)  # a torn, half-written frame
    store = OffsetsStore(d)
    assert store.committed == {tp("t", 0): 3}
    store.commit({tp("t", 0): 4})
    store = reopen(store, d)
    assert store.committed == {tp("t", 0): 4}
    store.close()


def test_destroy_removes_everything(tmp_path):
    d = tmp_path / "g"
    store = OffsetsStore(d)
    store.commit({tp("t", 0): 3})
    store.destroy()
    assert not d.exists()
    assert OffsetsStore(d).committed == {}
