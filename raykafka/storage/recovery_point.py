"""The recovery point: the offset below which a log is known to be on disk, checkpointed.

Kafka flushes a segment when it rolls, off the append path, and then moves the log's
recovery point (``recovery-point-offset-checkpoint``); after an unclean stop only what
lies at or past the recovery point is CRC-scanned. Same here: ``advance_to(offset)`` asks
a background thread to fsync everything below ``offset`` (the log's group commit, shared
with every other fsync) and then to write ``recovery-point.checkpoint`` atomically. A
truncation below the checkpoint lowers it first, synchronously (``lower_to``), so
recovery never trusts data written after a truncation. Requests coalesce: one thread per
log, at most one round at a time, always for the newest offset asked.

A failed fsync is never retried into a false success: the error is kept, later rounds
are refused, and ``failure`` reports it (the log directory has failed). A disk error met by
the thread itself (a checkpoint that cannot be written: a read-only disk) is handed to
``on_disk_error`` so the log fails as it would on its own thread. A full disk is not a disk
error: the checkpoint stays where it was (recovery after a crash only scans more) and the
next ``advance_to`` tries again.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable

from .checkpoint import RECOVERY_POINT_CHECKPOINT, read_offset_checkpoint, write_offset_checkpoint


class RecoveryPoint:
    """The checkpointed recovery point of one log directory and the thread that moves it."""

    def __init__(
        self,
        directory: str,
        sync_through: Callable[[int], None],
        on_disk_error: Callable[[OSError], object] | None = None,
    ) -> None:
        self.directory = directory
        self._sync_through = sync_through
        self._on_disk_error = on_disk_error
        self._cond = threading.Condition()
        self.checkpointed = read_offset_checkpoint(directory, RECOVERY_POINT_CHECKPOINT)
        self._wanted = -1
        self._full_at = -1  # a round whose checkpoint found the disk full: wait for a newer one
        self._running = False
        self._closed = False
        self.failure: BaseException | None = None
        self._thread: threading.Thread | None = None

    def advance_to(self, offset: int) -> None:
        """Make every offset below ``offset`` durable, then checkpoint it (in the background)."""
        with self._cond:
            if self._closed or self.failure is not None or offset <= self._wanted:
                return
            self._wanted = offset
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"log-recovery-point-{self.directory}", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and max(self.checkpointed or -1, self._full_at) >= self._wanted:
                    self._cond.wait()
                if self._closed:
                    return
                target = self._wanted
                self._running = True
            try:
                self._sync_through(target)
                with self._cond:  # a truncation may have lowered it meanwhile
                    if target <= self._wanted:
                        try:
                            write_offset_checkpoint(self.directory, RECOVERY_POINT_CHECKPOINT, target)
                            self.checkpointed = target
                        except OSError as exc:
                            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                                raise
                            self._full_at = target  # the data is on disk; only its checkpoint waits
            except BaseException as exc:  # an fsync failed: never claim it; the directory failed
                if isinstance(exc, OSError) and self._on_disk_error is not None:
                    self._on_disk_error(exc)
                with self._cond:
                    self.failure = exc
                    self._running = False
                    self._cond.notify_all()
                return
            with self._cond:
                self._running = False
                self._cond.notify_all()

    def lower_to(self, offset: int) -> None:
        """A truncation to ``offset``: the checkpoint must not name data written after it."""
        with self._cond:
            while self._running:
                self._cond.wait()
            self._wanted = min(self._wanted, offset)
            if self.checkpointed is not None and self.checkpointed > offset:
                write_offset_checkpoint(self.directory, RECOVERY_POINT_CHECKPOINT, offset)
                self.checkpointed = offset

    def write_now(self, offset: int) -> None:
        """Checkpoint ``offset``, already known durable (a clean close after its flush)."""
        with self._cond:
            while self._running:
                self._cond.wait()
            write_offset_checkpoint(self.directory, RECOVERY_POINT_CHECKPOINT, offset)
            self.checkpointed = offset

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
