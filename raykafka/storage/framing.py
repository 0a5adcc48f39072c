"""The batch frame: a 48-byte self-validating header followed by its payload.

Every batch in a segment file, in a fetch response and (later) on the
replication path is one frame, byte for byte the same everywhere, so a batch is
checked with the same function wherever it travels.

Header layout (little-endian, 48 bytes; docs/FORMAT.md is the reference)::

    off size field
      0   4  magic            b"RKB1"
      4   4  crc              CRC32C of bytes [8, 48 + payload_length)
      8   2  attributes       bit 0: timestamps are LogAppendTime (max_timestamp_ms)
     10   2  reserved         0
     12   4  payload_length   bytes of Arrow IPC payload after the header
     16   8  base_offset      offset of the first record
     24   4  record_count     records in the batch (>= 1)
     28   4  leader_epoch     epoch of the leader that appended it
     32   8  first_timestamp_ms
     40   8  max_timestamp_ms

The CRC covers everything after itself, header fields included, so a flipped
bit in an offset or a length is caught as surely as one in a value.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

import crc32c

MAGIC = b"RKB1"
HEADER_SIZE = 48
ATTR_LOG_APPEND_TIME = 0x1

_HEADER = struct.Struct("<4sIHHIqiiqq")
_CRC_FROM = 8  # the CRC covers the header from this byte on, then the payload
assert _HEADER.size == HEADER_SIZE


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

    @property
    def frame_length(self) -> int:
        return HEADER_SIZE + self.payload_length

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
) -> bytes:
    """The 48 header bytes for ``payload``, CRC included."""
    tail = _HEADER.pack(
        MAGIC,
        0,
        attributes,
        0,
        len(payload),
        base_offset,
        record_count,
        leader_epoch,
        first_timestamp_ms,
        max_timestamp_ms,
    )[_CRC_FROM:]
    crc = crc32c.crc32c(payload, crc32c.crc32c(tail))
    return MAGIC + struct.pack("<I", crc) + tail


def unpack_header(buf: bytes | memoryview, pos: int = 0) -> BatchHeader:
    """Parse the header at ``buf[pos:]`` without checking the CRC.

    Raises CorruptBatch when fewer than HEADER_SIZE bytes remain or the magic is wrong.
    """
    if len(buf) - pos < HEADER_SIZE:
        raise CorruptBatch(f"truncated header at byte {pos}")
    magic, crc, attrs, _res, plen, base, count, epoch, first_ts, max_ts = _HEADER.unpack_from(buf, pos)
    if magic != MAGIC:
        raise CorruptBatch(f"bad magic {magic!r} at byte {pos}")
    if count < 1:
        raise CorruptBatch(f"record_count {count} at byte {pos}")
    return BatchHeader(crc, attrs, plen, base, count, epoch, first_ts, max_ts)


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
        start = pos + HEADER_SIZE
        yield header, view[start : start + header.payload_length]
        pos = start + header.payload_length
