"""The batch frame: a self-validating header followed by its payload.

Every batch in a segment file, in a fetch response and on the replication path is one
frame, byte for byte the same everywhere, so a batch is checked with the same function
wherever it travels.

Header layout (little-endian; docs/FORMAT.md is the reference). Frames are written as
``RKB2`` (64 bytes); ``RKB1`` frames (48 bytes, written by raykafka before the producer
fields existed) are still read, as batches without a producer::

    off size field
      0   4  magic            b"RKB2" (b"RKB1": the same up to byte 48, nothing after)
      4   4  crc              CRC32C of bytes [8, header_size + payload_length)
      8   2  attributes       bit 0: timestamps are LogAppendTime (max_timestamp_ms)
     10   2  reserved         0
     12   4  payload_length   bytes of Arrow IPC payload after the header
     16   8  base_offset      offset of the first record
     24   4  record_count     records in the batch (>= 1)
     28   4  leader_epoch     epoch of the leader that appended it
     32   8  first_timestamp_ms
     40   8  max_timestamp_ms
     48   8  producer_id      -1: none (an idempotent producer's id otherwise, >= 0)
     56   2  producer_epoch   -1: none
     58   2  reserved         0
     60   4  sequence         the batch's sequence number for its producer; -1: none

The CRC covers everything after itself, header fields included, so a flipped
bit in an offset, a length or a producer field is caught as surely as one in a value.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

import crc32c

MAGIC = b"RKB2"
HEADER_SIZE = 64
#: Frames written before the producer fields existed: read, never written (docs/FORMAT.md).
MAGIC_V1 = b"RKB1"
HEADER_SIZE_V1 = 48
ATTR_LOG_APPEND_TIME = 0x1
#: ``producer_id``, ``producer_epoch`` and ``sequence`` of a batch without a producer.
NO_PRODUCER = -1

_HEADER_V1 = struct.Struct("<4sIHHIqiiqq")  # both versions start with these fields
_PRODUCER = struct.Struct("<qhHi")  # then RKB2 has these
_HEADER = struct.Struct("<4sIHHIqiiqqqhHi")  # all of RKB2's, packed in one go
_CRC_FROM = 8  # the CRC covers the header from this byte on, then the payload
assert _HEADER_V1.size == HEADER_SIZE_V1 and HEADER_SIZE_V1 + _PRODUCER.size == _HEADER.size == HEADER_SIZE


class CorruptBatch(ValueError):
    """A frame whose magic, lengths or CRC do not check out."""


class BatchHeader(NamedTuple):
    crc: int
    attributes: int
    payload_length: int
    base_offset: int
    record_count: int
    leader_epoch: int
    first_timestamp_ms: int
    max_timestamp_ms: int
    producer_id: int = NO_PRODUCER
    producer_epoch: int = NO_PRODUCER
    sequence: int = NO_PRODUCER
    header_size: int = HEADER_SIZE

    @property
    def frame_length(self) -> int:
        return self.header_size + self.payload_length

    @property
    def next_offset(self) -> int:
        """The offset right after this batch's last record."""
        return self.base_offset + self.record_count

    @property
    def log_append_time(self) -> bool:
        return bool(self.attributes & ATTR_LOG_APPEND_TIME)


def pack_header(
    payload: bytes | memoryview,
    *,
    base_offset: int,
    record_count: int,
    first_timestamp_ms: int,
    max_timestamp_ms: int,
    attributes: int = 0,
    leader_epoch: int = 0,
    producer_id: int = NO_PRODUCER,
    producer_epoch: int = NO_PRODUCER,
    sequence: int = NO_PRODUCER,
    magic: bytes = MAGIC,
) -> bytes:
    """The header bytes for ``payload``, CRC included: 64 (RKB2). ``magic=MAGIC_V1`` writes
    the 48 bytes of the old format (tests use it to make the data of older versions)."""
    fields = (magic, 0, attributes, 0, len(payload), base_offset, record_count, leader_epoch)
    if magic == MAGIC:
        tail = _HEADER.pack(
            *fields, first_timestamp_ms, max_timestamp_ms, producer_id, producer_epoch, 0, sequence
        )[_CRC_FROM:]
    elif magic == MAGIC_V1 and (producer_id, producer_epoch, sequence) == (NO_PRODUCER,) * 3:
        tail = _HEADER_V1.pack(*fields, first_timestamp_ms, max_timestamp_ms)[_CRC_FROM:]
    else:
        raise ValueError(f"cannot write a {magic!r} header with a producer")
    crc = crc32c.crc32c(payload, crc32c.crc32c(tail))
    return magic + struct.pack("<I", crc) + tail


def unpack_header(buf: bytes | memoryview, pos: int = 0) -> BatchHeader:
    """Parse the header (RKB2 or RKB1) at ``buf[pos:]`` without checking the CRC.

    Raises CorruptBatch when the header is cut short or the magic is wrong.
    """
    if len(buf) - pos < HEADER_SIZE_V1:
        raise CorruptBatch(f"truncated header at byte {pos}")
    magic, crc, attrs, _res, plen, base, count, epoch, first_ts, max_ts = _HEADER_V1.unpack_from(buf, pos)
    if magic == MAGIC:
        if len(buf) - pos < HEADER_SIZE:
            raise CorruptBatch(f"truncated header at byte {pos}")
        producer_id, producer_epoch, _res2, sequence = _PRODUCER.unpack_from(buf, pos + HEADER_SIZE_V1)
        size = HEADER_SIZE
    elif magic == MAGIC_V1:
        producer_id = producer_epoch = sequence = NO_PRODUCER
        size = HEADER_SIZE_V1
    else:
        raise CorruptBatch(f"bad magic {magic!r} at byte {pos}")
    if count < 1:
        raise CorruptBatch(f"record_count {count} at byte {pos}")
    return BatchHeader(
        crc, attrs, plen, base, count, epoch, first_ts, max_ts, producer_id, producer_epoch, sequence, size
    )


def frame_crc_ok(buf: bytes | memoryview, pos: int, header: BatchHeader) -> bool:
    """Whether the frame at ``buf[pos:]`` is whole and its CRC matches."""
    end = pos + header.frame_length
    if end > len(buf):
        return False
    view = memoryview(buf)
    return crc32c.crc32c(view[pos + _CRC_FROM : end]) == header.crc


def iter_frames(buf: bytes | memoryview, *, verify: bool = True) -> Iterator[tuple[BatchHeader, memoryview]]:
    """Yield ``(header, payload)`` for each whole frame in ``buf``, in order.

    With ``verify`` every frame's CRC is checked; a bad or truncated frame raises
    CorruptBatch, so nothing past it is ever yielded.
    """
    view = memoryview(buf)
    pos = 0
    while pos < len(view):
        header = unpack_header(view, pos)
        if verify and not frame_crc_ok(view, pos, header):
            raise CorruptBatch(
                f"CRC mismatch or truncated frame at byte {pos} (base offset {header.base_offset})"
            )
        start = pos + header.header_size
        yield header, view[start : start + header.payload_length]
        pos = start + header.payload_length
