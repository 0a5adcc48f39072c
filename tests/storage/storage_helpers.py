"""Shared helpers for the storage tests: real Arrow batches and frame decoding."""

from __future__ import annotations

import pyarrow as pa

from raykafka.storage import RECORD_SCHEMA, PartitionLog, encode_record_batch, iter_frames


def make_batch(values: list[bytes], timestamps_ms: list[int]) -> pa.RecordBatch:
    n = len(values)
    return pa.record_batch(
        [
            pa.array([b"k%d" % i for i in range(n)], pa.binary()),
            pa.array(values, pa.binary()),
            pa.array(timestamps_ms, pa.int64()),
            pa.array([[("h", b"v")]] * n, RECORD_SCHEMA.field("headers").type),
        ],
        schema=RECORD_SCHEMA,
    )


def append_batch(log: PartitionLog, values: list[bytes], timestamps_ms: list[int], **kw) -> int:
    payload = encode_record_batch(make_batch(values, timestamps_ms))
    return log.append(
        payload,
        record_count=len(values),
        first_timestamp_ms=timestamps_ms[0],
        max_timestamp_ms=max(timestamps_ms),
        **kw,
    )


def payload_of(size: int, seed: int) -> bytes:
    """A non-Arrow payload of ``size`` bytes (a multiple of 8), distinct per seed."""
    return (seed.to_bytes(8, "little") * (size // 8 + 1))[:size]


def frames(buffers: list[pa.Buffer]) -> list[tuple[int, int, bytes]]:
    """(base_offset, record_count, payload bytes) of every frame in ``buffers``, CRC-checked."""
    out = []
    for buf in buffers:
        for header, payload in iter_frames(memoryview(buf)):
            out.append((header.base_offset, header.record_count, bytes(payload)))
    return out


def read_all(log: PartitionLog, offset: int | None = None) -> list[tuple[int, int, bytes]]:
    offset = log.log_start_offset if offset is None else offset
    out = []
    while offset < log.log_end_offset:
        got = frames(log.read(offset, 1 << 20))
        assert got, f"no progress at {offset}"
        out.extend(got)
        offset = got[-1][0] + got[-1][1]
    return out
