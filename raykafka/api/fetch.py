"""Turning a partition actor's fetch response into consumer tables.

A response is a list of buffers holding whole batch frames. Each frame's CRC is
checked again here (end to end: what left the disk is what arrives), its
payload is decoded zero-copy and validated in full (a stored batch that is not a valid
record batch -- one stored before appends were validated -- raises CorruptRecord, never
crashes the consumer), and the columns a consumer sees -- topic, partition, offset -- are
added without a Python object per record.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from raykafka.errors import CorruptRecord
from raykafka.storage.arrays import full_int64, int_array
from raykafka.storage.framing import CorruptBatch, iter_frames
from raykafka.storage.records import CONSUMER_SCHEMA, InvalidRecordBatch, decode_record_batch


def constant_string_array(text: str, n: int) -> pa.StringArray:
    """``n`` copies of ``text`` as a string array, built from two buffers."""
    data = text.encode()
    offsets = np.arange(n + 1, dtype=np.int32) * len(data)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data * n)])


def decode_fetch(topic: str, partition: int, frames: list, from_offset: int) -> list[pa.RecordBatch]:
    """Consumer batches (CONSUMER_SCHEMA) for every record at or after ``from_offset``."""
    out = []
    for buf in frames:
        try:
            for header, payload in iter_frames(buf, verify=True):
                if header.next_offset <= from_offset:
                    continue
                try:
                    batch = decode_record_batch(payload)  # fully validated: a poison batch is an error
                except InvalidRecordBatch as exc:
                    raise CorruptRecord(
                        f"{topic}-{partition}: the stored batch at offset {header.base_offset} is not a "
                        f"valid record batch ({exc}); seek past offset {header.next_offset - 1}"
                    ) from None
                n = header.record_count
                if batch.num_rows != n:
                    raise CorruptRecord(
                        f"{topic}-{partition}: batch at offset {header.base_offset} says {n} records "
                        f"but holds {batch.num_rows}"
                    )
                stamps = batch.column(2)
                if header.log_append_time:
                    stamps = full_int64(n, header.max_timestamp_ms)
                table = pa.RecordBatch.from_arrays(
                    [
                        constant_string_array(topic, n),
                        int_array(np.full(n, partition, dtype=np.int32)),
                        int_array(np.arange(header.base_offset, header.next_offset, dtype=np.int64)),
                        stamps,
                        batch.column(0),
                        batch.column(1),
                        batch.column(3),
                    ],
                    schema=CONSUMER_SCHEMA,
                )
                skip = from_offset - header.base_offset
                out.append(table.slice(skip) if skip > 0 else table)
        except CorruptBatch as exc:
            raise CorruptRecord(f"{topic}-{partition}: a fetched batch failed its CRC ({exc})") from None
    return out


def frame_epochs(frames: list, from_offset: int) -> list[tuple[int, int]]:
    """``(first offset at or after from_offset, leader epoch)`` of each frame in a fetch response
    (headers only; ``decode_fetch`` checks the CRCs)."""
    return [
        (max(header.base_offset, from_offset), header.leader_epoch)
        for buf in frames
        for header, _ in iter_frames(buf, verify=False)
        if header.next_offset > from_offset
    ]


def empty_table() -> pa.Table:
    return CONSUMER_SCHEMA.empty_table()
