"""ProducerStateTable: what one partition replica knows of each idempotent producer.

Kafka's ``ProducerStateManager`` (KIP-98), without transactions. Every batch an idempotent
producer sends carries ``(producer_id, producer_epoch, sequence)`` in its frame header
(docs/FORMAT.md, section 2), so this table is a pure function of the log: the leader builds
it as it appends, a follower as it stores the leader's frames verbatim, and a replica that
opens its directory rebuilds it from the newest snapshot file plus the frames after it. A
retried batch is found here by its sequence number and answered with the offsets it was
stored at, on whichever replica leads now.

Per producer it keeps the epoch, the metadata of its last ``RETAINED_BATCHES`` batches
(sequence, base offset, record count, LogAppendTime) and when this replica last stored one
of its batches (``last_seen_ms``, for expiry). Kafka keeps 5 batches because its producer
has at most 5 requests of one batch per partition in flight; raykafka's has up to 5
requests of up to 16 batches, so a retry of any batch still unanswered falls in the window.

Expiry (``producer.id.expiration.ms``, KIP-854): a producer none of whose batches this
replica stored for that long is forgotten, so the table stays bounded however many
producers come and go. ``last_seen_ms`` is this replica's clock when it stored the batch,
not the batch's timestamp (Kafka's choice: a producer writing old CreateTime timestamps
would look idle at once); a batch found by the rescan on open counts as seen at the open.

Snapshot files (``{offset:020d}.snapshot``, binary, CRC32C; section 11 of docs/FORMAT.md):
the table as it was when the log ended at ``offset``. The log writes one when a segment
rolls and on a clean close, and keeps the newest ``SNAPSHOTS_KEPT``. Truncation deletes the
snapshots past the cut and rebuilds from the newest one left.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections import OrderedDict
from typing import NamedTuple

import crc32c

from . import faults
from .checkpoint import atomic_write
from .framing import NO_PRODUCER, BatchHeader

#: Batches remembered per producer for duplicate answers: at least what a producer may have
#: in flight to one partition (raykafka's sizes its requests to this).
RETAINED_BATCHES = 128
#: Snapshot files kept; older ones are deleted when a new one is written.
SNAPSHOTS_KEPT = 3
SNAPSHOT_SUFFIX = ".snapshot"

_MAGIC = b"RKPS"
_VERSION = 1
_FILE = struct.Struct("<4sIHHIq")  # magic, crc, version, reserved, producer count, offset
_PRODUCER = struct.Struct("<qhHIq")  # producer id, epoch, batch count, reserved, last seen ms
_BATCH = struct.Struct("<iiqq")  # sequence, record count, base offset, append time ms
_CRC_FROM = 8


class BatchMetadata(NamedTuple):
    """One stored batch of a producer: enough to answer a retry of it."""

    sequence: int
    base_offset: int
    record_count: int
    append_time_ms: int  # the batch's LogAppendTime, -1 for CreateTime

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.record_count


class ProducerEntry:
    """One producer's epoch, last batches (sequence -> metadata, oldest first) and last-seen time."""

    __slots__ = ("batches", "epoch", "last_seen_ms")

    def __init__(self, epoch: int, last_seen_ms: int):
        self.epoch = epoch
        self.batches: OrderedDict[int, BatchMetadata] = OrderedDict()
        self.last_seen_ms = last_seen_ms

    @property
    def last_sequence(self) -> int:
        return next(reversed(self.batches))

    @property
    def last_batch(self) -> BatchMetadata:
        return self.batches[self.last_sequence]


class ProducerStateTable:
    """Producer id -> ProducerEntry. Pure: no files (see ``write_snapshot``), no clock of its own."""

    def __init__(self) -> None:
        self._producers: dict[int, ProducerEntry] = {}

    def __len__(self) -> int:
        return len(self._producers)

    def __contains__(self, producer_id: int) -> bool:
        return producer_id in self._producers

    def entry(self, producer_id: int) -> ProducerEntry | None:
        return self._producers.get(producer_id)

    def producer_ids(self) -> list[int]:
        return list(self._producers)

    # -- what the log stored -------------------------------------------------------------

    def record(
        self,
        producer_id: int,
        producer_epoch: int,
        sequence: int,
        base_offset: int,
        record_count: int,
        append_time_ms: int,
        now_ms: int,
    ) -> None:
        """A batch of ``producer_id`` was stored at ``base_offset``. A new epoch starts the
        producer over (Kafka's epoch bump: its sequence numbers start again)."""
        entry = self._producers.get(producer_id)
        if entry is None or entry.epoch != producer_epoch:
            entry = self._producers[producer_id] = ProducerEntry(producer_epoch, now_ms)
        batches = entry.batches
        batches[sequence] = BatchMetadata(sequence, base_offset, record_count, append_time_ms)
        if len(batches) > RETAINED_BATCHES:
            batches.popitem(last=False)
        if now_ms > entry.last_seen_ms:
            entry.last_seen_ms = now_ms

    def update(self, header: BatchHeader, now_ms: int) -> None:
        """``record`` from a frame header; batches without a producer are ignored."""
        if header.producer_id == NO_PRODUCER:
            return
        self.record(
            header.producer_id,
            header.producer_epoch,
            header.sequence,
            header.base_offset,
            header.record_count,
            header.max_timestamp_ms if header.log_append_time else -1,
            now_ms,
        )

    # -- questions the leader asks -------------------------------------------------------

    def find(self, producer_id: int, producer_epoch: int, sequence: int) -> BatchMetadata | None:
        """The stored batch with this identity, if it is among the producer's retained ones."""
        entry = self._producers.get(producer_id)
        if entry is None or entry.epoch != producer_epoch:
            return None
        return entry.batches.get(sequence)

    def last_sequence(self, producer_id: int, producer_epoch: int) -> int | None:
        """The sequence number of the producer's last stored batch in this epoch; None when
        the producer is unknown here (new, expired) or its batches were of another epoch."""
        entry = self._producers.get(producer_id)
        if entry is None or entry.epoch != producer_epoch:
            return None
        return entry.last_sequence

    def epoch(self, producer_id: int) -> int | None:
        entry = self._producers.get(producer_id)
        return None if entry is None else entry.epoch

    # -- bounds --------------------------------------------------------------------------

    def expire(self, now_ms: int, expiration_ms: int) -> int:
        """Forget producers whose last batch was stored at least ``expiration_ms`` ago
        (Kafka's ``producer.id.expiration.ms``); returns how many."""
        idle = [pid for pid, entry in self._producers.items() if now_ms - entry.last_seen_ms >= expiration_ms]
        for pid in idle:
            del self._producers[pid]
        return len(idle)

    # -- snapshots -----------------------------------------------------------------------

    def to_bytes(self, offset: int) -> bytes:
        """The snapshot file's bytes for a log that ends at ``offset`` (docs/FORMAT.md, section 11)."""
        parts = []
        for pid, entry in self._producers.items():
            parts.append(_PRODUCER.pack(pid, entry.epoch, len(entry.batches), 0, entry.last_seen_ms))
            parts.extend(
                _BATCH.pack(b.sequence, b.record_count, b.base_offset, b.append_time_ms)
                for b in entry.batches.values()
            )
        body = b"".join(parts)
        tail = _FILE.pack(_MAGIC, 0, _VERSION, 0, len(self._producers), offset)[_CRC_FROM:] + body
        return _MAGIC + struct.pack("<I", crc32c.crc32c(tail)) + tail

    @classmethod
    def from_bytes(cls, data: bytes) -> tuple[int, ProducerStateTable]:
        """``(offset, table)`` from a snapshot file's bytes; ValueError when they do not check out."""
        if len(data) < _FILE.size:
            raise ValueError("snapshot shorter than its header")
        magic, crc, version, _res, count, offset = _FILE.unpack_from(data, 0)
        if magic != _MAGIC:
            raise ValueError(f"bad magic {magic!r}")
        if crc32c.crc32c(memoryview(data)[_CRC_FROM:]) != crc:
            raise ValueError("CRC mismatch")
        if version != _VERSION:
            raise ValueError(f"snapshot version {version} (this raykafka reads {_VERSION})")
        table = cls()
        pos = _FILE.size
        try:
            for _ in range(count):
                pid, epoch, n, _res, last_seen = _PRODUCER.unpack_from(data, pos)
                pos += _PRODUCER.size
                entry = table._producers[pid] = ProducerEntry(epoch, last_seen)
                for _ in range(n):
                    sequence, record_count, base, append_time = _BATCH.unpack_from(data, pos)
                    pos += _BATCH.size
                    entry.batches[sequence] = BatchMetadata(sequence, base, record_count, append_time)
                if not entry.batches:
                    raise ValueError(f"producer {pid} without batches")
        except struct.error:
            raise ValueError("snapshot cut short") from None
        if pos != len(data):
            raise ValueError(f"{len(data) - pos} bytes after the last producer")
        return offset, table


# -- snapshot files ----------------------------------------------------------------------


def snapshot_path(directory: str, offset: int) -> str:
    return os.path.join(directory, f"{offset:020d}{SNAPSHOT_SUFFIX}")


def list_snapshots(directory: str) -> list[int]:
    """The offsets of the snapshot files in ``directory``, ascending."""
    offsets = []
    for name in os.listdir(directory):
        stem, dot, ext = name.partition(".")
        if dot and "." + ext == SNAPSHOT_SUFFIX and len(stem) == 20 and stem.isdigit():
            offsets.append(int(stem))
    return sorted(offsets)


def write_snapshot(directory: str, offset: int, table: ProducerStateTable) -> None:
    """Write ``table`` as the snapshot at ``offset`` (atomically, durable on return), then delete
    all but the newest SNAPSHOTS_KEPT."""
    atomic_write(snapshot_path(directory, offset), table.to_bytes(offset))
    for old in list_snapshots(directory)[:-SNAPSHOTS_KEPT]:
        delete_snapshot(directory, old)


def read_snapshot(directory: str, offset: int) -> ProducerStateTable | None:
    """The snapshot at ``offset``; None when it is missing, damaged or names another offset."""
    try:
        with open(snapshot_path(directory, offset), "rb") as f:
            stored, table = ProducerStateTable.from_bytes(f.read())
    except (OSError, ValueError):
        return None
    return table if stored == offset else None


def delete_snapshot(directory: str, offset: int) -> None:
    path = snapshot_path(directory, offset)
    with contextlib.suppress(FileNotFoundError):
        if faults.ENABLED:
            faults.unlink(path)
        else:
            os.unlink(path)
