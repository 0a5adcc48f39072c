"""Round trips through real partition actors: exact payloads, keys, headers, timestamps, offsets, order.

All tests of this module share one namespace and data directory (topics are per test), so
the TopicManager starts once; each test connects to it again (``rk`` overridden below).
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
import zlib

import pyarrow as pa
import pytest

import raykafka
from raykafka import Admin, Consumer, Message, MessageSet, Producer, RecordMetadata, TopicPartition
from raykafka.api.producer import _RecordFuture
from raykafka.errors import OffsetOutOfRange
from tests.conftest import kill_namespace

TIMEOUT_S = 30

CONSUMER_COLUMNS = [
    ("topic", pa.string()),
    ("partition", pa.int32()),
    ("offset", pa.int64()),
    ("timestamp_ms", pa.int64()),
    ("key", pa.binary()),
    ("value", pa.binary()),
    ("headers", pa.map_(pa.string(), pa.binary())),
]


@pytest.fixture(scope="module")
def shared(ray_session, tmp_path_factory):
    namespace = f"test-pc-{uuid.uuid4().hex[:8]}"
    data_dir = str(tmp_path_factory.mktemp("pc") / "data")
    yield namespace, data_dir
    kill_namespace(namespace)


@pytest.fixture
def rk(shared):
    namespace, data_dir = shared
    return raykafka.connect(namespace=namespace, data_dir=data_dir)


@pytest.fixture
def topic(rk, topic_name):
    """A fresh one-partition topic."""
    name = topic_name()
    Admin().create_topic(name, partitions=1)
    return name


def consume(consumer: Consumer, count: int, max_rounds: int = 60) -> pa.Table:
    """Exactly ``count`` records via poll_batch (fails if fewer arrive; checks none more is there)."""
    tables = []
    got = 0
    for _ in range(max_rounds):
        if got >= count:
            break
        table = consumer.poll_batch(max_messages=count - got, timeout_s=0.5)
        assert table.num_rows <= count - got
        tables.append(table)
        got += table.num_rows
    assert got == count, f"got {got} of {count} records"
    return pa.concat_tables(tables)


def reader(*tps: TopicPartition, reset: str = "earliest") -> Consumer:
    consumer = Consumer(group_id=None, auto_offset_reset=reset)
    consumer.assign(list(tps))
    return consumer


def rows(table: pa.Table) -> list[tuple]:
    """(partition, offset, timestamp, key, value, headers) per row, headers as dicts."""
    out = []
    for r in table.to_pylist():
        headers = None if r["headers"] is None else dict(r["headers"])
        out.append((r["partition"], r["offset"], r["timestamp_ms"], r["key"], r["value"], headers))
    return out


# -- the seed's calls -----------------------------------------------------------------


def test_seed_round_trip(topic):
    before = int(time.time() * 1000)
    with Producer() as producer:
        future = producer.send(topic, MessageSet(Message(b"test message str")))
        [md] = future.result(TIMEOUT_S)
    after = int(time.time() * 1000)
    assert isinstance(md, RecordMetadata)
    assert (md.topic, md.partition, md.offset) == (topic, 0, 0)
    assert before <= md.timestamp_ms <= after  # the send time

    consumer = reader(TopicPartition(topic, 0))
    message = consumer.poll(timeout_s=10)
    assert message is not None
    assert message.payload() == message.value == b"test message str"
    assert (message.topic, message.partition, message.offset) == (topic, 0, 0)
    assert (message.key, message.headers, message.timestamp_ms) == (None, None, md.timestamp_ms)
    assert consumer.poll(timeout_s=0.2) is None
    consumer.close()


def test_message_set_of_many_keeps_order_and_fields(topic):
    messages = [
        Message(b"m0"),
        Message(b"m1", key=b"k1"),
        Message(b"m2", headers={"h": b"v", "empty": b""}, timestamp_ms=1_000),
        Message(b"", key=b"", timestamp_ms=2_000),  # empty value and key are not null
        Message(bytes(range(256)) * 4, key=b"\x00\xff"),
    ]
    with Producer() as producer:
        mds = producer.send(topic, MessageSet(messages), partition=0).result(TIMEOUT_S)
        mds += producer.send(topic, MessageSet(Message(b"m5"))).result(TIMEOUT_S)
    assert [(m.topic, m.partition, m.offset) for m in mds] == [(topic, 0, i) for i in range(6)]
    assert mds[2].timestamp_ms == 1_000
    assert mds[3].timestamp_ms == 2_000

    consumer = reader(TopicPartition(topic, 0))
    got = [consumer.poll(timeout_s=10) for _ in range(6)]
    assert [(m.offset, m.key, m.value, m.headers, m.timestamp_ms) for m in got] == [
        (0, None, b"m0", None, mds[0].timestamp_ms),
        (1, b"k1", b"m1", None, mds[1].timestamp_ms),
        (2, None, b"m2", {"h": b"v", "empty": b""}, 1_000),
        (3, b"", b"", None, 2_000),
        (4, b"\x00\xff", bytes(range(256)) * 4, None, mds[4].timestamp_ms),
        (5, None, b"m5", None, mds[5].timestamp_ms),
    ]
    assert consumer.poll(timeout_s=0.2) is None


def test_send_batch_round_trip_and_schema(topic):
    headers_type = pa.map_(pa.string(), pa.binary())
    table = pa.table(
        {
            "value": pa.array([b"a", b"bb", b"", b"dddd"], pa.binary()),
            "key": pa.array([b"k0", None, b"k2", b""], pa.binary()),
            "headers": pa.array([[("x", b"1")], None, [], [("y", b"2"), ("z", b"")]], headers_type),
            "timestamp_ms": pa.array([5, 6, 7, 8], pa.int64()),
        }
    )
    with Producer() as producer:
        mds = producer.send_batch(topic, table, partition=0).result(TIMEOUT_S)
        # a RecordBatch with only a value column: timestamps are the send time
        before = int(time.time() * 1000)
        more = producer.send_batch(topic, pa.record_batch([pa.array([b"e", b"f"])], names=["value"]))
        mds += more.result(TIMEOUT_S)
        after = int(time.time() * 1000)
    assert [(m.topic, m.partition, m.offset) for m in mds] == [(topic, 0, i) for i in range(6)]
    assert [m.timestamp_ms for m in mds[:4]] == [5, 6, 7, 8]
    assert mds[4].timestamp_ms == mds[5].timestamp_ms
    assert before <= mds[4].timestamp_ms <= after

    consumer = reader(TopicPartition(topic, 0))
    got = consume(consumer, 6)
    assert [(f.name, f.type) for f in got.schema] == CONSUMER_COLUMNS
    assert rows(got) == [
        (0, 0, 5, b"k0", b"a", {"x": b"1"}),
        (0, 1, 6, None, b"bb", None),
        (0, 2, 7, b"k2", b"", {}),
        (0, 3, 8, b"", b"dddd", {"y": b"2", "z": b""}),
        (0, 4, mds[4].timestamp_ms, None, b"e", None),
        (0, 5, mds[4].timestamp_ms, None, b"f", None),
    ]
    # empty when nothing more is there, with the same columns
    empty = consumer.poll_batch(timeout_s=0.2)
    assert empty.num_rows == 0
    assert [(f.name, f.type) for f in empty.schema] == CONSUMER_COLUMNS


@pytest.fixture(scope="module")
def multi(shared):
    """One 4-partition topic shared by the tests below (each reads from the log ends it starts at)."""
    namespace, data_dir = shared
    raykafka.connect(namespace=namespace, data_dir=data_dir)
    name = f"multi-{uuid.uuid4().hex[:8]}"
    Admin().create_topic(name, partitions=4)
    return name


def log_ends(topic: str, partitions: int = 4) -> dict[int, int]:
    admin = Admin()
    return {p: admin.list_offsets(topic, p, "latest") for p in range(partitions)}


def from_ends(topic: str, ends: dict[int, int]) -> Consumer:
    return reader(*(TopicPartition(topic, p, offset=o) for p, o in ends.items()))


def test_send_value_key_headers_partition(rk, multi):
    ends = log_ends(multi)
    sent = []
    with Producer(linger_ms=20) as producer:
        futures = []
        for i in range(30):
            partition = i % 3
            key = None if i % 4 == 0 else b"key-%d" % i
            headers = {"n": str(i).encode()} if i % 2 else None
            value = b"value-%d" % i
            futures.append(
                producer.send(
                    multi, value, key=key, headers=headers, partition=partition, timestamp_ms=10_000 + i
                )
            )
            sent.append((partition, 10_000 + i, key, value, headers))
        results = [f.result(TIMEOUT_S) for f in futures]
    assert all(len(r) == 1 for r in results)
    mds = [r[0] for r in results]
    assert {md.topic for md in mds} == {multi}
    assert [md.partition for md in mds] == [i % 3 for i in range(30)]  # partition= wins over the key
    # offsets per partition: exactly the next 10, in send order
    for p in range(3):
        assert [md.offset for md in mds if md.partition == p] == list(range(ends[p], ends[p] + 10))
    assert [md.timestamp_ms for md in mds] == [10_000 + i for i in range(30)]

    table = consume(from_ends(multi, ends), 30)
    got = sorted(rows(table), key=lambda r: (r[0], r[1]))
    expected = sorted(
        ((p, md.offset, ts, k, v, h) for (p, ts, k, v, h), md in zip(sent, mds, strict=True)),
        key=lambda r: (r[0], r[1]),
    )
    assert got == expected
    assert table.column("topic").to_pylist() == [multi] * 30
    for p in range(3):  # within each partition the records come in offset order
        assert [r[1] for r in rows(table) if r[0] == p] == list(range(ends[p], ends[p] + 10))


def test_send_batch_keyed_rows_split_by_key_hash(rk, multi):
    ends = log_ends(multi)
    keys = [b"user-%d" % i for i in range(12)]
    values = [b"v%d" % i for i in range(12)]
    with Producer() as producer:
        mds = producer.send_batch(multi, pa.table({"key": keys, "value": values})).result(TIMEOUT_S)
    assert len(mds) == 12
    expected_partitions = [zlib.crc32(k) % 4 for k in keys]
    assert len(set(expected_partitions)) > 1
    # metadata comes back in row order, each row where its key hashes, offsets contiguous per partition
    where = {}
    for p in range(4):
        in_p = [v for v, ep in zip(values, expected_partitions, strict=True) if ep == p]
        for i, v in enumerate(in_p):
            where[v] = (p, ends[p] + i)
    assert [(md.partition, md.offset) for md in mds] == [where[v] for v in values]

    table = consume(from_ends(multi, ends), 12)
    assert {(r[0], r[1], r[3], r[4]) for r in rows(table)} == {
        (*where[v], k, v) for k, v in zip(keys, values, strict=True)
    }


def test_keyed_messages_go_to_crc32_partition(rk, multi):
    ends = log_ends(multi)
    keys = [b"key-%d" % i for i in range(40)]
    placements = []
    for _ in range(2):  # two producers: the same key lands on the same partition
        with Producer() as producer:
            futures = [producer.send(multi, b"v", key=k) for k in keys]
            placements.append([f.result(TIMEOUT_S)[0].partition for f in futures])
    assert placements[0] == placements[1] == [zlib.crc32(k) % 4 for k in keys]
    assert len(set(placements[0])) == 4

    table = consume(from_ends(multi, ends), 80)
    for r in rows(table):
        assert r[0] == zlib.crc32(r[3]) % 4


def test_unkeyed_messages_are_all_delivered_once(rk, multi):
    ends = log_ends(multi)
    with Producer(linger_ms=1) as producer:
        futures = [producer.send(multi, b"u%03d" % i) for i in range(60)]
        mds = [f.result(TIMEOUT_S)[0] for f in futures]
    for p in range(4):
        count = sum(md.partition == p for md in mds)
        assert sorted(md.offset for md in mds if md.partition == p) == list(range(ends[p], ends[p] + count))
    table = consume(from_ends(multi, ends), 60)
    got = {(r[0], r[1]): r[4] for r in rows(table)}
    assert got == {(md.partition, md.offset): b"u%03d" % i for i, md in enumerate(mds)}


# -- reading -------------------------------------------------------------------------


def fill(topic: str, count: int, partition: int = 0, prefix: bytes = b"m") -> list[RecordMetadata]:
    with Producer() as producer:
        messages = MessageSet(Message(b"%s%d" % (prefix, i)) for i in range(count))
        return producer.send(topic, messages, partition=partition).result(TIMEOUT_S)


def test_poll_batch_max_messages_and_order(topic):
    fill(topic, 5)
    fill(topic, 5, prefix=b"n")
    consumer = reader(TopicPartition(topic, 0))
    seen = []
    for size in (3, 3, 3, 1):
        table = consume(consumer, size)
        seen += table.column("offset").to_pylist()
    assert seen == list(range(10))
    assert consumer.poll_batch(timeout_s=0.2).num_rows == 0
    tp = TopicPartition(topic, 0)
    assert consumer.position([tp]) == {tp: 10}


def test_iteration(topic):
    fill(topic, 7)
    consumer = reader(TopicPartition(topic, 0))
    got = []
    for message in consumer:
        got.append((message.offset, message.payload()))
        if len(got) == 7:
            break
    assert got == [(i, b"m%d" % i) for i in range(7)]
    # mixing iteration and poll continues from the same position
    fill(topic, 1, prefix=b"late")
    assert consumer.poll(timeout_s=10).payload() == b"late0"


def test_seek_while_iterating(topic):
    fill(topic, 6)
    consumer = reader(TopicPartition(topic, 0))
    got = []
    sought = False
    for message in consumer:
        got.append(message.offset)
        if message.offset == 3 and not sought:
            consumer.seek(TopicPartition(topic, 0, offset=1))
            sought = True
        if len(got) == 9:
            break
    assert got == [0, 1, 2, 3, 1, 2, 3, 4, 5]


def test_seek_and_position(topic):
    fill(topic, 5)
    tp = TopicPartition(topic, 0)
    consumer = reader(tp)
    assert consumer.assignment() == [tp]
    assert consumer.position([tp]) == {tp: 0}
    assert [consumer.poll(timeout_s=10).offset for _ in range(3)] == [0, 1, 2]
    assert consumer.position([tp]) == {tp: 3}
    consumer.seek(TopicPartition(topic, 0, offset=1))
    assert consumer.position([tp]) == {tp: 1}
    assert consumer.poll(timeout_s=10).offset == 1
    assert consumer.position([tp]) == {tp: 2}
    consumer.seek(TopicPartition(topic, 0, offset=4))
    assert consumer.poll(timeout_s=10).payload() == b"m4"
    consumer.seek(TopicPartition(topic, 0, offset=5))  # the log end: nothing yet
    assert consumer.poll(timeout_s=0.3) is None
    assert consumer.position([tp]) == {tp: 5}
    consumer.seek(TopicPartition(topic, 0, offset=0))
    assert rows(consume(consumer, 5))[0][1:5:3] == (0, b"m0")

    # assign with an explicit start offset
    other = reader(TopicPartition(topic, 0, offset=3))
    assert other.position([tp]) == {tp: 3}
    assert consume(other, 2).column("value").to_pylist() == [b"m3", b"m4"]


def test_auto_offset_reset_earliest_latest_none(topic):
    fill(topic, 3)
    tp = TopicPartition(topic, 0)
    earliest, latest, none = reader(tp), reader(tp, reset="latest"), reader(tp, reset="none")
    assert earliest.position([tp]) == {tp: 0}
    assert latest.position([tp]) == {tp: 3}
    with pytest.raises(OffsetOutOfRange):
        none.position([tp])
    with pytest.raises(OffsetOutOfRange):
        none.poll(timeout_s=1)
    assert latest.poll(timeout_s=0.3) is None

    fill(topic, 2, prefix=b"new")
    assert consume(earliest, 5).column("value").to_pylist() == [b"m0", b"m1", b"m2", b"new0", b"new1"]
    assert consume(latest, 2).column("value").to_pylist() == [b"new0", b"new1"]
    # "none" works once it has a position
    none.seek(TopicPartition(topic, 0, offset=2))
    assert consume(none, 3).column("offset").to_pylist() == [2, 3, 4]


def test_log_append_time_overrides_timestamps(rk, topic_name):
    topic = topic_name()
    Admin().create_topic(topic, config={"message.timestamp.type": "LogAppendTime"})
    before = int(time.time() * 1000)
    with Producer() as producer:
        mds = producer.send(topic, b"a", timestamp_ms=1_000).result(TIMEOUT_S)
        mds += producer.send(topic, MessageSet([Message(b"b", timestamp_ms=2_000), Message(b"c")])).result(
            TIMEOUT_S
        )
        table = pa.table({"value": [b"d"], "timestamp_ms": [3_000]})
        mds += producer.send_batch(topic, table).result(TIMEOUT_S)
    after = int(time.time() * 1000)
    assert [md.offset for md in mds] == [0, 1, 2, 3]
    for md in mds:
        assert before <= md.timestamp_ms <= after  # the broker's clock, not the producer's
    got = consume(reader(TopicPartition(topic, 0)), 4)
    assert got.column("timestamp_ms").to_pylist() == [md.timestamp_ms for md in mds]
    assert got.column("value").to_pylist() == [b"a", b"b", b"c", b"d"]
    # timestamp lookup uses the append time too
    admin = Admin()
    assert admin.list_offsets(topic, 0, 1_000) == 0
    assert admin.list_offsets(topic, 0, after + 60_000) == 4


def test_explicit_timestamp_zero_is_kept(topic):
    with Producer() as producer:
        mds = producer.send(topic, b"a", timestamp_ms=0).result(TIMEOUT_S)
        mds += producer.send(topic, MessageSet(Message(b"b", timestamp_ms=0))).result(TIMEOUT_S)
    assert [md.timestamp_ms for md in mds] == [0, 0]
    assert consume(reader(TopicPartition(topic, 0)), 2).column("timestamp_ms").to_pylist() == [0, 0]


def test_long_poll_gets_a_message_sent_after_it_started(topic):
    consumer = Consumer(group_id=None, auto_offset_reset="latest", fetch_max_wait_ms=5_000)
    consumer.assign([TopicPartition(topic, 0)])
    assert consumer.poll(timeout_s=0.2) is None  # at the log end, a fetch is waiting there now
    sent_at = []

    def send_later():
        time.sleep(1.0)
        with Producer(linger_ms=0) as producer:
            sent_at.append(time.monotonic())
            producer.send(topic, b"late", key=b"k").result(TIMEOUT_S)

    thread = threading.Thread(target=send_later)
    started = time.monotonic()
    thread.start()
    message = consumer.poll(timeout_s=20)
    arrived = time.monotonic()
    thread.join()
    assert message is not None
    assert (message.offset, message.key, message.value) == (0, b"k", b"late")
    assert arrived - started >= 0.9  # it really waited
    assert arrived - sent_at[0] < 3.0  # and was woken by the append, not by fetch_max_wait_ms


def send_from_threads(send, threads: int, count: int) -> dict[int, list]:
    """``threads`` threads each call ``send(n, i)`` for i < count at once; each one's futures."""
    futures: dict[int, list] = {}

    def worker(n: int) -> None:
        futures[n] = [send(n, i) for i in range(count)]

    running = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in running:
        t.start()
    for t in running:
        t.join()
    return futures


def assert_each_thread_landed_in_order(topic: str, futures: dict[int, list], value_of) -> None:
    """Every record once, at contiguous offsets; each thread's in its send order, byte for byte."""
    results = {n: [f.result(TIMEOUT_S)[0].offset for f in fs] for n, fs in futures.items()}
    total = sum(len(r) for r in results.values())
    offsets = sorted(o for r in results.values() for o in r)
    assert offsets == list(range(total))
    got = {r[1]: r[4] for r in rows(consume(reader(TopicPartition(topic, 0)), total))}
    for n, r in results.items():
        assert r == sorted(r)  # each thread's messages keep its order
        assert [got[o] for o in r] == [value_of(n, i) for i in range(len(r))]


def test_producer_shared_between_threads(topic):
    producer = Producer(linger_ms=2)

    def value_of(n, i):
        return b"t%d-%d" % (n, i)

    futures = send_from_threads(lambda n, i: producer.send(topic, value_of(n, i), partition=0), 4, 25)
    producer.close()
    assert_each_thread_landed_in_order(topic, futures, value_of)


def test_unkeyed_sends_from_threads_through_the_fast_lane(topic):
    """Unkeyed bytes sends go straight into the open batch (the producer's lane) while the
    sender closes batches by linger and by size: every record lands once, each thread's in
    order, and every future names the record's offset."""
    producer = Producer(linger_ms=1, batch_size=2_000)  # ~40 records a batch: many closes

    def value_of(n, i):
        return b"l%d-%04d" % (n, i)

    futures = send_from_threads(lambda n, i: producer.send(topic, value_of(n, i)), 4, 500)
    producer.close()
    # Only the first record of each batch takes the locked path (it opens the batch).
    through_lane = sum(isinstance(f, _RecordFuture) for fs in futures.values() for f in fs)
    assert through_lane > 1500, through_lane
    assert_each_thread_landed_in_order(topic, futures, value_of)


def test_futures_of_every_send_path_answer_alike(topic):
    """The fast lane's one-record future and the general path's future are both SendFutures:
    done(), exception(), result() and add_done_callback() behave the same."""
    producer = Producer(linger_ms=5_000)  # nothing ships before flush()
    first = producer.send(topic, b"opens the batch")  # the locked path opens the batch
    fast = producer.send(topic, b"through the lane")  # straight into the open batch
    keyed = producer.send(topic, b"keyed", key=b"k")  # the general path
    assert isinstance(fast, _RecordFuture) and not isinstance(first, _RecordFuture)
    called = []
    futures = (first, fast, keyed)
    for f in futures:
        assert isinstance(f, raykafka.SendFuture)
        assert not f.done()
        f.add_done_callback(called.append)
    producer.flush()
    assert [f.done() for f in futures] == [True, True, True]
    assert [f.exception(TIMEOUT_S) for f in futures] == [None, None, None]
    assert [m.offset for f in futures for m in f.result(TIMEOUT_S)] == [0, 1, 2]
    assert sorted(map(id, called)) == sorted(map(id, futures))
    late = []
    fast.add_done_callback(late.append)  # already done: called at once
    assert late == [fast]
    producer.close()


def test_a_send_blocked_on_a_full_buffer_gets_the_full_batch_shipped(topic):
    """buffer_memory holds one batch: the send that finds the open batch full closes it and
    must wait for space, which only comes once that batch is shipped and answered. Nothing
    else is in flight and the linger is long, so only the blocked send can get it going."""
    producer = Producer(linger_ms=60_000, batch_size=4_000, buffer_memory=4_000, max_block_ms=10_000)
    futures = [producer.send(topic, b"0000" + b"v" * 196)]  # opens the batch, wakes the sender
    time.sleep(0.5)  # the sender has seen it and sleeps for the 60 s linger
    started = time.monotonic()
    futures += [producer.send(topic, b"%04d" % i + b"v" * 196) for i in range(1, 60)]
    assert time.monotonic() - started < 8, "a send waited for the linger or max_block_ms"
    producer.flush(TIMEOUT_S)
    offsets = [m.offset for f in futures for m in f.result(TIMEOUT_S)]
    assert offsets == list(range(60))
    producer.close()


def test_threads_blocked_on_a_full_buffer_never_open_one_partition_twice(topic):
    """buffer_memory holds one batch and four threads send at once: while one waits for space
    (the lock is released), another may open the partition's batch. The waiter must then use
    that batch, not replace it (a replaced batch was never shipped and flush hung)."""
    producer = Producer(linger_ms=60_000, batch_size=4_000, buffer_memory=4_000, max_block_ms=20_000)

    def value_of(n, i):
        return b"%d-%04d" % (n, i) + b"v" * 190

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often: the interleaving shows up
    try:
        futures = send_from_threads(lambda n, i: producer.send(topic, value_of(n, i)), 4, 150)
        producer.flush(TIMEOUT_S)
    finally:
        sys.setswitchinterval(interval)
    producer.close()
    assert_each_thread_landed_in_order(topic, futures, value_of)


def test_a_done_callback_may_send(topic):
    """Callbacks run without the producer's lock: one that sends again (a chain of sends, a
    retry of its own) does not deadlock the producer."""
    producer = Producer(linger_ms=0)
    chained: list = []
    sent = threading.Event()

    def send_next(future):
        chained.append(producer.send(topic, b"second", key=b"k"))  # keyed: the locked path
        sent.set()

    producer.send(topic, b"first", key=b"k").add_done_callback(send_next)
    assert sent.wait(TIMEOUT_S), "the callback's send() never returned"
    producer.flush(TIMEOUT_S)
    assert [m.offset for m in chained[0].result(TIMEOUT_S)] == [1]
    producer.close()
