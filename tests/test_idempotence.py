"""Idempotent produce on one node (KIP-98): a batch carries (producer id, epoch, sequence) in its
frame header, so a retry is answered with the offsets it was stored at -- after the partition
actor's process was killed and restarted too -- and never stored twice. Multi-node failover:
tests/test_replication.py."""

from __future__ import annotations

import os
import signal

import pytest
import ray

from raykafka import Admin, Producer
from raykafka.errors import MessageTooLarge, OutOfOrderSequence
from tests.test_faults import leader, read_all, wait_for
from tests.test_produce_requests import payload

TIMEOUT_S = 60
PRODUCER = (0x5EED_0000_0001, 0)  # (63-bit id, epoch): an idempotent producer


def request(seq: int, first_unacked: int | None = None, timeout_ms: int = 30_000, producer=PRODUCER) -> tuple:
    return (producer, seq, seq if first_unacked is None else first_unacked, 1, timeout_ms, False)


def restart(handle) -> None:
    """SIGKILL the actor's process (answers in flight are lost with it); Ray starts it again,
    and it reopens its log, unclean, and leads again."""
    old = ray.get(handle.info.remote(), timeout=TIMEOUT_S)["pid"]
    os.kill(old, signal.SIGKILL)
    wait_for(
        lambda: (info := ray.get(handle.info.remote(), timeout=5))["pid"] != old and info["role"] == "leader",
        what="the partition actor to restart as leader",
    )


def test_a_retry_after_the_leader_restarts_is_answered_not_stored_again(rk, topic_name):
    topic = topic_name()
    Admin().create_topic(topic, config={"message.timestamp.type": "LogAppendTime"})
    handle = leader(rk, topic)
    first = [payload([b"a0", b"a1"]), payload([b"b0"])]
    answers = ray.get(handle.append.remote(first, request(0)), timeout=TIMEOUT_S)
    assert [base for base, _ in answers] == [0, 2] and all(stamp > 0 for _, stamp in answers)
    restart(handle)  # the answer was lost: the producer sends the request again, with a new batch
    again = ray.get(handle.append.remote([*first, payload([b"c0"])], request(0)), timeout=TIMEOUT_S)
    assert again[:2] == answers  # the stored batches' offsets and LogAppendTimes, from the log
    assert again[2][0] == 3
    assert read_all(topic).column("value").to_pylist() == [b"a0", b"a1", b"b0", b"c0"]
    assert ray.get(handle.state.remote(), timeout=TIMEOUT_S)["producers"] == 1


def test_out_of_order_and_rejected_batches_are_never_stored(rk, topic_name):
    topic = topic_name()
    Admin().create_topic(topic, config={"max.message.bytes": "1000"})
    handle = leader(rk, topic)
    # A rejected batch (too large) consumes its number: the next one is appended after it.
    answers = ray.get(
        handle.append.remote([payload([b"r0"]), payload([b"x" * 2000]), payload([b"r2"])], request(0)),
        timeout=TIMEOUT_S,
    )
    assert answers[0] == (0, -1) and isinstance(answers[1], MessageTooLarge) and answers[2] == (1, -1)
    # A gap that is never filled (seq 4 without 3) is refused once the request's timeout passed.
    with pytest.raises(OutOfOrderSequence):
        ray.get(handle.append.remote(payload([b"r4"]), request(4, 3, timeout_ms=200)), timeout=TIMEOUT_S)
    # A batch the producer gave up (first_unacked passed it) arriving late is not stored either.
    assert ray.get(handle.append.remote(payload([b"r5"]), request(5, 5)), timeout=TIMEOUT_S) == (2, -1)
    with pytest.raises(OutOfOrderSequence):
        ray.get(handle.append.remote(payload([b"r3"]), request(3)), timeout=TIMEOUT_S)
    # A new instance of the producer (a higher epoch) fences the old one.
    newer = (PRODUCER[0], 1)
    assert ray.get(handle.append.remote(payload([b"n0"]), request(0, producer=newer)), timeout=TIMEOUT_S) == (
        3,
        -1,
    )
    with pytest.raises(OutOfOrderSequence, match="newer instance"):
        ray.get(handle.append.remote(payload([b"r6"]), request(6)), timeout=TIMEOUT_S)
    assert read_all(topic).column("value").to_pylist() == [b"r0", b"r2", b"r5", b"n0"]


def test_the_producer_is_idempotent_by_default(rk, topic_name):
    topic = topic_name()
    Admin().create_topic(topic)
    with Producer() as producer:
        assert producer.enable_idempotence
        pid, epoch = producer._producer_id
        assert 0 <= pid < 1 << 63 and epoch == 0
        assert [md.offset for md in producer.send(topic, b"v0").result(TIMEOUT_S)] == [0]
    handle = leader(rk, topic)
    frames = ray.get(handle.fetch.remote(0, 1 << 20, 0), timeout=TIMEOUT_S)[0]
    from raykafka.storage import iter_frames

    [(header, _)] = [hp for buf in frames for hp in iter_frames(memoryview(buf).cast("B"))]
    assert (header.producer_id, header.producer_epoch, header.sequence) == (pid, 0, 0)
    with Producer(enable_idempotence=False) as producer:
        assert isinstance(producer._producer_id, str)  # only ordered: nothing of it in the log
        producer.send(topic, b"v1").result(TIMEOUT_S)
    with pytest.raises(ValueError, match="max_in_flight"):
        Producer(max_in_flight_requests_per_partition=129)
