"""Bounds on what a client can send a partition actor (docs/ARCHITECTURE.md, invariants).

Bad payloads sent straight to a partition's ``append`` are refused with a typed error, nothing
of them is stored, and the same actor process goes on serving. ``max.message.bytes`` caps a
whole batch (headers included), and the producer never builds a batch over it. Long polls
take at most ``max_waiting_fetches`` of an actor's slots, so they cannot starve appends.
"""

from __future__ import annotations

import pyarrow as pa
import pytest
import ray

from raykafka import Admin, Consumer, Producer, TopicPartition
from raykafka.actors.partition import MAX_CONCURRENCY, MAX_WAITING_FETCHES
from raykafka.actors.topic_manager import _PartitionActor
from raykafka.api.fetch import decode_fetch
from raykafka.api.producer import FRAMING_BYTES, _encode_within
from raykafka.errors import FetchThrottled, InvalidRecord, MessageTooLarge
from raykafka.storage import iter_frames
from raykafka.storage.records import (
    BATCH_OVERHEAD_BYTES,
    HEADERS_TYPE,
    RECORD_SCHEMA,
    encode_record_batch,
    null_headers,
    record_sizes,
)
from tests.storage.test_record_validation import poison_payloads
from tests.test_faults import leader, wait_for

TIMEOUT_S = 60


def payload(values: list[bytes], headers: list | None = None) -> pa.Buffer:
    n = len(values)
    batch = pa.RecordBatch.from_arrays(
        [
            pa.nulls(n, pa.binary()),
            pa.array(values, pa.binary()),
            pa.array(range(1_000, 1_000 + n), pa.int64()),
            null_headers(n) if headers is None else pa.array(headers, HEADERS_TYPE),
        ],
        schema=RECORD_SCHEMA,
    )
    return encode_record_batch(batch)


def read_all(handle, end: int) -> tuple[list, list[bytes]]:
    """The frame headers and the values of the partition below ``end``, straight from its leader."""
    headers, values, offset = [], [], 0
    while offset < end:
        buffers, _, _ = ray.get(handle.fetch.remote(offset, 1 << 22, 0), timeout=TIMEOUT_S)
        headers += [header for buf in buffers for header, _ in iter_frames(buf)]
        values += [v for t in decode_fetch("t", 0, buffers, offset) for v in t.column("value").to_pylist()]
        offset = headers[-1].next_offset
    return headers, values


def test_poison_batches_are_refused_the_actor_serves_on_and_nothing_is_stored(rk, topic_name):
    topic = topic_name()
    Admin().create_topic(topic, config={"max.message.bytes": "4096"})
    handle = leader(rk, topic)
    pid = ray.get(handle.info.remote(), timeout=TIMEOUT_S)["pid"]

    for name, bad in poison_payloads().items():
        with pytest.raises(InvalidRecord):
            ray.get(handle.append.remote(bad), timeout=TIMEOUT_S)
        assert ray.get(handle.state.remote(), timeout=TIMEOUT_S)["log_end_offset"] == 0, name
    with pytest.raises(InvalidRecord, match="compressed body"):
        ray.get(handle.append.remote(poison_payloads()["zstd body declaring 1 TiB"]), timeout=TIMEOUT_S)
    with pytest.raises(MessageTooLarge):  # one byte of value, 5 KB of headers
        ray.get(handle.append.remote(payload([b"v"], [[("h", b"x" * 5000)]])), timeout=TIMEOUT_S)
    with pytest.raises(MessageTooLarge):  # every record small, the batch 13 KB
        ray.get(handle.append.remote(payload([b"r" * 100] * 100)), timeout=TIMEOUT_S)
    # In one request the bad batch alone is refused.
    answers = ray.get(
        handle.append.remote(
            [payload([b"good-0"]), poison_payloads()["key offsets not monotonic"], payload([b"good-1"])]
        ),
        timeout=TIMEOUT_S,
    )
    assert answers[0] == (0, -1) and isinstance(answers[1], InvalidRecord) and answers[2] == (1, -1)

    assert ray.get(handle.info.remote(), timeout=TIMEOUT_S)["pid"] == pid  # the same process serves
    state = ray.get(handle.state.remote(), timeout=TIMEOUT_S)
    assert state["log_end_offset"] == 2
    tables = decode_fetch(topic, 0, ray.get(handle.fetch.remote(0, 1 << 20, 0), timeout=TIMEOUT_S)[0], 0)
    assert [v for t in tables for v in t.column("value").to_pylist()] == [b"good-0", b"good-1"]


def test_the_producer_never_builds_a_batch_over_max_message_bytes(rk, topic_name):
    topic = topic_name()
    limit = 20_000
    Admin().create_topic(topic, config={"max.message.bytes": str(limit)})
    sent = []
    with Producer(linger_ms=50) as producer:  # batch_size 1 MiB: the topic's limit is the lower one
        futures = []
        for i in range(600):
            value = b"v%04d" % i + bytes(100)
            key = b"k%d" % i if i % 3 == 0 else None
            headers = {"trace": bytes(40)} if i % 2 else None
            futures.append(producer.send(topic, value, key=key, headers=headers))
            sent.append(value)
        producer.flush(TIMEOUT_S)  # (send_batch does not wait for a lingering batch: keep the order)
        rows = [b"t%04d" % i + bytes(150) for i in range(400)]
        table = pa.table(
            {
                "value": pa.array(rows, pa.binary()),
                "headers": pa.array([[("h", bytes(30))]] * 400, HEADERS_TYPE),
            }
        )
        futures.append(producer.send_batch(topic, table))  # 80 KB of rows: split, in order
        sent += rows
        with pytest.raises(MessageTooLarge):  # a record that fits only without its headers
            producer.send(topic, b"small", headers={"h": bytes(limit)})
        offsets = [m.offset for f in futures for m in f.result(TIMEOUT_S)]
    assert offsets == list(range(1000))

    headers, values = read_all(leader(rk, topic), 1000)
    assert len(headers) > 5
    assert max(header.payload_length for header in headers) <= limit
    assert values == sent


def test_send_batch_splits_within_the_limit_even_where_a_slice_encodes_large():
    """pyarrow pads sliced buffers and can write a sliced map's child offsets whole (a 1-row
    slice of this table encodes to ~14 KB, its records' bound being ~670 bytes): a piece over
    the limit is copied compact and fits, since record_sizes bounds compact batches."""
    n = 2000
    headers = [[] if i % 7 == 0 else [("trace", bytes(i % 13))] for i in range(n)]
    rows = pa.RecordBatch.from_arrays(
        [
            pa.array([None if i % 3 else b"k%d" % i for i in range(n)], pa.binary()),
            pa.array([b"v%d" % i + bytes(i % 50) for i in range(n)], pa.binary()),
            pa.array(range(n), pa.int64()),
            pa.array(headers, HEADERS_TYPE),
        ],
        schema=RECORD_SCHEMA,
    )
    sizes = record_sizes(rows)
    for limit in (int(sizes.max()) + FRAMING_BYTES, 2_000, 10_000, 100_000):
        pieces = _encode_within(rows, sizes, limit)
        assert all(len(payload) <= limit for _, payload in pieces)
        assert pa.Table.from_batches([piece for piece, _ in pieces]).to_pylist() == rows.to_pylist()
        assert len(pieces) == 1 or limit < BATCH_OVERHEAD_BYTES + sizes.sum()


def test_long_polls_cannot_take_every_slot(rk, tmp_path):
    """An actor with 8 slots lets 4 fetches wait; the others are answered FetchThrottled at once,
    and an append still runs and wakes the waiting ones. (Without the bound, 8 waiting fetches
    held every slot and the append queued behind them for their whole max_wait_ms.)"""
    assert MAX_WAITING_FETCHES <= MAX_CONCURRENCY // 2  # what the TopicManager's actors get
    actor = _PartitionActor.options(max_concurrency=8, namespace=rk.namespace).remote(
        "standalone", 0, "r0", str(tmp_path / "data"), {}, rk.namespace, max_waiting_fetches=4
    )
    assert ray.get(actor.become_leader.remote(1, {}, ["r0"]), timeout=TIMEOUT_S) == 0
    waiting = [actor.fetch.remote(0, 1 << 20, 120_000) for _ in range(4)]
    wait_for(
        lambda: ray.get(actor.state.remote(), timeout=TIMEOUT_S)["waiting_fetches"] == 4, what="4 long polls"
    )
    turned_away = [actor.fetch.remote(0, 1 << 20, 120_000) for _ in range(12)]
    for ref in turned_away:
        with pytest.raises(FetchThrottled):
            ray.get(ref, timeout=TIMEOUT_S)
    assert ray.get(actor.append.remote(payload([b"through"])), timeout=TIMEOUT_S) == (0, -1)
    for frames, _, high_watermark in ray.get(waiting, timeout=TIMEOUT_S):
        assert high_watermark == 1
        (table,) = decode_fetch("standalone", 0, frames, 0)
        assert table.column("value").to_pylist() == [b"through"]
    assert ray.get(actor.state.remote(), timeout=TIMEOUT_S)["waiting_fetches"] == 0
    ray.kill(actor)


def test_a_consumer_rides_out_throttled_fetches(rk, topic_name):
    """A real partition actor holding MAX_WAITING_FETCHES long polls: a Consumer's fetches are
    throttled, which it retries by itself, and it reads the next record."""
    topic = topic_name()
    Admin().create_topic(topic)
    handle = leader(rk, topic)
    polls = [handle.fetch.remote(0, 1 << 20, 120_000) for _ in range(MAX_WAITING_FETCHES)]
    wait_for(
        lambda: ray.get(handle.state.remote(), timeout=TIMEOUT_S)["waiting_fetches"] == MAX_WAITING_FETCHES,
        what="the long polls",
    )
    with pytest.raises(FetchThrottled):
        ray.get(handle.fetch.remote(0, 1 << 20, 60_000), timeout=TIMEOUT_S)
    consumer = Consumer(group_id=None, auto_offset_reset="earliest")
    consumer.assign([TopicPartition(topic, 0, offset=0)])
    assert consumer.poll(timeout_s=0.5) is None  # throttled: no record, and no error either
    with Producer() as producer:
        producer.send(topic, b"after the crowd").result(TIMEOUT_S)
    message = consumer.poll(timeout_s=TIMEOUT_S)
    consumer.close()
    assert message is not None and message.value == b"after the crowd"
    assert all(high_watermark == 1 for _, _, high_watermark in ray.get(polls, timeout=TIMEOUT_S))
