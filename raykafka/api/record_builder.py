"""One partition's open batch on the client: records in flat buffers, appended by any thread.

A ``RecordBuilder`` collects one partition's not-yet-sent records in flat buffers (a
``bytearray`` of values plus an ``array('i')`` of offsets, the same for keys, an
``array('q')`` of timestamps) so that ``batching.to_record_batch`` turns them into a
RECORD_SCHEMA ``RecordBatch`` with ``pa.Array.from_buffers`` -- no Python object per field.
``nbytes`` counts what the records add to the encoded batch (key, value, headers and their
Arrow overheads, as ``storage.records.record_sizes``); a builder holding a record takes
another only while ``nbytes`` stays within ``batch_size``, which the producer sets so that
the encoded batch fits both its ``batch_size`` and the topic's ``max.message.bytes``.

Every builder has its own lock, so ``Producer.send``'s fast path appends without the
producer's lock; ``seal()`` (taken by whoever closes the batch) makes later appends refuse.
The buffers are read (``to_record_batch``, zero-copy) only once sealed: the compiled twin
grows them in place and must not move a buffer someone holds a view of.

``append_value`` (which also makes the record's future) is the per-message hot path: with the compiled twin
(``_record_builder.pyx``, built by ``setup.py`` when a C compiler is there) it costs
0.3-0.5 us in a Python loop, against 1.2-1.7 us for ``PyRecordBuilder`` below, the
pure-Python implementation: used when the extension is missing or
``RAYKAFKA_NO_EXTENSIONS=1`` is set, and the reference the twin must match
(tests/test_record_builder.py runs the same checks on both). Appending is written once, in
``append_fields``, which the Python class calls for every record and the compiled one for
all but its unkeyed fast case.
"""

from __future__ import annotations

import os
import threading
import time
from array import array

# RECORD_OVERHEAD_BYTES: bytes counted per record on top of its key, value and headers (the
# Arrow offsets and timestamp it adds to a batch; the compiled twin imports it from here).
from raykafka.storage.records import RECORD_OVERHEAD_BYTES, header_bytes

#: "No limit" for a builder's batch_size and max_record_bytes.
UNLIMITED = 1 << 62
#: The largest value in an Arrow binary array's 32-bit offsets: append_value refuses beyond it.
MAX_OFFSET = (1 << 31) - 1


def append_fields(builder, value: bytes, key: bytes | None, timestamp_ms: int, headers: dict | None) -> int:
    """Add one record to ``builder``'s buffers (the caller holds its lock); returns its index.

    All or nothing: an exception part-way -- a KeyboardInterrupt raised in the calling thread
    between two of these steps -- takes back what was added, or the next record would take
    this one's index and the buffers would no longer line up with ``count``."""
    index = builder.count
    try:
        builder.values += value
        builder.value_offsets.append(len(builder.values))
        if key is not None or builder.keys is not None:
            if builder.keys is None:
                builder.keys = bytearray()
                builder.key_offsets = array("i", [0] * (index + 1))
                builder.key_valid = bytearray(index)
            if key is not None:
                builder.keys += key
            builder.key_offsets.append(len(builder.keys))
            builder.key_valid.append(key is not None)
        builder.timestamps.append(timestamp_ms)
        size = len(value) + (len(key) if key is not None else 0) + RECORD_OVERHEAD_BYTES
        if headers:
            size += header_bytes(headers)
            if builder.headers is None:
                builder.headers = {}
            builder.headers[index] = headers
    except BaseException:
        _truncate(builder, index)
        raise
    builder.count = index + 1
    builder.nbytes += size
    return index


def _truncate(builder, count: int) -> None:
    """Put ``builder``'s buffers back to their first ``count`` records. The offsets say where
    each buffer ended (nothing to remember beforehand, so appending pays nothing for this)."""
    del builder.values[builder.value_offsets[count] :]
    del builder.value_offsets[count + 1 :]
    del builder.timestamps[count:]
    if builder.key_offsets is None or builder.key_valid is None:
        builder.keys = builder.key_offsets = builder.key_valid = None  # interrupted creating them
    elif builder.keys is not None:  # (if created just now: every earlier record keyless, as before)
        del builder.keys[builder.key_offsets[count] :]
        del builder.key_offsets[count + 1 :]
        del builder.key_valid[count:]
    if builder.headers is not None:
        builder.headers.pop(count, None)


class PyRecordFutureBase:
    """The two fields of one record's future (the producer's ``_RecordFuture`` adds the methods)."""

    __slots__ = ("_batch", "_index")


class PyRecordBuilder:
    """The pure-Python ``RecordBuilder`` (see the module docstring)."""

    __slots__ = (
        "_lock",
        "batch_size",
        "count",
        "future_type",
        "headers",
        "key_offsets",
        "key_valid",
        "keys",
        "max_record_bytes",
        "nbytes",
        "result",
        "sealed",
        "timestamps",
        "value_offsets",
        "values",
    )

    def __init__(
        self,
        result=None,
        batch_size: int = UNLIMITED,
        max_record_bytes: int = UNLIMITED,
        future_type: type = PyRecordFutureBase,
    ) -> None:
        self.values = bytearray()
        self.value_offsets = array("i", [0])
        self.keys: bytearray | None = None  # created at the first key
        self.key_offsets: array | None = None
        self.key_valid: bytearray | None = None
        self.timestamps = array("q")
        self.headers: dict[int, dict[str, bytes]] | None = None
        self.count = 0
        self.nbytes = 0
        self.sealed = False
        self.result = result  # the producer's BatchResult for this batch
        self.batch_size = batch_size
        self.max_record_bytes = max_record_bytes
        if not issubclass(future_type, PyRecordFutureBase):
            raise TypeError(f"future_type must subclass RecordFutureBase, got {future_type!r}")
        self.future_type = future_type  # append_value returns one
        self._lock = threading.Lock()

    def append(self, value: bytes, key: bytes | None, timestamp_ms: int, headers: dict | None) -> int:
        """Add any record (checked by the caller); returns its index in the batch."""
        with self._lock:
            if self.sealed:
                raise RuntimeError("append to a sealed RecordBuilder")
            return append_fields(self, value, key, timestamp_ms, headers)

    def append_value(self, value: bytes):
        """Add a bytes value without key or headers, stamped now; returns its future (a
        ``future_type`` with ``_batch`` = ``result`` and ``_index``), or None when this builder
        does not take it (sealed, the value would take ``nbytes`` past ``batch_size`` -- a
        first record always fits --, the value over ``max_record_bytes`` or not bytes): the
        caller then takes the general path."""
        if type(value) is not bytes or len(value) > self.max_record_bytes:
            return None
        stamp = time.time_ns() // 1_000_000
        lock = self._lock
        lock.acquire()
        try:
            if (
                self.sealed
                or (self.count and self.nbytes + len(value) + RECORD_OVERHEAD_BYTES > self.batch_size)
                or len(self.values) + len(value) > MAX_OFFSET
            ):
                return None
            index = append_fields(self, value, None, stamp, None)
        finally:
            lock.release()
        future = object.__new__(self.future_type)
        future._batch = self.result
        future._index = index
        return future

    def seal(self) -> None:
        """Take no more records: every later append_value returns None."""
        with self._lock:
            self.sealed = True


def _compiled_twin():
    if os.environ.get("RAYKAFKA_NO_EXTENSIONS"):
        return None
    try:
        from raykafka.api import _record_builder
    except ImportError:  # installed without a C compiler: the pure-Python builder serves
        return None
    return _record_builder


_twin = _compiled_twin()
#: What the producer uses: the compiled twins when they were built, else the Python ones.
RecordBuilder: type = _twin.RecordBuilder if _twin else PyRecordBuilder
RecordFutureBase: type = _twin.RecordFutureBase if _twin else PyRecordFutureBase
COMPILED = _twin is not None
