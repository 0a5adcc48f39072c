"""PartitionLog: one partition replica's log in one directory.

Owns the segment list and the policies around it: append and roll, reads across
segments, timestamp lookup, log start offset (delete_records, retention), truncation,
recovery on open, and the flush policy with group commit.

Threading: one owner thread calls everything except ``sync_through``, ``flush``,
``flush_due`` and the read-only properties, which any thread may call. ``_lock``
guards what the fsync thread looks at (the segment list, each segment's size and fd,
the log end offset), so appends hold it only to publish a written frame.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import threading
import time
from bisect import bisect_right
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from . import faults
from .checkpoint import TMP_SUFFIX, atomic_write, fsync_dir, read_log_start_offset, write_log_start_offset
from .config import LogConfig
from .errors import LogDirFailed, LogOffsetOutOfRange, StorageError, StorageFull
from .framing import (
    ATTR_LOG_APPEND_TIME,
    NO_PRODUCER,
    CorruptBatch,
    frame_crc_ok,
    iter_frames,
    pack_header,
    unpack_header,
)
from .group_commit import GroupCommit
from .permissions import make_dirs
from .producer_state import ProducerStateTable, delete_snapshot, list_snapshots, read_snapshot, write_snapshot
from .records import InvalidRecordBatch, decode_record_batch
from .recovery_point import RecoveryPoint
from .segment import OFFSET_INDEX_SUFFIX, TIME_INDEX_SUFFIX, Segment, parse_segment_file_name

#: What a full device says (a quota counts as full).
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
#: Written by ``close`` after everything is fsynced, removed on open (Kafka's
#: ``.kafka_cleanshutdown``): its presence means nothing needs scanning.
CLEAN_SHUTDOWN_FILE = ".clean-shutdown"


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def _unlink(path: str) -> None:
    if faults.ENABLED:
        faults.unlink(path)
    else:
        os.unlink(path)


class PartitionLog:
    """An append-only log of framed batches in ``directory``; recovers on open."""

    def __init__(
        self,
        directory: str | os.PathLike,
        config: LogConfig | None = None,
        *,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.directory = os.fspath(directory)
        self.config = config if config is not None else LogConfig()
        self._clock_ms = clock_ms if clock_ms is not None else _wall_clock_ms
        self._lock = threading.Lock()
        self._segments: list[Segment] = []
        self._bases: list[int] = []  # parallel to _segments, for bisect
        self._log_start_offset = 0
        self._log_end_offset = 0
        self._size_bytes = 0
        self._dir_dirty = False  # a segment file was created since the last directory fsync
        self._truncations = 0  # bumped by truncate_to so an in-flight fsync round can't overclaim
        self._closed = False
        self._failure: LogDirFailed | None = None  # set for good by a disk error (_fail)
        self.recovery_truncated_bytes = 0  # cut by recovery on open: torn tails, bad frames, holes
        self.recovery_lost_segments = 0  # whole segments removed past a hole
        self.recovery_scanned_segments = 0  # CRC-scanned on open (none after a clean shutdown)
        self.fsync_count = 0
        #: Each idempotent producer's last batches (docs/FORMAT.md, section 11): rebuilt on open,
        #: kept up to date by every append, rebuilt again after a truncation.
        self.producer_state = ProducerStateTable()
        self.producer_scanned_batches = 0  # frame headers read on open to rebuild it
        self._producer_state_loaded = False  # no snapshot of the empty table while _open rolls
        make_dirs(self.directory)
        self._recovery = RecoveryPoint(self.directory, lambda offset: self.sync_through(offset), self._fail)
        self._clean_open = False
        self._open()
        loaded_at = self._load_producer_state(self._clean_open)
        if loaded_at != self._log_end_offset and self._log_end_offset > self._log_start_offset:
            self._snapshot_producers()  # so the next open after a crash scans from here
        self._last_flush_ms = self._clock_ms()
        self._group = GroupCommit(self._sync_round, self._log_start_offset)

    # -- properties --------------------------------------------------------------------

    @property
    def log_start_offset(self) -> int:
        return self._log_start_offset

    @property
    def log_end_offset(self) -> int:
        """The offset the next appended record will get."""
        return self._log_end_offset

    @property
    def size_bytes(self) -> int:
        return self._size_bytes

    @property
    def segment_base_offsets(self) -> list[int]:
        return list(self._bases)

    @property
    def flushed_offset(self) -> int:
        """Every offset below this has been fsynced."""
        return self._group.synced_offset

    @property
    def _active(self) -> Segment:
        return self._segments[-1]

    # -- open / recovery ---------------------------------------------------------------

    def _open(self) -> None:
        names = os.listdir(self.directory)
        clean = self._clean_open = CLEAN_SHUTDOWN_FILE in names
        # After an unclean stop, the last process's new files may not be named durably yet (a roll
        # whose directory fsync never ran): the first sync round fsyncs the directory too.
        self._dir_dirty = not clean
        if clean:  # consumed now: a crash from here on is unclean again
            _unlink(os.path.join(self.directory, CLEAN_SHUTDOWN_FILE))
            fsync_dir(self.directory)
        bases = []
        for name in names:
            if name.endswith((TMP_SUFFIX, ".truncating")):  # debris of an interrupted replace
                _unlink(os.path.join(self.directory, name))
                continue
            base = parse_segment_file_name(name)
            if base is not None:
                bases.append(base)
        bases.sort()
        live = {f"{b:020d}" for b in bases}
        for name in names:  # index files whose segment is gone
            if name.endswith((OFFSET_INDEX_SUFFIX, TIME_INDEX_SUFFIX)) and name.split(".")[0] not in live:
                _unlink(os.path.join(self.directory, name))

        checkpoint = read_log_start_offset(self.directory)
        if not bases:
            self._log_start_offset = checkpoint or 0
            self._add_segment(Segment.create(self.directory, self._log_start_offset))
            fsync_dir(self.directory)
            return

        self._load_segments(bases, clean)
        self._log_end_offset = self._active.end_offset
        if self._active.size_bytes:
            self._active.first_append_ms = self._clock_ms()  # the real first-append time is not on disk
        self._log_start_offset = max(bases[0], checkpoint or 0)
        # No fsync here: what the last process left in the page cache is as durable as it was
        # (it survives a process crash), and fsyncing a large log made a restart seconds slower.
        # Nothing is claimed synced (synced_bytes 0, the group commit starts at the log start),
        # so the first sync round after open covers it.

        if self._log_start_offset > self._log_end_offset:
            # The checkpoint survived but the data it refers to did not (unflushed data lost
            # with the machine): start empty at the checkpointed offset.
            for seg in self._segments:
                seg.delete()
            self._segments, self._bases, self._size_bytes = [], [], 0
            self._add_segment(Segment.create(self.directory, self._log_start_offset))
            self._log_end_offset = self._log_start_offset
            fsync_dir(self.directory)
        else:
            self._delete_segments_below(self._log_start_offset)

    def _load_segments(self, bases: list[int], clean: bool) -> None:
        """Open the segments in order. After a clean shutdown every segment is trusted (indexes
        loaded, nothing scanned). Otherwise each segment at or past the recovery point is
        CRC-scanned and cut after its clean prefix, and the first segment that does not reach
        the next one's base offset (a lost tail, a bad frame) ends the log: later segments are
        removed, so no read can land in a hole."""
        interval = self.config.index_interval_bytes
        recovery_point = -1 if clean else (self._recovery.checkpointed or -1)
        for i, base in enumerate(bases):
            seg = Segment.open_existing(self.directory, base)
            last = i == len(bases) - 1
            next_base = None if last else bases[i + 1]
            trusted = clean or (next_base is not None and next_base <= recovery_point)
            if trusted and seg.size_bytes and not seg.load_sealed(interval) and last:
                trusted = False  # its index does not match the file: it changed after the close
            if not trusted:
                self.recovery_scanned_segments += 1
                self.recovery_truncated_bytes += seg.recover(interval)
            if last or seg.end_offset == next_base:
                if not last and not trusted:
                    seg.seal()  # rebuilt from the scan: its index files are a cache
                self._add_segment(seg)
                continue
            # A hole: this segment ends before the next begins. Cut the log here.
            if trusted:  # below the recovery point, damaged anyway: scan it to find the cut
                self.recovery_truncated_bytes += seg.recover(interval)
            later = bases[i + 1 :]
            for later_base in later:
                doomed = Segment.open_existing(self.directory, later_base)
                self.recovery_truncated_bytes += doomed.size_bytes
                doomed.delete()
            fsync_dir(self.directory)
            self.recovery_lost_segments = len(later)
            self._add_segment(seg)
            break
        active = self._active
        for path in (active.offset_index_path, active.time_index_path):
            with contextlib.suppress(FileNotFoundError):
                _unlink(path)  # the active segment's index lives in memory only
        if self.recovery_truncated_bytes:
            self._recovery.lower_to(active.end_offset)

    def _add_segment(self, seg: Segment) -> None:
        with self._lock:
            self._segments.append(seg)
            self._bases.append(seg.base_offset)
            self._size_bytes += seg.size_bytes

    # -- appending ---------------------------------------------------------------------

    def append(
        self,
        payload: bytes | memoryview | pa.Buffer,
        *,
        record_count: int,
        first_timestamp_ms: int,
        max_timestamp_ms: int,
        attributes: int = 0,
        leader_epoch: int = 0,
        producer_id: int = NO_PRODUCER,
        producer_epoch: int = NO_PRODUCER,
        sequence: int = NO_PRODUCER,
    ) -> int:
        """Append one batch; returns its base offset. A batch of an idempotent producer carries
        its ``(producer_id, producer_epoch, sequence)`` and is recorded in ``producer_state``."""
        self._check_open()
        view = memoryview(payload).cast("B") if not isinstance(payload, pa.Buffer) else payload
        length = view.nbytes if isinstance(view, memoryview) else view.size
        if length % 8:
            # Frames must stay 8-byte aligned so Arrow can read the payload in place.
            raise InvalidRecordBatch(f"payload length {length} is not a multiple of 8")
        if record_count < 1:
            raise ValueError(f"record_count must be >= 1, got {record_count}")
        base = self._log_end_offset
        header = pack_header(
            view,
            base_offset=base,
            record_count=record_count,
            first_timestamp_ms=first_timestamp_ms,
            max_timestamp_ms=max_timestamp_ms,
            attributes=attributes,
            leader_epoch=leader_epoch,
            producer_id=producer_id,
            producer_epoch=producer_epoch,
            sequence=sequence,
        )
        self._write_frame([header, view], len(header) + length, header)
        if producer_id != NO_PRODUCER:
            append_time = max_timestamp_ms if attributes & ATTR_LOG_APPEND_TIME else -1
            self.producer_state.record(
                producer_id, producer_epoch, sequence, base, record_count, append_time, self._clock_ms()
            )
        return base

    def append_frames(self, frames: bytes | memoryview | pa.Buffer) -> int:
        """Append already-framed batches verbatim (replication); returns the new log end offset.

        All frames are checked first (CRC, offsets continuing at the log end), so a bad input
        appends nothing.
        """
        self._check_open()
        view = memoryview(frames).cast("B")
        expected = self._log_end_offset
        spans = []
        pos = 0
        for header, _payload in iter_frames(view, verify=True):
            if header.base_offset != expected:
                raise CorruptBatch(
                    f"frame at byte {pos} has base offset {header.base_offset}, expected {expected}"
                )
            if header.payload_length % 8:
                raise InvalidRecordBatch(f"payload length {header.payload_length} is not a multiple of 8")
            spans.append((pos, header))
            expected = header.next_offset
            pos += header.frame_length
        now = self._clock_ms()
        for pos, header in spans:
            self._write_frame([view[pos : pos + header.frame_length]], header.frame_length, header)
            self.producer_state.update(header, now)  # the leader's producers, as it stored them
        return self._log_end_offset

    def _write_frame(self, parts: list, frame_length: int, header_or_bytes) -> None:
        header = unpack_header(header_or_bytes) if isinstance(header_or_bytes, bytes) else header_or_bytes
        try:
            self._maybe_roll(frame_length)
            seg = self._active
            pos = seg.write(parts, frame_length)
        except OSError as exc:
            if exc.errno in DISK_FULL_ERRNOS:
                raise StorageFull(
                    f"{self.directory}: no space left on the device ({exc.strerror}); nothing of this "
                    f"batch was kept. Free space (retention, delete_records, another disk) and retry"
                ) from None
            raise self._fail(exc) from None  # EIO, EROFS, ...: the disk is not to be trusted
        with self._lock:
            seg.note_batch(pos, header, self.config.index_interval_bytes)
            self._log_end_offset = header.next_offset
            self._size_bytes += frame_length
        if seg.first_append_ms is None:
            seg.first_append_ms = self._clock_ms()

    def _maybe_roll(self, frame_length: int) -> None:
        seg = self._active
        if seg.size_bytes == 0:
            return
        too_big = seg.size_bytes + frame_length > self.config.segment_bytes
        too_old = (
            seg.first_append_ms is not None
            and self._clock_ms() - seg.first_append_ms > self.config.segment_ms
        )
        if too_big or too_old:
            self._roll()

    def _roll(self) -> None:
        self._active.seal()
        seg = Segment.create(self.directory, self._log_end_offset)
        self._add_segment(seg)
        with self._lock:
            self._dir_dirty = True  # the next fsync round makes the new file's name durable
        # The sealed segment is fsynced off the append path, then becomes the recovery point.
        self._recovery.advance_to(seg.base_offset)
        if self._producer_state_loaded:
            self._snapshot_producers()  # an open after a crash rescans only the new segment

    # -- reading -----------------------------------------------------------------------

    def _check_offset(self, offset: int) -> None:
        if not self._log_start_offset <= offset <= self._log_end_offset:
            raise LogOffsetOutOfRange(offset, self._log_start_offset, self._log_end_offset)

    def read(self, offset: int, max_bytes: int, *, max_offset: int | None = None) -> list[pa.Buffer]:
        """Whole frames from the batch holding ``offset`` on, as zero-copy slices of the maps.

        Stops before exceeding ``max_bytes`` (but returns at least one frame if there is one),
        before the first frame whose last offset is >= ``max_offset``, and before a frame that
        fails its CRC; if that is the first frame, CorruptBatch is raised. Contiguous frames of
        one segment come back as one buffer.
        """
        self._check_open()
        self._check_offset(offset)
        out: list[pa.Buffer] = []
        total = 0
        i = bisect_right(self._bases, offset) - 1
        while i < len(self._segments) and offset < self._log_end_offset:
            seg = self._segments[i]
            if offset >= seg.end_offset:
                if out:
                    break
                raise CorruptBatch(f"{seg.path}: offset {offset} lies in a damaged region of the segment")
            try:
                pos, header = seg.find_batch(offset)
            except CorruptBatch:
                if out:
                    break
                raise
            buf = seg.buffer()
            view = seg.view()
            run_start = pos
            stop = False
            while True:
                if max_offset is not None and header.next_offset - 1 >= max_offset:
                    stop = True
                    break
                if (out or pos > run_start) and total + header.frame_length > max_bytes:
                    stop = True
                    break
                if not frame_crc_ok(view, pos, header):
                    if not out and pos == run_start:
                        raise CorruptBatch(
                            f"{seg.path}: CRC mismatch in batch at byte {pos} (offset {offset})"
                        )
                    stop = True  # return the good frames; the next read starting here raises
                    break
                total += header.frame_length
                pos += header.frame_length
                offset = header.next_offset
                if pos >= seg.size_bytes:
                    break
                try:
                    header = unpack_header(view, pos)
                except CorruptBatch:
                    stop = True
                    break
                if header.base_offset != offset:
                    stop = True  # a broken chain; reading from ``offset`` will raise
                    break
            if pos > run_start:
                out.append(buf.slice(run_start, pos - run_start))
            if stop:
                break
            i += 1
        return out

    def offset_for_timestamp(self, timestamp_ms: int) -> int | None:
        """The first offset (>= log start) whose record timestamp is >= ``timestamp_ms``."""
        self._check_open()
        start = self._log_start_offset
        for seg in self._segments:
            if seg.max_timestamp_ms < timestamp_ms or seg.end_offset <= start:
                continue
            pos = seg.index.timestamp_scan_position(timestamp_ms)
            if seg.base_offset <= start:
                pos = max(pos, seg.find_batch(start)[0])
            found = self._scan_for_timestamp(seg, pos, timestamp_ms, start)
            if found is not None:
                return found
        return None

    def _scan_for_timestamp(self, seg: Segment, pos: int, timestamp_ms: int, start: int) -> int | None:
        view = seg.view()
        while pos < seg.size_bytes:
            header = unpack_header(view, pos)
            if header.max_timestamp_ms >= timestamp_ms and header.next_offset > start:
                if not frame_crc_ok(view, pos, header):
                    raise CorruptBatch(f"{seg.path}: CRC mismatch in batch at byte {pos}")
                skip = max(0, start - header.base_offset)
                if header.log_append_time:  # every record carries the batch's max timestamp
                    return header.base_offset + skip
                payload = seg.buffer().slice(pos + header.header_size, header.payload_length)
                column = decode_record_batch(payload).column("timestamp_ms").slice(skip)
                row = pc.index(pc.greater_equal(column, timestamp_ms), True).as_py()
                if row >= 0:
                    return header.base_offset + skip + row
            pos += header.frame_length
        return None

    # -- log start, retention, truncation ----------------------------------------------

    def delete_records(self, before_offset: int) -> int:
        """Move the log start offset up to ``before_offset`` (never back); returns the log start."""
        self._check_open()
        if before_offset > self._log_end_offset:
            raise LogOffsetOutOfRange(before_offset, self._log_start_offset, self._log_end_offset)
        if before_offset > self._log_start_offset:
            self._move_log_start(before_offset, self._segments_wholly_below(before_offset))
        return self._log_start_offset

    def _move_log_start(self, new_start: int, doomed: list[Segment]) -> None:
        """Checkpoint ``new_start``, then delete ``doomed`` (segments wholly below it): a deleted
        segment that comes back after a crash lies below the checkpoint and goes again on open.
        On a full disk the checkpoint cannot be written, and deleting is what frees space, so it
        must not need to write first: unlink, make the unlinks durable (a directory fsync needs
        no space), then checkpoint if there is room now (else the first remaining segment's
        base is the log start on open: the same offset)."""
        try:
            write_log_start_offset(self.directory, new_start)
        except OSError as exc:
            if exc.errno not in DISK_FULL_ERRNOS:
                raise
            self._log_start_offset = new_start
            self._remove_segments(doomed)
            fsync_dir(self.directory)
            with contextlib.suppress(OSError):
                write_log_start_offset(self.directory, new_start)
            return
        self._log_start_offset = new_start
        self._remove_segments(doomed)

    def _segments_wholly_below(self, offset: int) -> list[Segment]:
        """Segments holding only offsets below ``offset`` (rolling first if that is all of them)."""
        if self._active.size_bytes and self._active.end_offset <= offset:
            self._roll()
        return [s for s in self._segments[:-1] if s.end_offset <= offset]

    def _delete_segments_below(self, offset: int) -> None:
        self._remove_segments(self._segments_wholly_below(offset))

    def _remove_segments(self, doomed: list[Segment]) -> None:
        if not doomed:
            return
        gone = {id(s) for s in doomed}
        with self._lock:
            self._segments = [s for s in self._segments if id(s) not in gone]
            self._bases = [s.base_offset for s in self._segments]
            self._size_bytes -= sum(s.size_bytes for s in doomed)
        for seg in doomed:
            seg.delete()
        # No directory fsync needed: if an unlink is lost in a crash the segment lies below the
        # (fsynced) log start checkpoint and is deleted again on open.

    def apply_retention(self, max_offset: int | None = None) -> int:
        """Delete old sealed segments by retention_ms / retention_bytes; returns how many.

        ``max_offset`` (the partition's high watermark) caps it: a segment holding any offset at
        or past it stays, so retention never removes a record before every in-sync replica
        has it (a follower that lost its copy could otherwise not catch up)."""
        self._check_open()
        now = self._clock_ms()
        retention_ms, retention_bytes = self.config.retention_ms, self.config.retention_bytes
        size = self._size_bytes
        doomed = []
        for seg in self._segments[:-1]:  # never the active one
            if max_offset is not None and seg.end_offset > max_offset:
                break
            by_time = retention_ms >= 0 and now - seg.max_timestamp_ms > retention_ms
            by_size = retention_bytes >= 0 and size - seg.size_bytes >= retention_bytes
            if not (by_time or by_size):
                break  # deletion is a prefix: the log start must stay contiguous
            doomed.append(seg)
            size -= seg.size_bytes
        if not doomed:
            return 0
        new_start = self._segments[len(doomed)].base_offset
        if new_start > self._log_start_offset:
            self._move_log_start(new_start, doomed)
        else:
            self._remove_segments(doomed)
        return len(doomed)

    def truncate_to(self, offset: int) -> None:
        """Remove every batch that holds an offset >= ``offset`` (follower truncation).

        Truncation is by whole batches: if ``offset`` falls inside a batch the whole batch
        goes, so the new log end offset can be below ``offset``.
        """
        self._check_open()
        if offset >= self._log_end_offset:
            return
        if offset < self._log_start_offset:
            raise LogOffsetOutOfRange(offset, self._log_start_offset, self._log_end_offset)
        self._recovery.lower_to(offset)  # before a byte goes: recovery must not trust what follows
        i = bisect_right(self._bases, offset) - 1
        seg = self._segments[i]
        if offset < seg.end_offset:
            cut, header = seg.find_batch(offset)
            new_end = header.base_offset
        else:
            cut, new_end = seg.size_bytes, seg.end_offset
        later = self._segments[i + 1 :]
        for snapshot in list_snapshots(self.directory):
            if snapshot > new_end:  # its batches go now (made durable by the directory fsync below)
                delete_snapshot(self.directory, snapshot)
        with self._lock:  # the fsync thread must not dup an fd we are about to close or replace
            self._truncations += 1
            del self._segments[i + 1 :]
            del self._bases[i + 1 :]
            self._size_bytes -= sum(s.size_bytes for s in later) + (seg.size_bytes - cut)
            seg.truncate(cut)
            seg.end_offset = new_end
            self._log_end_offset = new_end
        for s in later:
            s.delete()
        seg.recompute_metadata(self.config.index_interval_bytes)
        if seg.size_bytes and seg.first_append_ms is None:
            seg.first_append_ms = self._clock_ms()
        fsync_dir(self.directory)  # truncated-away segments must not come back after a crash
        self._group.reset_to(new_end)
        if new_end < self._log_start_offset:
            # ``offset`` was the log start, inside a batch: nothing is left; start empty there.
            with self._lock:
                doomed, self._segments, self._bases, self._size_bytes = self._segments, [], [], 0
                self._log_end_offset = offset
            for s in doomed:
                s.delete()
            self._add_segment(Segment.create(self.directory, offset))
            fsync_dir(self.directory)
        self._load_producer_state(clean=False)  # the state of the batches that are left

    # -- producer state ----------------------------------------------------------------

    def _load_producer_state(self, clean: bool) -> int | None:
        """Rebuild ``producer_state`` for the log as it is: the newest readable snapshot at or
        below the log end, then the producer of every batch after it (headers only: recovery
        has CRC-checked what lies past the recovery point). Returns the offset of the snapshot
        used, None when there was none."""
        end = self._log_end_offset
        offsets = list_snapshots(self.directory)
        for offset in offsets:
            if offset > end:  # it describes batches that are gone (cut by recovery, truncated)
                delete_snapshot(self.directory, offset)
        table = loaded_at = None
        for offset in reversed([o for o in offsets if o <= end]):
            table = read_snapshot(self.directory, offset)
            if table is not None:
                loaded_at = offset
                break
            delete_snapshot(self.directory, offset)  # damaged
        if table is None:
            table = ProducerStateTable()
        if loaded_at is not None:
            start = loaded_at
        elif clean and not offsets:
            # A clean close leaves a snapshot at the log end; a clean directory without any was
            # closed by a raykafka from before producer state, whose frames carry no producer.
            start = end
        else:
            start = self._log_start_offset
        self.producer_state = table
        self.producer_scanned_batches = self._scan_producers(max(start, self._log_start_offset))
        self._producer_state_loaded = True
        return loaded_at

    def _scan_producers(self, start: int) -> int:
        """Record the producer of every batch holding an offset >= ``start``; returns how many
        batches were read. A batch found so counts as seen now (for expiry)."""
        now = self._clock_ms()
        batches = 0
        i = max(bisect_right(self._bases, start) - 1, 0)
        for seg in self._segments[i:]:
            if seg.end_offset <= start or seg.size_bytes == 0:
                continue
            try:
                pos = seg.find_batch(start)[0] if seg.base_offset < start else 0
                view = seg.view()
                while pos < seg.size_bytes:
                    header = unpack_header(view, pos)
                    self.producer_state.update(header, now)
                    batches += 1
                    pos += header.frame_length
            except CorruptBatch:
                continue  # damaged below the recovery point (bit rot): reads there raise too
        return batches

    def _snapshot_producers(self) -> bool:
        """Write ``producer_state`` as the snapshot at the log end. On a full disk nothing is
        written (an open then rescans from an older snapshot) and False is returned."""
        try:
            write_snapshot(self.directory, self._log_end_offset, self.producer_state)
        except OSError as exc:
            if exc.errno not in DISK_FULL_ERRNOS:
                raise
            return False
        return True

    def expire_producers(self) -> int:
        """Forget the producers none of whose batches this log stored for
        ``producer_id_expiration_ms`` (Kafka's ``producer.id.expiration.ms``, KIP-854);
        returns how many."""
        return self.producer_state.expire(self._clock_ms(), self.config.producer_id_expiration_ms)

    # -- flush policy and group commit -------------------------------------------------

    def flush_due(self) -> bool:
        """Whether the flush policy (flush_messages / flush_ms) asks for an fsync now."""
        pending = self._log_end_offset - self._group.synced_offset
        if pending <= 0:
            return False
        cfg = self.config
        if cfg.flush_messages is not None and pending >= cfg.flush_messages:
            return True
        return cfg.flush_ms is not None and self._clock_ms() - self._last_flush_ms >= cfg.flush_ms

    def sync_through(self, offset: int) -> None:
        """Block until every offset below ``offset`` is fsynced. Any thread; fsyncs are shared."""
        self._group.sync_through(offset, lambda: self._log_end_offset)

    def flush(self) -> None:
        self.sync_through(self._log_end_offset)

    def _sync_round(self) -> int:
        """One group-commit round: fsync every file with unsynced bytes, then the directory."""
        with self._lock:
            if self._failure is not None:
                raise self._failure
            if self._closed:
                raise StorageError(f"log {self.directory} is closed")
            target = self._log_end_offset
            truncations = self._truncations
            # dup: the owner may close a segment (retention) while we fsync it
            todo = [
                (seg, os.dup(seg.fd), seg.size_bytes)
                for seg in self._segments
                if seg.size_bytes > seg.synced_bytes
            ]
            dir_dirty, self._dir_dirty = self._dir_dirty, False
        fsyncs = 0
        try:
            for seg, fd, _size in todo:
                if faults.ENABLED:
                    faults.fsync(fd, seg.path)
                else:
                    os.fsync(fd)
                fsyncs += 1
            if dir_dirty:
                fsync_dir(self.directory)
                fsyncs += 1
        except OSError as exc:
            # Never retried: after a failed fsync the kernel may have dropped the dirty pages and
            # report success next time. The log is failed for good; its replica must be replaced.
            raise self._fail(exc) from None
        except BaseException:
            with self._lock:
                self._dir_dirty = self._dir_dirty or dir_dirty
            raise
        finally:
            for _seg, fd, _size in todo:
                os.close(fd)
            with self._lock:
                self.fsync_count += fsyncs
        with self._lock:
            if truncations == self._truncations:
                for seg, _fd, size in todo:
                    seg.synced_bytes = max(seg.synced_bytes, size)
            self._last_flush_ms = self._clock_ms()
        return target

    # -- configuration and lifetime ----------------------------------------------------

    def update_config(self, config: LogConfig) -> None:
        """Use ``config`` from now on (rolls and retention consult it on their next run)."""
        self.config = config

    def _check_open(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._closed:
            raise StorageError(f"log {self.directory} is closed")

    @property
    def failure(self) -> LogDirFailed | None:
        """Why the log failed for good (a disk error), None while it is healthy."""
        return self._failure

    def _fail(self, exc: OSError) -> LogDirFailed:
        """Mark the log failed (the first failure is kept) and return the error to raise."""
        with self._lock:
            if self._failure is None:
                self._failure = LogDirFailed(
                    f"{self.directory}: the disk failed ({exc.strerror or exc}; errno {exc.errno}); this "
                    f"replica takes no more appends, syncs or reads until it is restarted on a healthy disk"
                )
            return self._failure

    def close(self) -> None:
        """Shut down cleanly (``_close_cleanly``). On a failing or read-only disk that cannot be
        done: let go of the files and raise LogDirFailed (the next open recovers as after a crash)."""
        try:
            self._close_cleanly()
        except (OSError, LogDirFailed) as exc:
            failure = self._fail(exc) if isinstance(exc, OSError) else exc
            self.destroy(remove_files=False)
            raise failure from None

    def _close_cleanly(self) -> None:
        """Fsync what is pending (a clean shutdown loses nothing), checkpoint the recovery point,
        write the active segment's index, the producer-state snapshot and the clean-shutdown
        marker, close the files. The next open then scans nothing."""
        if self._closed:
            return
        if self._failure is not None:  # nothing can be made durable: just let go of the files
            self.destroy(remove_files=False)
            return
        self.flush()
        self._recovery.close()
        self._recovery.write_now(self._log_end_offset)
        self._active.seal()
        # The marker promises a snapshot at the log end (see _load_producer_state): none on a
        # full disk, and the next open rescans.
        if self._snapshot_producers():
            atomic_write(os.path.join(self.directory, CLEAN_SHUTDOWN_FILE), b"")
        with self._lock:
            self._closed = True
            segments, self._segments = self._segments, []
            for seg in segments:
                seg.close()

    def destroy(self, remove_files: bool = True) -> None:
        """Close without flushing and remove the directory with everything in it (or, with
        ``remove_files=False``, only close)."""
        self._recovery.close()
        with self._lock:
            self._closed = True
            segments, self._segments = self._segments, []
            for seg in segments:
                seg.close()
        if remove_files:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> PartitionLog:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"PartitionLog({self.directory!r}, start={self._log_start_offset}, end={self._log_end_offset}, "
            f"segments={len(self._segments)}, bytes={self._size_bytes})"
        )
