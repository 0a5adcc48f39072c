"""The sparse offset and time index of one segment, in memory and on disk.

One entry is taken at the first batch of a segment and then at the first batch
starting at least ``index_interval_bytes`` after the previous entry (plus the last
batch when a segment is sealed). Each entry records, for that batch:

* its base offset and byte position in the ``.log`` file (the offset index), and
* the largest ``max_timestamp_ms`` of any batch up to and including it (the time
  index; a running maximum, so it is monotonic even when producer timestamps are not).

Both indexes share their entries, so one in-memory object serves both lookups. Files
(little-endian; docs/FORMAT.md is the reference)::

    .index      magic b"RKOI" | crc32c u32 | base_offset i64 | n x (offset i64, position i64)
    .timeindex  magic b"RKTI" | crc32c u32 | base_offset i64 | n x (max_timestamp_ms i64, offset i64)

The CRC covers bytes [8, end). Index files are a cache: :func:`load_index` returns None
for anything doubtful and the caller rebuilds from the data.
"""

from __future__ import annotations

import os
import struct
import sys
from array import array
from bisect import bisect_left, bisect_right
from itertools import pairwise

import crc32c

from . import faults
from .permissions import FILE_MODE

OFFSET_INDEX_MAGIC = b"RKOI"
TIME_INDEX_MAGIC = b"RKTI"
INDEX_HEADER_SIZE = 16
INDEX_ENTRY_SIZE = 16
_FILE_HEADER = struct.Struct("<4sIq")
NO_TIMESTAMP = -(1 << 63)  # running maximum of an empty segment
_NATIVE_LITTLE = sys.byteorder == "little"


class SegmentIndex:
    """Sparse (offset, position, running max timestamp) entries of one segment."""

    __slots__ = ("base_offset", "max_timestamps", "offsets", "positions")

    def __init__(self, base_offset: int) -> None:
        self.base_offset = base_offset
        self.offsets = array("q")
        self.positions = array("q")
        self.max_timestamps = array("q")

    def __len__(self) -> int:
        return len(self.offsets)

    def maybe_add(self, offset: int, position: int, running_max_ts: int, interval_bytes: int) -> None:
        """Record the batch at ``position`` if it is far enough past the last entry."""
        if not self.positions or position - self.positions[-1] >= interval_bytes:
            self.add(offset, position, running_max_ts)

    def add(self, offset: int, position: int, running_max_ts: int) -> None:
        if self.positions and position <= self.positions[-1]:
            return  # already indexed (e.g. sealing right after an indexed batch)
        self.offsets.append(offset)
        self.positions.append(position)
        self.max_timestamps.append(running_max_ts)

    def floor_position(self, offset: int) -> int:
        """Byte position of the last indexed batch starting at or before ``offset``."""
        i = bisect_right(self.offsets, offset) - 1
        return self.positions[i] if i >= 0 else 0

    def timestamp_scan_position(self, timestamp_ms: int) -> int:
        """Where to start scanning for the first batch with ``max_timestamp_ms >= timestamp_ms``.

        With j the first entry whose running maximum reaches the timestamp, every batch up to
        entry j-1 is older, so the answer lies after entry j-1's batch.
        """
        j = bisect_left(self.max_timestamps, timestamp_ms)
        if j == 0:
            return 0
        return self.positions[j - 1]

    def truncate_from(self, position: int) -> None:
        """Forget entries for batches at or after ``position`` (the log was cut there)."""
        keep = bisect_left(self.positions, position)
        del self.offsets[keep:]
        del self.positions[keep:]
        del self.max_timestamps[keep:]

    # -- files -------------------------------------------------------------------------

    def encode(self) -> tuple[bytes, bytes]:
        """The bytes of the ``.index`` and ``.timeindex`` files."""
        n = len(self.offsets)
        off = array("q", bytes(16 * n))
        off[0::2] = self.offsets
        off[1::2] = self.positions
        tim = array("q", bytes(16 * n))
        tim[0::2] = self.max_timestamps
        tim[1::2] = self.offsets
        return (
            _with_header(OFFSET_INDEX_MAGIC, self.base_offset, off),
            _with_header(TIME_INDEX_MAGIC, self.base_offset, tim),
        )

    def write_files(self, offset_index_path: str, time_index_path: str) -> None:
        """Write both files. Not fsynced: they are a cache that is validated when loaded."""
        off_bytes, time_bytes = self.encode()
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        for path, data in ((offset_index_path, off_bytes), (time_index_path, time_bytes)):
            tmp = path + ".tmp"
            fd = faults.open_file(tmp, flags, FILE_MODE) if faults.ENABLED else os.open(tmp, flags, FILE_MODE)
            with open(fd, "wb") as f:
                f.write(data)
            # never leave a half-written index under the real name
            if faults.ENABLED:
                faults.replace(tmp, path)
            else:
                os.replace(tmp, path)


def _with_header(magic: bytes, base_offset: int, entries: array) -> bytes:
    if not _NATIVE_LITTLE:
        entries = array("q", entries)
        entries.byteswap()
    body = struct.pack("<q", base_offset) + entries.tobytes()
    return magic + struct.pack("<I", crc32c.crc32c(body)) + body


def _read_entries(path: str, magic: bytes, base_offset: int) -> array | None:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if len(data) < INDEX_HEADER_SIZE or (len(data) - INDEX_HEADER_SIZE) % INDEX_ENTRY_SIZE:
        return None
    file_magic, crc, file_base = _FILE_HEADER.unpack_from(data)
    if file_magic != magic or file_base != base_offset or crc32c.crc32c(memoryview(data)[8:]) != crc:
        return None
    entries = array("q")
    entries.frombytes(memoryview(data)[INDEX_HEADER_SIZE:])
    if not _NATIVE_LITTLE:
        entries.byteswap()
    return entries


def _strictly_increasing(values: array) -> bool:
    return all(a < b for a, b in pairwise(values))


def load_index(
    offset_index_path: str, time_index_path: str, base_offset: int, log_size_bytes: int
) -> SegmentIndex | None:
    """Read and cheaply validate a sealed segment's index files; None when in doubt.

    Checks: magic, CRC, base offset, equal entry lists in both files, first entry at
    (base_offset, 0), offsets and positions strictly increasing, running maximum
    timestamps non-decreasing, positions inside the log file. The caller still checks
    the last entry against the frame it points at.
    """
    off = _read_entries(offset_index_path, OFFSET_INDEX_MAGIC, base_offset)
    tim = _read_entries(time_index_path, TIME_INDEX_MAGIC, base_offset)
    if off is None or tim is None or len(off) != len(tim) or not off:
        return None
    index = SegmentIndex(base_offset)
    index.offsets = off[0::2]
    index.positions = off[1::2]
    index.max_timestamps = tim[0::2]
    if tim[1::2] != index.offsets:
        return None
    if index.offsets[0] != base_offset or index.positions[0] != 0:
        return None
    if index.positions[-1] >= log_size_bytes:
        return None
    if not (_strictly_increasing(index.offsets) and _strictly_increasing(index.positions)):
        return None
    ts = index.max_timestamps
    if not all(a <= b for a, b in pairwise(ts)):
        return None
    return index
