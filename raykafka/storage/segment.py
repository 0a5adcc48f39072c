"""One segment: a ``{base_offset:020d}.log`` file of frames, its index, its memory map.

A Segment knows bytes and frames, not policy: the PartitionLog decides when to roll,
retain or truncate, and holds the lock that makes size/end-offset changes visible to
the group-commit thread. Everything here runs on the log's owner thread except
``fd`` (duplicated under the log's lock by the flusher).

Memory maps: reads hand out zero-copy slices of a read-only map of the file. A map
is replaced (not resized) when the file has grown past it; a replaced map stays alive
for as long as any slice of it does. Before a file is cut short we check whether any
map still has live slices, because touching a truncated page of a map is SIGBUS: in
that case the kept prefix is copied to a new inode instead (see :meth:`truncate`).
"""

from __future__ import annotations

import contextlib
import mmap
import os
from typing import NamedTuple

import pyarrow as pa

from . import faults
from .framing import BatchHeader, CorruptBatch, frame_crc_ok, unpack_header
from .index import NO_TIMESTAMP, SegmentIndex, load_index
from .permissions import FILE_MODE

LOG_SUFFIX = ".log"
OFFSET_INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
_EMPTY = pa.py_buffer(b"")


def segment_file_name(base_offset: int) -> str:
    return f"{base_offset:020d}{LOG_SUFFIX}"


def parse_segment_file_name(name: str) -> int | None:
    """The base offset of a ``.log`` file name, or None for any other file."""
    stem, _, ext = name.partition(".")
    if "." + ext != LOG_SUFFIX or len(stem) != 20 or not stem.isdigit():
        return None
    return int(stem)


class ScanResult(NamedTuple):
    valid_bytes: int  # the clean prefix of the file
    end_offset: int  # next offset after the last clean batch
    reason: str | None  # why the scan stopped early, None when it reached the end


class Segment:
    """A segment file open for appending (active) or reading (sealed)."""

    def __init__(self, directory: str, base_offset: int, fd: int, size_bytes: int) -> None:
        self.base_offset = base_offset
        stem = os.path.join(directory, f"{base_offset:020d}")
        self.path = stem + LOG_SUFFIX
        self.offset_index_path = stem + OFFSET_INDEX_SUFFIX
        self.time_index_path = stem + TIME_INDEX_SUFFIX
        self.fd = fd
        self.size_bytes = size_bytes
        self.end_offset = base_offset  # next offset after the last batch
        self.max_timestamp_ms = NO_TIMESTAMP
        self.index = SegmentIndex(base_offset)
        self.last_batch_position = -1  # so sealing can index the last batch
        self.last_batch_offset = -1
        self.first_append_ms: int | None = None  # wall time of the first append (segment_ms roll)
        self.synced_bytes = 0  # bytes known to be fsynced (written under the log's lock)
        self._map: mmap.mmap | None = None
        self._buf: pa.Buffer = _EMPTY
        self._view = memoryview(b"")
        self._retired_maps: list[mmap.mmap] = []

    # -- opening -----------------------------------------------------------------------

    @classmethod
    def create(cls, directory: str, base_offset: int) -> Segment:
        path = os.path.join(directory, segment_file_name(base_offset))
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC
        fd = faults.open_file(path, flags, FILE_MODE) if faults.ENABLED else os.open(path, flags, FILE_MODE)
        return cls(directory, base_offset, fd, 0)

    @classmethod
    def open_existing(cls, directory: str, base_offset: int) -> Segment:
        path = os.path.join(directory, segment_file_name(base_offset))
        fd = faults.open_file(path, os.O_RDWR) if faults.ENABLED else os.open(path, os.O_RDWR)
        size = os.fstat(fd).st_size
        os.lseek(fd, size, os.SEEK_SET)
        return cls(directory, base_offset, fd, size)

    def load_sealed(self, interval_bytes: int) -> bool:
        """Set up a sealed segment from its index files; rebuild them when in doubt.

        Returns True when the index files were usable. Sealed segments are not CRC-scanned
        on open (that would read the whole log); every read verifies CRCs instead.
        """
        index = load_index(self.offset_index_path, self.time_index_path, self.base_offset, self.size_bytes)
        if index is not None and self._adopt_index(index):
            return True
        # Rebuild from headers only; a damaged frame stops indexing there and reads that reach
        # it raise CorruptBatch. The file is never cut: a sealed segment's bytes are history.
        self.index = SegmentIndex(self.base_offset)
        self._scan(0, verify_crc=False, interval_bytes=interval_bytes)
        self.seal()
        return False

    def _adopt_index(self, index: SegmentIndex) -> bool:
        """Accept ``index`` if its last entry points at the last frame of the file."""
        pos = index.positions[-1]
        view = self.view()
        try:
            header = unpack_header(view, pos)
        except CorruptBatch:
            return False
        if header.base_offset != index.offsets[-1] or pos + header.frame_length != self.size_bytes:
            return False
        if index.max_timestamps[-1] < header.max_timestamp_ms:
            return False
        self.index = index
        self.end_offset = header.next_offset
        self.max_timestamp_ms = index.max_timestamps[-1]
        self.last_batch_position = pos
        self.last_batch_offset = header.base_offset
        return True

    def recover(self, interval_bytes: int) -> int:
        """CRC-scan the whole file, cut it after the clean prefix; returns bytes cut."""
        self._reset_metadata()
        result = self._scan(0, verify_crc=True, interval_bytes=interval_bytes)
        cut = self.size_bytes - result.valid_bytes
        if cut:
            self.truncate(result.valid_bytes)
        return cut

    def recompute_metadata(self, interval_bytes: int) -> None:
        """Rebuild index, end offset and max timestamp from the headers (after a truncation)."""
        self._reset_metadata()
        self._scan(0, verify_crc=False, interval_bytes=interval_bytes)

    def _reset_metadata(self) -> None:
        """Forget what earlier scans or index loads found: the next scan starts from scratch."""
        self.index = SegmentIndex(self.base_offset)
        self.end_offset = self.base_offset
        self.max_timestamp_ms = NO_TIMESTAMP
        self.last_batch_position = self.last_batch_offset = -1

    def _scan(self, start: int, *, verify_crc: bool, interval_bytes: int) -> ScanResult:
        """Walk frames from ``start`` (a batch boundary) to the end, updating index and metadata.

        Stops at the first frame that is torn, has a bad magic/CRC, or does not continue the
        offsets of the one before it.
        """
        view = self.view()
        if view.nbytes and hasattr(self._map, "madvise"):
            self._map.madvise(mmap.MADV_SEQUENTIAL)
        size = self.size_bytes
        pos = start
        expected = self.end_offset
        running_max = self.max_timestamp_ms
        reason = None
        while pos < size:
            try:
                header = unpack_header(view, pos)
            except CorruptBatch as exc:
                reason = str(exc)
                break
            if header.base_offset != expected:
                reason = f"base offset {header.base_offset} at byte {pos}, expected {expected}"
                break
            if pos + header.frame_length > size:
                reason = f"torn frame at byte {pos}"
                break
            if verify_crc and not frame_crc_ok(view, pos, header):
                reason = f"CRC mismatch at byte {pos}"
                break
            running_max = max(running_max, header.max_timestamp_ms)
            self.index.maybe_add(header.base_offset, pos, running_max, interval_bytes)
            self.last_batch_position = pos
            self.last_batch_offset = header.base_offset
            expected = header.next_offset
            pos += header.frame_length
        self.end_offset = expected
        self.max_timestamp_ms = running_max
        return ScanResult(pos, expected, reason)

    # -- appending ---------------------------------------------------------------------

    def write(self, parts: list, length: int) -> int:
        """Write ``parts`` (buffers, one frame or more) at the end of the file; returns its position.

        One writev: the payload is handed to the kernel as is, never joined with the header.
        The caller publishes the new size under its lock (:meth:`note_batch`).
        """
        pos = self.size_bytes
        assert os.lseek(self.fd, 0, os.SEEK_CUR) == pos, "segment file position drifted before write"
        try:
            if faults.ENABLED:
                faults.check("write", self.path)
            written = os.writev(self.fd, parts)
            while written < length:  # a short write (a disk filling up, say): finish it
                rest = memoryview(b"".join(bytes(p) for p in parts))[written:]
                written += os.write(self.fd, rest)
        except BaseException:
            # Cut back whatever part of the frame reached the file (ENOSPC after a short write):
            # the file ends at the last whole frame again and the next write starts there.
            os.ftruncate(self.fd, pos)
            os.lseek(self.fd, pos, os.SEEK_SET)
            raise
        assert os.lseek(self.fd, 0, os.SEEK_CUR) == pos + length, "segment file position drifted in write"
        return pos

    def note_batch(self, position: int, header: BatchHeader, interval_bytes: int) -> None:
        """Account for a frame written at ``position`` (call with the log's lock held)."""
        self.max_timestamp_ms = max(self.max_timestamp_ms, header.max_timestamp_ms)
        self.index.maybe_add(header.base_offset, position, self.max_timestamp_ms, interval_bytes)
        self.last_batch_position = position
        self.last_batch_offset = header.base_offset
        self.end_offset = header.next_offset
        self.size_bytes = position + header.frame_length

    def seal(self) -> None:
        """Index the last batch (so the files name the segment's end) and write the index files."""
        if self.last_batch_position >= 0:
            self.index.add(self.last_batch_offset, self.last_batch_position, self.max_timestamp_ms)
            self.index.write_files(self.offset_index_path, self.time_index_path)

    # -- reading -----------------------------------------------------------------------

    def buffer(self) -> pa.Buffer:
        """A zero-copy Arrow buffer over the whole file as written so far."""
        if self._buf.size < self.size_bytes:
            self._remap()
        return self._buf

    def view(self) -> memoryview:
        if self._buf.size < self.size_bytes:
            self._remap()
        return self._view

    def _remap(self) -> None:
        if self._map is not None:
            self._retired_maps.append(self._map)
        self._view.release()
        self._map = mmap.mmap(self.fd, self.size_bytes, access=mmap.ACCESS_READ)
        self._buf = pa.py_buffer(self._map)
        self._view = memoryview(self._buf)
        self._close_retired_maps()

    def _close_retired_maps(self) -> bool:
        """Unmap replaced maps nobody references any more; True when all are gone."""
        alive = []
        for old in self._retired_maps:
            try:
                old.close()
            except BufferError:  # a reader still holds a slice of it
                alive.append(old)
        self._retired_maps = alive
        return not alive

    def _release_maps(self) -> bool:
        """Drop every map of this file; True when none is still referenced by a reader."""
        if self._map is not None:
            self._retired_maps.append(self._map)
            self._map = None
        self._view.release()
        self._view = memoryview(b"")
        self._buf = _EMPTY
        return self._close_retired_maps()

    def find_batch(self, offset: int) -> tuple[int, BatchHeader]:
        """Position and header of the batch holding ``offset`` (base_offset <= offset < end_offset).

        Starts at the sparse index's floor entry and walks headers (no CRC: the caller verifies
        what it returns). Headers that do not chain raise CorruptBatch.
        """
        pos = self.index.floor_position(offset)
        view = self.view()
        expected = None
        while pos < self.size_bytes:
            header = unpack_header(view, pos)
            if (expected is not None and header.base_offset != expected) or header.base_offset > offset:
                raise CorruptBatch(
                    f"{self.path}: batch at byte {pos} has base offset {header.base_offset}, "
                    f"expected {expected if expected is not None else f'<= {offset}'}"
                )
            if offset < header.next_offset:
                return pos, header
            expected = header.next_offset
            pos += header.frame_length
        raise CorruptBatch(f"{self.path}: offset {offset} not found before the end of the segment")

    # -- cutting and closing -----------------------------------------------------------

    def truncate(self, position: int) -> None:
        """Cut the file to ``position`` bytes (a batch boundary) and fsync it."""
        if position == self.size_bytes:
            pass  # nothing to cut (the segment just becomes active again)
        elif self._release_maps():
            os.ftruncate(self.fd, position)
        else:
            self._replace_with_prefix(position)
        if faults.ENABLED:
            faults.fsync(self.fd, self.path)
        else:
            os.fsync(self.fd)
        os.lseek(self.fd, position, os.SEEK_SET)
        self.size_bytes = position
        self.synced_bytes = min(self.synced_bytes, position)
        self.index.truncate_from(position)
        for path in (self.offset_index_path, self.time_index_path):
            _unlink_quietly(path)  # the segment is (again) active: its index lives in memory

    def _replace_with_prefix(self, position: int) -> None:
        # Readers still hold slices of the old inode; ftruncate would make their pages SIGBUS.
        # Copy the kept prefix to a new file and rename it over the old name instead.
        tmp = self.path + ".truncating"
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC
        fd = faults.open_file(tmp, flags, FILE_MODE) if faults.ENABLED else os.open(tmp, flags, FILE_MODE)
        try:
            done = 0
            while done < position:
                done += os.copy_file_range(self.fd, fd, position - done, done, done)
            if faults.ENABLED:
                faults.fsync(fd, tmp)
                faults.replace(tmp, self.path)
            else:
                os.fsync(fd)
                os.replace(tmp, self.path)
        except BaseException:
            os.close(fd)
            _unlink_quietly(tmp)
            raise
        os.close(self.fd)
        self.fd = fd

    def close(self) -> None:
        self._release_maps()  # maps still referenced by readers are unmapped by GC later
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def delete(self) -> None:
        """Close and unlink the segment's files (live reader slices keep the old pages)."""
        self.close()
        for path in (self.path, self.offset_index_path, self.time_index_path):
            _unlink_quietly(path)


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        if faults.ENABLED:
            faults.unlink(path)
        else:
            os.unlink(path)
