"""OffsetsStore: a group's committed offsets, kept in a log of the storage engine.

Each commit is one record batch appended to the group's own PartitionLog
(``key`` = ``<topic>\\x00<partition>``, ``value`` = the offset as 8 bytes
little-endian, then as 4 the leader epoch of the record it follows, -1 when
unknown; a value of 8 bytes has no epoch) and fsynced before the commit is
acknowledged, so a committed offset survives the coordinator's process and the
machine. Opening replays the log; the latest record per partition wins.

The log would grow forever, so after ``snapshot_every_bytes`` of commits the
store appends one batch holding *every* current offset and moves the log
start to it: replay then starts at that snapshot and older segments are
deleted (Kafka's compacted ``__consumer_offsets``, reduced to what one group
needs).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa

from raykafka.storage import LogConfig, PartitionLog, decode_record_batch, encode_record_batch, iter_frames
from raykafka.storage.arrays import binary_array, int_array
from raykafka.storage.records import HEADERS_TYPE, RECORD_SCHEMA
from raykafka.types import TopicPartition

_OFFSET = struct.Struct("<q")
_OFFSET_AND_EPOCH = struct.Struct("<qi")
NO_EPOCH = -1
#: Replay reads the log in pieces of this size.
REPLAY_READ_BYTES = 4 << 20
#: Commits appended between two full snapshots.
DEFAULT_SNAPSHOT_EVERY_BYTES = 4 << 20
_SEGMENT_BYTES = 1 << 20


def _key(tp: TopicPartition) -> bytes:
    return f"{tp.topic}\x00{tp.partition}".encode()


def _tp(key: bytes) -> TopicPartition:
    topic, partition = key.decode().split("\x00")
    return TopicPartition(topic, int(partition))


def _unpack(value: bytes) -> tuple[int, int]:
    """``(offset, epoch)`` of a stored value (8 bytes: written before epochs were stored)."""
    if len(value) == _OFFSET.size:
        return _OFFSET.unpack(value)[0], NO_EPOCH
    return _OFFSET_AND_EPOCH.unpack(value)


class OffsetsStore:
    def __init__(self, directory: str | Path, snapshot_every_bytes: int = DEFAULT_SNAPSHOT_EVERY_BYTES):
        self.log = PartitionLog(directory, LogConfig(segment_bytes=_SEGMENT_BYTES, retention_ms=-1))
        self.snapshot_every_bytes = snapshot_every_bytes
        self.committed: dict[TopicPartition, int] = {}
        self.epochs: dict[TopicPartition, int] = {}  # of the record each offset follows, where known
        self._bytes_since_snapshot = 0
        self._replay()

    def _replay(self) -> None:
        offset = self.log.log_start_offset
        while offset < self.log.log_end_offset:
            frames = self.log.read(offset, REPLAY_READ_BYTES)
            for buf in frames:
                for header, payload in iter_frames(buf):
                    batch = decode_record_batch(payload)
                    keys, values = batch.column(0).to_pylist(), batch.column(1).to_pylist()
                    for key, value in zip(keys, values, strict=True):
                        self._remember(_tp(key), *_unpack(value))
                    offset = header.next_offset
                    self._bytes_since_snapshot += header.frame_length

    def _remember(self, tp: TopicPartition, offset: int, epoch: int) -> None:
        self.committed[tp] = offset
        if epoch == NO_EPOCH:
            self.epochs.pop(tp, None)
        else:
            self.epochs[tp] = epoch

    def commit(
        self, offsets: Mapping[TopicPartition, int], epochs: Mapping[TopicPartition, int] | None = None
    ) -> None:
        """Append and fsync ``offsets`` (with the leader ``epochs`` of the records they follow,
        where known); only then are they visible in ``committed`` and ``epochs``."""
        if not offsets:
            return
        epochs = epochs or {}
        self._append(offsets, epochs)
        self.log.flush()
        for tp, offset in offsets.items():
            self._remember(TopicPartition(tp.topic, tp.partition), offset, epochs.get(tp, NO_EPOCH))
        if self._bytes_since_snapshot >= self.snapshot_every_bytes:
            self._snapshot()

    def _append(self, offsets: Mapping[TopicPartition, int], epochs: Mapping[TopicPartition, int]) -> int:
        items = sorted(offsets.items(), key=lambda kv: (kv[0].topic, kv[0].partition))
        n = len(items)
        stamps = np.zeros(n, dtype=np.int64)  # commit records need no time
        batch = pa.RecordBatch.from_arrays(
            [
                binary_array([_key(tp) for tp, _ in items]),
                binary_array([_OFFSET_AND_EPOCH.pack(o, epochs.get(tp, NO_EPOCH)) for tp, o in items]),
                int_array(stamps),
                pa.nulls(n, HEADERS_TYPE),
            ],
            schema=RECORD_SCHEMA,
        )
        payload = encode_record_batch(batch)
        base = self.log.append(payload, record_count=n, first_timestamp_ms=0, max_timestamp_ms=0)
        self._bytes_since_snapshot += payload.size
        return base

    def _snapshot(self) -> None:
        base = self._append(self.committed, self.epochs)
        self.log.flush()
        self.log.delete_records(base)
        self._bytes_since_snapshot = 0

    def close(self) -> None:
        self.log.close()

    def destroy(self) -> None:
        self.log.destroy()
