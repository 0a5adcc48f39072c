"""Per-partition order of one producer's messages under pipelining.

Ray may start an async actor's calls out of submission order (most of 2,000
pipelined calls with mixed-size arguments did, measured), so the producer
numbers its batches and the partition actor appends them in that order. These
tests would fail without it: batches of very different sizes, many in flight.
"""

from __future__ import annotations

import pyarrow as pa

from raykafka import Admin, Consumer, Producer, TopicPartition


def read_values(topic: str, count: int) -> list[bytes]:
    consumer = Consumer(group_id=None, auto_offset_reset="earliest")
    consumer.assign([TopicPartition(topic, 0)])
    values: list[bytes] = []
    for _ in range(200):
        if len(values) >= count:
            break
        values += consumer.poll_batch(timeout_s=1.0).column("value").to_pylist()
    consumer.close()
    return values


def test_send_batch_pipelined_keeps_send_order(rk, topic_name):
    topic = topic_name()
    Admin().create_topic(topic)
    expected = []
    with Producer(max_in_flight_requests_per_partition=5) as producer:
        futures = []
        for call in range(60):
            rows = 1 if call % 3 else 5_000  # small and large arguments interleaved
            values = [f"{call}-{i}".encode() * (40 if call % 3 == 0 else 1) for i in range(rows)]
            expected += values
            futures.append(producer.send_batch(topic, pa.table({"value": pa.array(values, pa.binary())})))
        offsets = [md.offset for f in futures for md in f.result(timeout=60)]
    assert offsets == list(range(len(expected)))
    assert read_values(topic, len(expected)) == expected


def test_send_pipelined_keeps_send_order(rk, topic_name):
    topic = topic_name()
    Admin().create_topic(topic)
    expected = [b"v-%d" % i + b"x" * (i % 7 * 300) for i in range(20_000)]
    with Producer(linger_ms=0, batch_size=4096) as producer:  # many small batches in flight
        futures = [producer.send(topic, v) for v in expected]
        offsets = [f.result(timeout=60)[0].offset for f in futures]
    assert offsets == list(range(len(expected)))
    assert read_values(topic, len(expected)) == expected
