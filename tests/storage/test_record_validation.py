"""Every payload is validated in full before anything of it is used (docs/ARCHITECTURE.md).

``decode_record_batch`` is the one decoder: the partition actor runs it on every append,
consumers on every fetched batch. It refuses what pyarrow's cheap ``validate()`` let through
(offsets out of order or out of range inside the arrays, invalid UTF-8 header names, null
timestamps), which a consumer then read out of bounds -- a ``SystemError`` or a segfault in
``to_pylist`` -- and any compressed body before pyarrow allocates the size it declares
(Kafka's CVE-2022-34917 is the anchor: a zstd body declaring 1 TiB grew pyarrow's memory
pool by 1 TiB). The size bounds the producer batches by are checked here too.
"""

from __future__ import annotations

import random
import struct
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raykafka.api.fetch import decode_fetch
from raykafka.errors import CorruptRecord
from raykafka.storage import LogConfig, PartitionLog
from raykafka.storage.records import (
    BATCH_OVERHEAD_BYTES,
    HEADERS_TYPE,
    RECORD_SCHEMA,
    InvalidRecordBatch,
    decode_record_batch,
    encode_record_batch,
    null_headers,
    record_sizes,
)

ENTRY_FIELDS = [HEADERS_TYPE.key_field, HEADERS_TYPE.item_field]


def offsets(*values: int) -> pa.Buffer:
    return pa.py_buffer(np.array(values, dtype=np.int32))


def binary(n: int, offs: pa.Buffer, data: bytes, kind: pa.DataType | None = None) -> pa.Array:
    """A binary (or string) array from raw buffers: ``from_buffers`` checks only the last offset."""
    return pa.Array.from_buffers(kind or pa.binary(), n, [None, offs, pa.py_buffer(data)])


def batch(values: pa.Array, keys=None, headers=None, stamps=None) -> pa.RecordBatch:
    n = len(values)
    return pa.RecordBatch.from_arrays(
        [
            pa.nulls(n, pa.binary()) if keys is None else keys,
            values,
            pa.array(range(n), pa.int64()) if stamps is None else stamps,
            null_headers(n) if headers is None else headers,
        ],
        schema=RECORD_SCHEMA,
    )


def header_map(n: int, map_offsets: pa.Buffer, names: pa.Array, values: pa.Array) -> pa.Array:
    entries = pa.StructArray.from_arrays([names, values], fields=ENTRY_FIELDS)
    return pa.Array.from_buffers(HEADERS_TYPE, n, [None, map_offsets], children=[entries])


def compressed(rows: pa.RecordBatch, codec: str) -> bytes:
    """``rows`` as an encapsulated IPC message with a compressed body (what a client could send)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, rows.schema, options=pa.ipc.IpcWriteOptions(compression=codec)) as writer:
        writer.write_batch(rows)
    reader = pa.ipc.MessageReader.open_stream(sink.getvalue())
    reader.read_next_message()  # the schema
    return reader.read_next_message().serialize().to_pybytes()


def declaring(payload: bytes, actual: int, declared: int) -> bytes:
    """``payload`` with the compressed buffer that says it holds ``actual`` bytes saying ``declared``."""
    needle = struct.pack("<q", actual)
    assert payload.count(needle) == 1
    at = payload.index(needle)
    return payload[:at] + struct.pack("<q", declared) + payload[at + 8 :]


def poison_payloads() -> dict[str, bytes]:
    """Payloads a client can send that today's cheap validate() accepted (or that pyarrow
    would decompress), each paired with the reason it must be refused."""
    three = pa.array([b"a", b"bb", b"ccc"], pa.binary())
    good_names = binary(1, offsets(0, 1), b"h", pa.string())
    good_values = binary(1, offsets(0, 1), b"v")
    zstd = compressed(batch(pa.array([b"x" * 1000] * 50, pa.binary())), "zstd")
    return {
        "value offsets not monotonic": batch(binary(3, offsets(0, 5, 2, 6), b"abcdef")).serialize(),
        "value offset beyond the data": batch(binary(3, offsets(0, 1 << 30, 3, 6), b"abcdef")).serialize(),
        "value offset negative": batch(binary(3, offsets(0, -100_000, 3, 6), b"abcdef")).serialize(),
        "key offsets not monotonic": batch(three, keys=binary(3, offsets(0, 4, 1, 4), b"kkkk")).serialize(),
        "header map offsets not monotonic": batch(
            pa.array([b"a", b"b"], pa.binary()),
            headers=header_map(2, offsets(0, 1, 0), good_names, good_values),
        ).serialize(),
        "header name offsets out of range": batch(
            pa.array([b"a"], pa.binary()),
            headers=header_map(
                1,
                offsets(0, 2),
                binary(2, offsets(0, 9000, 1), b"h", pa.string()),
                binary(2, offsets(0, 1, 1), b"v"),
            ),
        ).serialize(),
        "header name not UTF-8": batch(
            pa.array([b"a"], pa.binary()),
            headers=header_map(
                1, offsets(0, 1), binary(1, offsets(0, 2), b"\xff\xfe", pa.string()), good_values
            ),
        ).serialize(),
        "null timestamps": batch(three, stamps=pa.array([1, None, 3], pa.int64())).serialize(),
        "zstd body": zstd,
        "lz4 body": compressed(batch(pa.array([b"y" * 1000] * 50, pa.binary())), "lz4"),
        "zstd body declaring 1 TiB": declaring(zstd, 50_000, 1 << 40),
        "not IPC at all": b"\x00" * 64,
        "a schema message": RECORD_SCHEMA.serialize().to_pybytes(),
        "metadata length past the end": b"\xff\xff\xff\xff" + struct.pack("<i", 1 << 20) + b"\x00" * 56,
        "truncated metadata": batch(three).serialize().to_pybytes()[:40],
    }


@pytest.mark.parametrize("name", list(poison_payloads()))
def test_a_poison_payload_is_refused(name):
    with pytest.raises(InvalidRecordBatch):
        decode_record_batch(poison_payloads()[name])


BOMB_SCRIPT = textwrap.dedent(
    """
    import sys
    import pyarrow as pa
    from raykafka.storage.records import InvalidRecordBatch, decode_record_batch

    try:
        decode_record_batch(sys.stdin.buffer.read())
    except InvalidRecordBatch as exc:
        print(exc)
    print(pa.default_memory_pool().max_memory())
    """
)


def test_a_compressed_body_is_refused_before_its_declared_size_is_allocated():
    """In a fresh process, whose memory pool's peak is this decode's alone: pyarrow allocated the
    1 TiB the body declares (virtual memory; a real zstd bomb of a few GB fills it) before its
    decompressor failed."""
    bomb = poison_payloads()["zstd body declaring 1 TiB"]
    result = subprocess.run(
        [sys.executable, "-c", BOMB_SCRIPT], input=bomb, capture_output=True, timeout=120, check=True
    )
    reason, peak = result.stdout.decode().splitlines()
    assert "compressed body" in reason
    assert int(peak) < 64 << 20


def test_valid_batches_of_every_shape_decode():
    rows = batch(
        pa.array([b"v0", None, b""], pa.binary()),
        keys=pa.array([None, b"k1", b"k2"], pa.binary()),
        headers=pa.array([[("a", b"1"), ("b", None)], None, []], HEADERS_TYPE),
    )
    for payload in (encode_record_batch(rows), encode_record_batch(rows.slice(1, 2))):
        decoded = decode_record_batch(payload)
        assert (
            decoded.to_pylist()
            == pa.RecordBatch.from_arrays([c for c in decoded.columns], schema=RECORD_SCHEMA).to_pylist()
        )
    assert decode_record_batch(encode_record_batch(rows)).column(1).to_pylist() == [b"v0", None, b""]


# -- a stored poison batch: the consumer gets CorruptRecord, never a crash -------------------------

CONSUMER_SCRIPT = textwrap.dedent(
    """
    import random, sys, tempfile
    import pyarrow as pa
    from raykafka.api.fetch import decode_fetch
    from raykafka.errors import CorruptRecord
    from raykafka.storage import LogConfig, PartitionLog
    from raykafka.storage.records import HEADERS_TYPE, RECORD_SCHEMA, encode_record_batch

    rows = pa.RecordBatch.from_arrays(
        [
            pa.array([b"k", None, b"kk"], pa.binary()),
            pa.array([b"abc", None, b"de"], pa.binary()),
            pa.array([1, 2, 3], pa.int64()),
            pa.array([[("a", b"b")], None, []], HEADERS_TYPE),
        ],
        schema=RECORD_SCHEMA,
    )
    good = encode_record_batch(rows).to_pybytes()
    rng = random.Random(int(sys.argv[1]))
    log = PartitionLog(tempfile.mkdtemp(), LogConfig())
    for _ in range(int(sys.argv[2])):  # stored as a follower stores its leader's frames: unchecked
        damaged = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        log.append(bytes(damaged), record_count=3, first_timestamp_ms=1, max_timestamp_ms=3)
    refused = read = 0
    for offset in range(0, log.log_end_offset, 3):
        try:
            tables = decode_fetch("t", 0, log.read(offset, 1 << 16, max_offset=offset + 3), offset)
        except CorruptRecord:
            refused += 1
            continue
        for table in tables:
            table.to_pylist()  # what poll() and iteration do with every record
            read += 1
    print(refused, read)
    """
)


def test_a_consumer_never_crashes_on_stored_poison_batches():
    """Randomly damaged batches (the CRC is computed over the damage: the bytes arrived so) are
    each either refused with CorruptRecord or decode to records Python can read. Before full
    validation, some decoded and then crashed the process reading them (``to_pylist``)."""
    result = subprocess.run(
        [sys.executable, "-c", CONSUMER_SCRIPT, "20261207", "3000"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    refused, read = map(int, result.stdout.split())
    assert refused + read == 3000 and refused > 2000


def test_decode_fetch_raises_corrupt_record_for_a_stored_poison_batch():
    log = PartitionLog(tempfile.mkdtemp(), LogConfig())
    good = encode_record_batch(batch(pa.array([b"r0"], pa.binary())))
    log.append(good, record_count=1, first_timestamp_ms=0, max_timestamp_ms=0)
    for name in ("value offsets not monotonic", "zstd body declaring 1 TiB"):
        log.append(poison_payloads()[name], record_count=3, first_timestamp_ms=0, max_timestamp_ms=2)
    (first,) = decode_fetch("t", 0, log.read(0, 1 << 20, max_offset=1), 0)
    assert first.column("value").to_pylist() == [b"r0"]
    for offset in (1, 4):
        with pytest.raises(CorruptRecord, match=f"offset {offset} is not a valid record batch"):
            decode_fetch("t", 0, log.read(offset, 1 << 20), offset)


# -- sizes: what a producer counts bounds what it encodes ----------------------------------------


@st.composite
def producer_batches(draw) -> pa.RecordBatch:
    """Batches shaped as the producer builds them: values always, keys and headers sometimes."""
    n = draw(st.integers(1, 40))
    blob = st.binary(max_size=40)
    values = draw(st.lists(st.one_of(st.none(), blob), min_size=n, max_size=n))
    keyed = draw(st.booleans())
    keys = draw(st.lists(st.one_of(st.none(), blob), min_size=n, max_size=n)) if keyed else None
    header = st.tuples(st.text(max_size=6), st.one_of(st.none(), st.binary(max_size=12)))
    with_headers = draw(st.booleans())
    headers = (
        draw(st.lists(st.one_of(st.none(), st.lists(header, max_size=3)), min_size=n, max_size=n))
        if with_headers
        else None
    )
    return batch(
        pa.array(values, pa.binary()),
        keys=None if keys is None else pa.array(keys, pa.binary()),
        headers=None if headers is None else pa.array(headers, HEADERS_TYPE),
    )


@settings(max_examples=100, deadline=None)
@given(producer_batches())
def test_record_sizes_bound_the_encoded_batch(rows):
    encoded = len(encode_record_batch(rows))
    assert encoded <= BATCH_OVERHEAD_BYTES + int(record_sizes(rows).sum())


def test_record_sizes_count_headers_and_stay_close_to_the_encoded_size():
    rng = random.Random(3)
    values = [bytes(rng.randrange(300)) for _ in range(2000)]
    with_headers = [[("trace-id", bytes(16)), ("é", b"x")] for _ in range(2000)]
    plain = batch(pa.array(values, pa.binary()))
    rich = batch(pa.array(values, pa.binary()), headers=pa.array(with_headers, HEADERS_TYPE))
    for rows, headers in ((plain, 0), (rich, 2 * 2000)):
        bound = BATCH_OVERHEAD_BYTES + int(record_sizes(rows).sum())
        slack = BATCH_OVERHEAD_BYTES + rows.num_rows + headers  # under a byte per record and header
        assert bound - slack <= len(encode_record_batch(rows)) <= bound
    extra = record_sizes(rich) - record_sizes(plain)
    assert set(extra.tolist()) == {len("trace-id") + 16 + 9 + len("é".encode()) + 1 + 9}
