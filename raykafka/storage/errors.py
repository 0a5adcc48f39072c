"""Exceptions raised by the storage engine that are not about a single frame.

Frame-level damage is :class:`raykafka.storage.framing.CorruptBatch` and payload-level
damage is :class:`raykafka.storage.records.InvalidRecordBatch`; both live next to the
code that detects them. This module owns the log-level errors.
"""

from __future__ import annotations


class StorageError(Exception):
    """A log-level failure: an unusable directory, a broken invariant, a bad argument."""


class LogOffsetOutOfRange(StorageError):
    """An offset outside ``[log_start_offset, log_end_offset]``.

    Kafka's OFFSET_OUT_OF_RANGE: the caller (a consumer) decides whether to reset to the
    start or the end, so both bounds travel with the error.
    """

    def __init__(self, offset: int, log_start_offset: int, log_end_offset: int) -> None:
        super().__init__(f"offset {offset} is outside the log [{log_start_offset}, {log_end_offset}]")
        self.offset = offset
        self.log_start_offset = log_start_offset
        self.log_end_offset = log_end_offset

    def __reduce__(self):  # keep the three fields when pickled (e.g. across Ray)
        return (type(self), (self.offset, self.log_start_offset, self.log_end_offset))


class LogDirFailed(StorageError):
    """The log's disk failed (an fsync or write reported EIO, the file system went read-only).
    Final for this process: a failed fsync is never retried into a false success (Linux may
    report a lost write once and then succeed), so the log refuses every later append, sync
    and read. Its replica must be replaced by another in-sync one (Kafka marks the log
    directory offline the same way)."""


class StorageFull(StorageError):
    """The device holding the log is full (ENOSPC, EDQUOT). Retriable: whatever was partly
    written has been cut back, the log is as it was before the call, and appends work again
    once space is freed (retention can free it: deleting segments needs no space)."""
