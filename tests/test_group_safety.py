"""Group commits never go backwards by accident, and a consumer that stops polling (or is
dropped without close(), as a re-run notebook cell does) leaves its group (a real local Ray)."""

from __future__ import annotations

import gc
import time
import uuid

import ray

from raykafka import Admin, Consumer, Producer, TopicPartition
from raykafka.api.connection import current_settings, group_coordinator

WAIT_S = 60


def test_a_late_older_commit_never_overwrites_a_newer_one(rk, topic_name):
    topic, group = topic_name(), f"g-{uuid.uuid4().hex[:6]}"
    Admin().create_topic(topic, partitions=1)
    coordinator = group_coordinator(current_settings(), group)
    tp = TopicPartition(topic, 0)
    # Ray does not order calls to an async actor: the newer commit may arrive first.
    assert ray.get(coordinator.commit.remote(None, {tp: 10}, ("client-a", 2))) is True
    assert ray.get(coordinator.commit.remote(None, {tp: 5}, ("client-a", 1))) is False  # stale: dropped
    assert ray.get(coordinator.committed.remote([tp])) == {tp: 10}
    assert ray.get(coordinator.commit.remote(None, {tp: 12}, ("client-a", 3))) is True
    assert ray.get(coordinator.commit.remote(None, {tp: 11}, ("client-b", 1))) is True  # its own numbers
    assert ray.get(coordinator.committed.remote([tp])) == {tp: 11}

    # Through a Consumer: every commit is numbered, so a sync commit after an async auto-commit wins.
    consumer = Consumer(group_id=group, enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, 0, offset=0)])
    consumer.commit({tp: 20})
    consumer.commit({tp: 21})
    assert consumer.committed([tp]) == {tp: 21}
    consumer.close()


def _assigned(consumer: Consumer, want: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while len(consumer.assignment()) != want:
        assert time.monotonic() < deadline, consumer.assignment()
        consumer.poll_batch(timeout_s=0.2)


def test_a_consumer_dropped_without_close_leaves_its_group(rk, topic_name):
    topic, group = topic_name(), f"g-{uuid.uuid4().hex[:6]}"
    Admin().create_topic(topic, partitions=2)
    config = {"group_id": group, "auto_offset_reset": "earliest", "max_poll_interval_ms": 2000}
    first = Consumer(**config)
    first.subscribe([topic])
    _assigned(first, 2)
    del first  # a notebook cell run again: the old consumer is dropped, never closed
    gc.collect()

    values = [f"v-{i}".encode() for i in range(10)]
    with Producer() as producer:
        for i, value in enumerate(values):
            producer.send(topic, value, partition=i % 2)
    second = Consumer(**config)
    second.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + WAIT_S
    while len(got) < len(values):
        assert time.monotonic() < deadline, f"read {len(got)}; assignment {second.assignment()}"
        got += second.poll_batch(timeout_s=0.5).column("value").to_pylist()
    assert sorted(got) == sorted(values)
    assert sorted(tp.partition for tp in second.assignment()) == [0, 1]
    second.close()


def test_a_consumer_that_stops_polling_leaves_and_rejoins_at_its_next_poll(rk, topic_name):
    topic, group = topic_name(), f"g-{uuid.uuid4().hex[:6]}"
    Admin().create_topic(topic, partitions=2)
    config = {"group_id": group, "auto_offset_reset": "earliest", "max_poll_interval_ms": 2000}
    slow, steady = Consumer(**config), Consumer(**config)
    slow.subscribe([topic])
    steady.subscribe([topic])
    deadline = time.monotonic() + WAIT_S
    while len(slow.assignment()) + len(steady.assignment()) != 2 or not slow.assignment():
        assert time.monotonic() < deadline
        slow.poll_batch(timeout_s=0.1)
        steady.poll_batch(timeout_s=0.1)
    # slow stops polling; steady keeps on and takes over everything
    deadline = time.monotonic() + WAIT_S
    while len(steady.assignment()) != 2:
        assert time.monotonic() < deadline, steady.assignment()
        steady.poll_batch(timeout_s=0.2)
    assert [m.member_id for m in Admin().describe_group(group).members] == [steady._member.member_id]
    # its next poll: it drops what it held (read by steady now) and rejoins
    slow.poll_batch(timeout_s=0.1)
    assert slow.assignment() == []
    deadline = time.monotonic() + WAIT_S
    while not (len(slow.assignment()) == 1 and len(steady.assignment()) == 1):
        assert time.monotonic() < deadline, (slow.assignment(), steady.assignment())
        slow.poll_batch(timeout_s=0.1)
        steady.poll_batch(timeout_s=0.1)
    slow.close()
    steady.close()
