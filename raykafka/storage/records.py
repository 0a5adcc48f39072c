"""The Arrow schema of stored records and the encoding of one batch of them.

A stored batch's payload is the Arrow IPC *encapsulated message* of one
``RecordBatch`` in :data:`RECORD_SCHEMA` -- no schema message, no end-of-stream
marker -- because the schema is fixed and known to every reader. Offsets, topic
and partition are not stored per record: offsets are ``base_offset + row``
(from the batch header), topic and partition are the log's identity.

Pure pyarrow; no Ray import (see docs/ARCHITECTURE.md, invariants).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

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


def largest_record_bytes(batch: pa.RecordBatch) -> int:
    """Bytes of the largest record's key + value (what ``max.message.bytes`` limits)."""
    sizes = pc.fill_null(pc.binary_length(batch.column("value")), 0)
    keys = batch.column("key")
    if keys.null_count < batch.num_rows:
        sizes = pc.add(sizes, pc.fill_null(pc.binary_length(keys), 0))
    return pc.max(sizes).as_py() or 0
