"""Produce requests of several batches: one ``append`` call carries consecutive batches of one
partition (a producer's backlog), each appended and answered on its own, in sequence order,
and a retry is answered batch by batch from the partition's cache."""

from __future__ import annotations

import contextlib
import time
from collections import deque

import pyarrow as pa
import pytest
import ray

from raykafka import Admin, Producer
from raykafka.api.producer import BatchResult, _Batch, _Request, _well_formed
from raykafka.errors import MessageTooLarge
from raykafka.storage.records import RECORD_SCHEMA, encode_record_batch
from tests.test_faults import leader, read_all

TIMEOUT_S = 60


def payload(values: list[bytes], first_timestamp_ms: int = 1_000) -> pa.Buffer:
    """One batch as the producer ships it: Arrow IPC in RECORD_SCHEMA."""
    n = len(values)
    batch = pa.RecordBatch.from_arrays(
        [
            pa.nulls(n, pa.binary()),
            pa.array(values, pa.binary()),
            pa.array(range(first_timestamp_ms, first_timestamp_ms + n), pa.int64()),
            pa.nulls(n, RECORD_SCHEMA.field("headers").type),
        ],
        schema=RECORD_SCHEMA,
    )
    return encode_record_batch(batch)


def request(seq: int, first_unacked: int | None = None) -> tuple:
    return ("producer-a", seq, seq if first_unacked is None else first_unacked, 1, 30_000, False)


def test_one_append_call_appends_several_batches_each_answered(rk, topic_name):
    topic = topic_name()
    Admin().create_topic(topic, config={"max.message.bytes": "1000"})
    handle = leader(rk, topic)
    batches = [[b"a0", b"a1", b"a2"], [b"x" * 2000], [b"c0", b"c1"]]
    answers = ray.get(handle.append.remote([payload(v) for v in batches], request(0)), timeout=TIMEOUT_S)
    assert answers[0] == (0, -1)
    assert isinstance(answers[1], MessageTooLarge)  # that batch alone: nothing of it written
    assert answers[2] == (3, -1)
    table = read_all(topic)
    assert table.column("value").to_pylist() == [b"a0", b"a1", b"a2", b"c0", b"c1"]
    assert table.column("offset").to_pylist() == [0, 1, 2, 3, 4]

    # A single payload still gets a single answer, and its error raised.
    assert ray.get(handle.append.remote(payload([b"d0"]), request(3)), timeout=TIMEOUT_S) == (5, -1)
    with pytest.raises(MessageTooLarge):
        ray.get(handle.append.remote(payload([b"y" * 2000]), request(4)), timeout=TIMEOUT_S)
    with pytest.raises(ValueError, match="1 to 16 batches"):
        ray.get(handle.append.remote([], request(5)), timeout=TIMEOUT_S)
    assert read_all(topic).column("value").to_pylist()[-1] == b"d0"  # nothing else came in


def test_a_retried_request_is_answered_from_the_cache_batch_by_batch(rk, topic_name):
    topic = topic_name()
    Admin().create_topic(topic)
    handle = leader(rk, topic)
    first = [payload([b"s0"]), payload([b"s1", b"s1b"]), payload([b"s2"])]
    assert ray.get(handle.append.remote(first, request(0)), timeout=TIMEOUT_S) == [(0, -1), (1, -1), (3, -1)]
    # The answer was lost; the retry groups the batches differently and adds a new one (seq 3).
    again = [payload([b"s1", b"s1b"]), payload([b"s2"]), payload([b"s3"])]
    answers = ray.get(handle.append.remote(again, request(1, 1)), timeout=TIMEOUT_S)
    assert answers == [(1, -1), (3, -1), (4, -1)]
    assert ray.get(handle.append.remote(first[:1], request(0, 0)), timeout=TIMEOUT_S) == [(0, -1)]
    table = read_all(topic)  # each batch once, in sequence order
    assert table.column("value").to_pylist() == [b"s0", b"s1", b"s1b", b"s2", b"s3"]


def test_a_request_waits_for_its_predecessor(rk, topic_name):
    """Out of order at the actor (as Ray may start them): seq 2..3 waits for seq 0..1."""
    topic = topic_name()
    Admin().create_topic(topic)
    handle = leader(rk, topic)
    later = handle.append.remote([payload([b"r2"]), payload([b"r3"])], request(2, 0))
    time.sleep(0.3)
    assert ray.wait([later], timeout=0)[0] == []  # still waiting for seq 0 and 1
    earlier = handle.append.remote([payload([b"r0"]), payload([b"r1"])], request(0))
    assert ray.get([earlier, later], timeout=TIMEOUT_S) == [[(0, -1), (1, -1)], [(2, -1), (3, -1)]]
    assert read_all(topic).column("value").to_pylist() == [b"r0", b"r1", b"r2", b"r3"]


def tables(n_tables: int, rows: int) -> list[pa.Table]:
    return [
        pa.table({"value": pa.array([b"t%d-%d" % (t, i) for i in range(rows)], pa.binary())})
        for t in range(n_tables)
    ]


@pytest.mark.parametrize("max_request_size", [8 << 20, 1])
def test_a_backlog_ships_in_fewer_requests_in_send_order(rk, topic_name, max_request_size):
    topic = topic_name()
    Admin().create_topic(topic)
    sent = tables(40, 200)
    with Producer(max_in_flight_requests_per_partition=1, max_request_size=max_request_size) as producer:
        futures = [producer.send_batch(topic, t, partition=0) for t in sent]
        offsets = [md.offset for f in futures for md in f.result(timeout=TIMEOUT_S)]
        requests = producer._requests_sent
    assert offsets == list(range(40 * 200))
    values = [v for t in sent for v in t.column("value").to_pylist()]
    assert read_all(topic).column("value").to_pylist() == values
    if max_request_size == 1:
        assert requests == 40  # a batch over the limit goes alone; none is joined to it
    else:
        assert requests < 40  # one request in flight at a time: the rest queued and went together


def queued(producer: Producer, topic: str, seq: int, nbytes: int = 100, attempts: int = 0) -> _Batch:
    batch = _Batch(topic, 0, b"", 1, nbytes, BatchResult(topic, 0))
    batch.seq = seq
    batch.attempts = attempts
    return batch


def reset(producer: Producer, slot: tuple[str, int]) -> None:
    """Undo queue states set up by hand (under the producer's lock), so close() has nothing
    to wait for."""
    producer._ready.clear()
    producer._in_flight_requests.clear()
    producer._in_flight[slot] = 0
    producer._next_seq[slot] = 0
    producer._unacked[slot] = set()
    producer._buffered_bytes = 0
    producer._errors.clear()


@contextlib.contextmanager
def locked_producer(topic: str, **settings):
    """A real producer with its lock held, for setting up queue states by hand."""
    producer = Producer(**settings)
    slot = (topic, 0)
    try:
        with producer._lock:
            try:
                yield producer, slot
            finally:
                reset(producer, slot)
    finally:
        producer.close()


def test_a_request_holds_only_consecutive_sequence_numbers(rk, topic_name):
    """Batches queued for a retry (seq 3, 4) and new ones (next seq 7: 5 and 6 are still in
    flight): the partition appends a request's batches as seq, seq + 1, ..., so 3-4 and the
    new ones must go in different requests."""
    topic = topic_name()
    Admin().create_topic(topic)
    settings = dict(max_in_flight_requests_per_partition=5, max_request_size=350)
    with locked_producer(topic, **settings) as (producer, slot):
        retried = [queued(producer, topic, 3, attempts=1), queued(producer, topic, 4, attempts=1)]
        new = [queued(producer, topic, -1) for _ in range(3)]
        producer._ready.extend(retried + new)
        producer._next_seq[slot] = 7
        producer._unacked[slot] = {3, 4, 5, 6}
        producer._in_flight[slot] = 1
        requests = producer._drain_locked(time.monotonic())
        groups = [[b.seq for b in r.batches] for r in requests]
        assert groups == [[3, 4], [7, 8, 9]]  # 350 bytes would take three 100-byte batches
        assert producer._in_flight[slot] == 3 and not producer._ready
        assert producer._unacked[slot] == {3, 4, 5, 6, 7, 8, 9}


def test_a_new_batch_does_not_join_a_retried_one(rk, topic_name):
    """Seq 5 is retried and the next new batch is seq 6: consecutive, but a retry's partition
    may be slow to answer (a failover), and a new batch should not wait with it."""
    topic = topic_name()
    Admin().create_topic(topic)
    settings = dict(max_request_size=10_000)
    with locked_producer(topic, **settings) as (producer, slot):
        producer._ready.append(queued(producer, topic, 5, attempts=2))
        producer._ready.extend(queued(producer, topic, -1) for _ in range(2))
        producer._next_seq[slot] = 6
        producer._unacked[slot] = {5}
        requests = producer._drain_locked(time.monotonic())
        assert [[b.seq for b in r.batches] for r in requests] == [[5], [6, 7]]


def test_batches_of_a_request_expire_each_after_their_own_first_request(rk, topic_name):
    topic = topic_name()
    Admin().create_topic(topic)
    settings = dict(request_timeout_ms=10_000)
    with locked_producer(topic, **settings) as (producer, slot):
        old, young = queued(producer, topic, 0, attempts=2), queued(producer, topic, 1, attempts=1)
        now = time.monotonic()
        old.first_sent_at, young.first_sent_at = now - 11, now - 2
        request = _Request(slot)
        request.add(old)
        request.add(young)
        producer._in_flight_requests[id(request)] = request
        producer._in_flight[slot] = 1
        producer._unacked[slot] = {0, 1}
        producer._buffered_bytes = 200
        expired = producer._expire_in_flight_locked(now)
        assert [(b.seq, type(e).__name__) for b, e in expired] == [(0, "RequestTimedOut")]
        assert not young.settled and producer._in_flight[slot] == 1  # the request still holds its slot
        assert [b.seq for b, _ in producer._expire_in_flight_locked(now + 8.5)] == [1]
        assert young.settled and producer._in_flight[slot] == 0 and not producer._in_flight_requests


def test_requests_never_hold_more_batches_than_the_partition_remembers(rk, topic_name):
    topic = topic_name()
    Admin().create_topic(topic)
    settings = dict(max_in_flight_requests_per_partition=50, max_request_size=1 << 30)
    with locked_producer(topic, **settings) as (producer, _slot):
        producer._ready.extend(queued(producer, topic, -1) for _ in range(7))
        requests = producer._drain_locked(time.monotonic())
        # 128 answers remembered per producer / 50 requests in flight: 2 batches per request
        assert [[b.seq for b in r.batches] for r in requests] == [[0, 1], [2, 3], [4, 5], [6]]


def test_a_malformed_answer_is_recognised():
    assert _well_formed([(0, -1), ValueError("x")], 2)
    assert not _well_formed((0, -1), 1)  # one batch's answer, not a request's
    assert not _well_formed([(0, -1)], 2)
    assert not _well_formed([(0, -1, 3)], 1)
    assert not _well_formed([("0", -1)], 1)


def test_a_request_stops_at_the_in_flight_limit(rk, topic_name):
    topic = topic_name()
    Admin().create_topic(topic)
    settings = dict(max_in_flight_requests_per_partition=2, max_request_size=100)
    with locked_producer(topic, **settings) as (producer, slot):
        producer._ready.extend(queued(producer, topic, -1) for _ in range(4))
        requests = producer._drain_locked(time.monotonic())
        assert [[b.seq for b in r.batches] for r in requests] == [[0], [1]]
        assert [b.seq for b in producer._ready] == [-1, -1]  # numbered when they go
        assert isinstance(requests[0], _Request) and producer._in_flight[slot] == 2


def in_flight(producer: Producer, topic: str, seq: int, leader_name: str | None, sent_at: float) -> _Request:
    request = _Request((topic, 0))
    batch = queued(producer, topic, seq, attempts=1)
    batch.first_sent_at = sent_at
    request.add(batch)
    request.leader_name, request.sent_at = leader_name, sent_at
    producer._in_flight_requests[id(request)] = request
    producer._in_flight[(topic, 0)] = producer._in_flight.get((topic, 0), 0) + 1
    producer._unacked.setdefault((topic, 0), set()).add(seq)
    return request


def test_a_long_wait_re_reads_the_leaders_once_per_topic_and_period(rk, topic_name):
    topic = topic_name()
    Admin().create_topic(topic)
    with locked_producer(topic) as (producer, _slot):
        state = producer._topic(topic)
        now = time.monotonic()
        for seq in range(3):
            in_flight(producer, topic, seq, "any", now - 5)
        in_flight(producer, topic, 3, "any", now)  # sent just now: not due
        assert producer._unanswered_topics_locked(now) == [state]  # three slow requests, one re-read
        assert producer._unanswered_topics_locked(now + 1) == []  # not again within LEADER_ATTEMPT_S
        assert producer._unanswered_topics_locked(now + 2.5) == [state]


def test_only_requests_to_an_actor_that_no_longer_leads_are_sent_again(rk, topic_name):
    """The leader epoch also moves when only a follower changed; a request waiting on the
    actor that still leads must keep waiting (resending it there could store it twice)."""
    topic = topic_name()
    Admin().create_topic(topic)
    producer = Producer()
    try:
        state = producer._topic(topic)
        leader_name = state.routes[0][1]
        assert leader_name is not None
        with producer._lock:
            current = in_flight(producer, topic, 0, leader_name, time.monotonic() - 5)
            gone = in_flight(producer, topic, 1, "raykafka.partition.gone", time.monotonic() - 5)
        producer._resend_if_leader_moved(state)
        with producer._lock:
            assert list(producer._in_flight_requests.values()) == [current]
            assert producer._in_flight[(topic, 0)] == 1
            assert producer._ready == deque(gone.batches)  # queued again, for the current leader
            reset(producer, (topic, 0))
    finally:
        producer.close()
