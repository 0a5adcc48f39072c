"""The Arrow schema of stored records and the encoding of one batch of them.

A stored batch's payload is the Arrow IPC *encapsulated message* of one
``RecordBatch`` in :data:`RECORD_SCHEMA` -- no schema message, no end-of-stream
marker -- because the schema is fixed and known to every reader. Offsets, topic
and partition are not stored per record: offsets are ``base_offset + row``
(from the batch header), topic and partition are the log's identity.

Every payload a partition takes is checked here before anything of it is used
(:func:`decode_record_batch`): one uncompressed record batch message of the schema, every
offset in range and in order (docs/ARCHITECTURE.md, invariants; Kafka's CVE-2022-34917 is the
anchor: a size a client declares is never allocated unchecked). :func:`record_sizes` and the
``*_OVERHEAD_BYTES`` bounds say how large a payload a set of records makes, so a producer
never builds a batch over ``max.message.bytes``.

Pure pyarrow; no Ray import (see docs/ARCHITECTURE.md, invariants).
"""

from __future__ import annotations

import struct

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
    """Decode one payload, zero-copy (the result's buffers point into ``payload``), after
    checking all of it: :func:`check_ipc_message` before pyarrow reads the body, then
    ``validate(full=True)`` (every offset in order and inside its data, UTF-8 header keys, map
    keys not null) and non-null timestamps. The one decoder of records: the partition actor at
    append, consumers, the log's timestamp lookup.

    Raises InvalidRecordBatch when the bytes are not a valid batch of the schema. It costs
    55-95 us for 10,000 records of 200 B (2.2 MB; 8 us before full validation), ~0.2 ms with
    a header each (UTF-8 checks); a numpy pass over the offsets measured no cheaper.
    """
    check_ipc_message(payload)
    try:
        batch = pa.ipc.read_record_batch(pa.py_buffer(payload), RECORD_SCHEMA)
        batch.validate(full=True)
    except (pa.ArrowException, OSError) as exc:
        raise InvalidRecordBatch(f"payload is not an Arrow record batch of RECORD_SCHEMA: {exc}") from exc
    if batch.column(2).null_count:
        raise InvalidRecordBatch("timestamp_ms has nulls; every record needs a timestamp")
    return batch


# -- the IPC message's metadata, read before pyarrow touches its body ---------------------------
#
# An encapsulated IPC message is 0xFFFFFFFF, an int32 metadata length, a flatbuffer ``Message``
# (Arrow's format/Message.fbs) and the body. Field numbers below are the flatbuffer slots.

_CONTINUATION = 0xFFFFFFFF
_MESSAGE_HEADER_TYPE, _MESSAGE_HEADER, _MESSAGE_CUSTOM_METADATA = 1, 2, 4
_HEADER_RECORD_BATCH = 3  # MessageHeader.RecordBatch
_RECORD_BATCH_COMPRESSION = 3  # RecordBatch.compression: a BodyCompression table when compressed


def check_ipc_message(payload: pa.Buffer | bytes | memoryview) -> None:
    """Refuse (InvalidRecordBatch) anything but one record batch message with an uncompressed
    body and no custom metadata, reading only its flatbuffer metadata, bounds-checked (~5 us).

    pyarrow decompresses a compressed body eagerly into a buffer of the size each compressed
    buffer *declares* (measured: a zstd body declaring 1 TiB grew the memory pool's peak by
    1 TiB before the decompressor failed), so such a body must never reach it: raykafka stores
    batches uncompressed until compression is built with a bounded decompressor. Custom
    metadata is refused too: a V4 message may name its codec there (Arrow 0.17's experimental
    compression)."""
    view = memoryview(payload)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    try:
        marker, meta_len = _PREFIX(view, 0)
        if marker != _CONTINUATION:
            raise InvalidRecordBatch("payload is not an encapsulated Arrow IPC message")
        if not 0 < meta_len <= len(view) - 8:
            raise InvalidRecordBatch(f"IPC metadata length {meta_len} is outside the payload")
        meta = view[8 : 8 + meta_len]
        (root,) = _U32(meta, 0)
        if _field(meta, root, _MESSAGE_CUSTOM_METADATA):
            raise InvalidRecordBatch("IPC message carries custom metadata; raykafka's batches have none")
        slot = _field(meta, root, _MESSAGE_HEADER_TYPE)
        header_type = _U8(meta, slot)[0] if slot else 0
        header = _field(meta, root, _MESSAGE_HEADER)
        if header_type != _HEADER_RECORD_BATCH or not header:
            raise InvalidRecordBatch(f"IPC message is not a record batch (header type {header_type})")
        if _field(meta, header + _U32(meta, header)[0], _RECORD_BATCH_COMPRESSION):
            raise InvalidRecordBatch(
                "the record batch has a compressed body; raykafka takes uncompressed batches only "
                "(compression is not built yet)"
            )
    except struct.error as exc:  # a read past the metadata's end
        raise InvalidRecordBatch(f"IPC metadata is malformed ({exc})") from None


_PREFIX = struct.Struct("<Ii").unpack_from
_U8 = struct.Struct("<B").unpack_from
_U16 = struct.Struct("<H").unpack_from
_U32 = struct.Struct("<I").unpack_from
_I32 = struct.Struct("<i").unpack_from


def _field(buf: memoryview, table: int, slot: int) -> int:
    """Where field ``slot`` of the flatbuffer table at ``table`` is; 0 when absent (a field is
    never at offset 0: the table's own vtable offset is there). Every read is bounds-checked:
    struct.error past the end, and here before the start (unpack_from counts negative
    positions from the end)."""
    vtable = table - _I32(buf, table)[0]
    entry = vtable + 4 + 2 * slot
    if table < 0 or vtable < 0:
        raise struct.error(f"flatbuffer table {table} or vtable {vtable} is before the metadata")
    if 4 + 2 * slot + 2 > _U16(buf, vtable)[0]:
        return 0
    offset = _U16(buf, entry)[0]
    return table + offset if offset else 0


#: The most an encoded batch holds besides its records' bytes and their per-record and
#: per-header overheads below: the IPC prefix (8 B), the flatbuffer metadata (472 B for
#: RECORD_SCHEMA, whatever the row count), and per body buffer the padding to 8 bytes, one
#: offset and one validity byte. A bound, not a guess: tests/storage/test_record_validation.py
#: checks it against encoded batches of every shape the producer builds.
BATCH_OVERHEAD_BYTES = 640
#: Per record, on top of its key, value and header bytes: the 4-byte offsets of key, value and
#: headers, the 8-byte timestamp and three validity bits (key, value, headers), rounded up.
RECORD_OVERHEAD_BYTES = 21
#: Per header, on top of its name (UTF-8) and value bytes: two 4-byte offsets, two validity bits.
HEADER_OVERHEAD_BYTES = 9


def header_bytes(headers: dict[str, bytes] | None) -> int:
    """What ``headers`` add to a record's size in a batch (names UTF-8, values, overheads)."""
    if not headers:
        return 0
    return sum(
        len(name.encode("utf-8", "surrogatepass")) + len(value) + HEADER_OVERHEAD_BYTES
        for name, value in headers.items()
    )


def record_sizes(batch: pa.RecordBatch) -> np.ndarray:
    """Each record's share of an encoded batch's bytes (int64): key, value and header bytes plus
    RECORD_OVERHEAD_BYTES and HEADER_OVERHEAD_BYTES per header. A batch's payload is at most
    ``BATCH_OVERHEAD_BYTES + record_sizes(batch).sum()`` when its arrays are compact (as the
    producer builds them); ``max.message.bytes`` caps that payload."""
    n = batch.num_rows
    sizes = _spans(batch.column(1)) + RECORD_OVERHEAD_BYTES
    keys = batch.column(0)
    if keys.null_count < n:
        sizes += _spans(keys)
    headers = batch.column(3)
    if n and headers.null_count < n:
        entries = _spans(headers.keys) + _spans(headers.items) + HEADER_OVERHEAD_BYTES
        ends = np.zeros(len(entries) + 1, dtype=np.int64)
        np.cumsum(entries, out=ends[1:])
        rows = _offsets(headers)  # each row's entries, as indexes into the children
        sizes += ends[rows[1:]] - ends[rows[:-1]]
    return sizes


def null_headers(n: int) -> pa.MapArray:
    """``n`` null headers with empty children: ``pa.nulls`` gives the map's key and value
    children ``n + 1`` offsets each, 8 bytes per record on the wire for nothing."""
    entries = pa.nulls(0, pa.struct([HEADERS_TYPE.key_field, HEADERS_TYPE.item_field]))
    validity = pa.py_buffer(bytes((n + 7) // 8))
    offsets = pa.py_buffer(bytes(4 * (n + 1)))
    return pa.Array.from_buffers(HEADERS_TYPE, n, [validity, offsets], null_count=n, children=[entries])


def _offsets(array: pa.Array) -> np.ndarray:
    """The ``len(array) + 1`` int32 offsets of a binary, string or map array (slice applied)."""
    start, n = array.offset, len(array)
    return np.frombuffer(array.buffers()[1], dtype=np.int32, count=start + n + 1)[start:]


def _spans(array: pa.Array) -> np.ndarray:
    """Each element's bytes as its offsets span them (int64); a null may span bytes too, and
    the encoder writes them."""
    if len(array) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.diff(_offsets(array)).astype(np.int64)


def max_timestamp_ms(batch: pa.RecordBatch) -> int:
    """The batch's largest ``timestamp_ms`` (the column is non-nullable in RECORD_SCHEMA)."""
    stamps = batch.column(2)
    if stamps.null_count:
        raise InvalidRecordBatch("timestamp_ms has nulls; every record needs a timestamp")
    return int(int64_values(stamps).max())
