"""The Arrow schema of stored records and the encoding of one batch of them.

A stored batch's payload is the Arrow IPC *encapsulated message* of one
``RecordBatch`` in :data:`RECORD_SCHEMA` -- no schema message, no end-of-stream
marker -- because the schema is fixed and known to every reader. Offsets, topic
and partition are not stored per record: offsets are ``base_offset + row``
(from the batch header), topic and partition are the log's identity.

Pure pyarrow; no Ray import (see docs/ARCHITECTURE.md, invariants).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .arrays import int64_values

HEADERS_TYPE = pa.map_(pa.string(), pa.binary())

#: The record columns as stored. ``value`` may be null (a Kafka tombstone).
RECORD_SCHEMA = pa.schema(
    [
        pa.field("key", pa.binary()),
        pa.field("value", pa.binary()),
        pa.field("timestamp_ms", pa.int64(), nullable=False),
        pa.field("headers", HEADERS_TYPE),
    ]
)

#: The columns a consumer sees (``poll_batch`` / ``MessageStream.batches``).
CONSUMER_SCHEMA = pa.schema(
    [
        pa.field("topic", pa.string(), nullable=False),
        pa.field("partition", pa.int32(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("timestamp_ms", pa.int64(), nullable=False),
        pa.field("key", pa.binary()),
        pa.field("value", pa.binary()),
        pa.field("headers", HEADERS_TYPE),
    ]
)


class InvalidRecordBatch(ValueError):
    """A payload that is not one Arrow record batch in RECORD_SCHEMA."""


def encode_record_batch(batch: pa.RecordBatch) -> pa.Buffer:
    """Serialize ``batch`` (already in RECORD_SCHEMA) to its IPC message bytes."""
    if not batch.schema.equals(RECORD_SCHEMA):
        raise InvalidRecordBatch(f"record batch schema {batch.schema} is not RECORD_SCHEMA")
    return batch.serialize()


def decode_record_batch(payload: pa.Buffer | bytes | memoryview) -> pa.RecordBatch:
    """Decode one stored payload, zero-copy: the result's buffers point into ``payload``.

    Raises InvalidRecordBatch when the bytes are not a valid batch of the schema.
    """
    try:
        batch = pa.ipc.read_record_batch(pa.py_buffer(payload), RECORD_SCHEMA)
        batch.validate()
    except (pa.ArrowInvalid, pa.ArrowIOError, pa.ArrowTypeError, OSError) as exc:
        raise InvalidRecordBatch(f"payload is not an Arrow record batch of RECORD_SCHEMA: {exc}") from exc
    return batch


def binary_lengths(array: pa.BinaryArray) -> np.ndarray:
    """Each element's length in bytes (0 for nulls), read from the offsets buffer.

    numpy on the offsets instead of ``pyarrow.compute``: a compute kernel's first call in a
    process costs ~200 ms (the partition actor's first append paid it), and three kernels per
    batch cost more than this one pass.
    """
    n = len(array)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if array.null_count == n:
        return np.zeros(n, dtype=np.int64)
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32, count=array.offset + n + 1, offset=0)
    lengths = np.diff(offsets[array.offset :]).astype(np.int64)
    if array.null_count:  # a null's slot may span bytes (the format allows it): it counts 0
        bits = np.unpackbits(np.frombuffer(array.buffers()[0], dtype=np.uint8), bitorder="little")
        lengths[bits[array.offset : array.offset + n] == 0] = 0
    return lengths


def largest_record_bytes(batch: pa.RecordBatch) -> int:
    """Bytes of the largest record's key + value (what ``max.message.bytes`` limits)."""
    if batch.num_rows == 0:
        return 0
    sizes = binary_lengths(batch.column(1))
    keys = batch.column(0)
    if keys.null_count < batch.num_rows:
        sizes = sizes + binary_lengths(keys)
    return int(sizes.max())


def max_timestamp_ms(batch: pa.RecordBatch) -> int:
    """The batch's largest ``timestamp_ms`` (the column is non-nullable in RECORD_SCHEMA)."""
    stamps = batch.column(2)
    if stamps.null_count:
        raise InvalidRecordBatch("timestamp_ms has nulls; every record needs a timestamp")
    return int(int64_values(stamps).max())
