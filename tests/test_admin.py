"""Admin against real actors: topic lifecycle, partitions, configs, offsets, delete_records."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pyarrow as pa
import pytest

from raykafka import Admin, Consumer, Message, MessageSet, Producer, TopicPartition
from raykafka.actors.naming import TOPIC_MANAGER_NAME
from raykafka.api.producer import FRAMING_BYTES
from raykafka.errors import MessageTooLarge, OffsetOutOfRange, UnknownTopic
from raykafka.storage.layout import namespace_root
from raykafka.topic_config import TOPIC_CONFIG_KEYS

TIMEOUT_S = 30


def produce(producer: Producer, topic: str, values: list[bytes], partition: int = 0, timestamps=None):
    """Send ``values`` as one MessageSet to ``partition``; return their offsets."""
    stamps = timestamps or [None] * len(values)
    messages = MessageSet(Message(v, timestamp_ms=t) for v, t in zip(values, stamps, strict=True))
    return [md.offset for md in producer.send(topic, messages, partition=partition).result(TIMEOUT_S)]


def wait_ready(admin: Admin, topic: str, timeout_s: float = 60):
    """describe_topic once every partition actor answers (offsets are -1 while one is starting)."""
    deadline = time.monotonic() + timeout_s
    while True:
        desc = admin.describe_topic(topic)
        if all(p.high_watermark >= 0 for p in desc.partitions) or time.monotonic() > deadline:
            return desc
        time.sleep(0.2)


def replica_directories(rk, topic: str) -> list[Path]:
    """Where each partition's leader keeps its files (from the actor itself)."""
    import ray

    manager = ray.get_actor(TOPIC_MANAGER_NAME, namespace=rk.namespace)
    leaders = ray.get(manager.topic_metadata.remote(topic))["leaders"]
    return [Path(ray.get(handle.info.remote())["directory"]) for handle in leaders]


def read_partition(
    topic: str, partition: int, count: int, offset: int | None = None, reset: str = "earliest"
) -> pa.Table:
    """Exactly ``count`` records of one partition (fails if fewer arrive)."""
    consumer = Consumer(group_id=None, auto_offset_reset=reset)
    consumer.assign([TopicPartition(topic, partition, offset=offset)])
    tables = []
    got = 0
    for _ in range(50):
        if got >= count:
            break
        table = consumer.poll_batch(max_messages=count - got, timeout_s=0.5)
        tables.append(table)
        got += table.num_rows
    consumer.close()
    table = pa.concat_tables(tables) if tables else pa.table({})
    assert table.num_rows == count
    return table


def test_create_list_describe_delete(rk, topic_name):
    admin = Admin()
    a, b = topic_name("a"), topic_name("b")
    created = admin.create_topic(a, partitions=3, config={"retention.ms": "60000"})
    assert created.name == a
    assert [p.partition for p in created.partitions] == [0, 1, 2]
    desc = wait_ready(admin, a)
    assert desc.config == created.config
    for p in desc.partitions:
        assert (p.log_start_offset, p.high_watermark) == (0, 0)
        assert p.leader_node_id is not None
        assert p.replica_node_ids == [p.leader_node_id]
    # the effective config: every known key, the explicit one set, the rest Kafka's defaults
    assert set(desc.config) == set(TOPIC_CONFIG_KEYS)
    assert desc.config["retention.ms"] == "60000"
    assert desc.config["max.message.bytes"] == "1048588"
    assert desc.config["message.timestamp.type"] == "CreateTime"

    admin.create_topic(b)
    assert admin.list_topics() == sorted([a, b])
    assert admin.describe_topic(a) == desc

    admin.delete_topic(a)
    assert admin.list_topics() == [b]
    with pytest.raises(UnknownTopic):
        admin.describe_topic(a)
    admin.delete_topic(b)
    assert admin.list_topics() == []


def test_describe_shows_offsets(rk, topic_name):
    admin = Admin()
    topic = topic_name()
    admin.create_topic(topic, partitions=2)
    with Producer() as producer:
        assert produce(producer, topic, [b"a", b"b", b"c"], partition=1) == [0, 1, 2]
    parts = admin.describe_topic(topic).partitions
    assert [(p.log_start_offset, p.high_watermark) for p in parts] == [(0, 0), (0, 3)]


def test_create_partitions_only_grows(rk, topic_name):
    admin = Admin()
    topic = topic_name()
    admin.create_topic(topic, partitions=2)
    desc = admin.create_partitions(topic, total=5)
    assert [p.partition for p in desc.partitions] == [0, 1, 2, 3, 4]
    assert [p.partition for p in admin.describe_topic(topic).partitions] == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="only grow"):
        admin.create_partitions(topic, total=3)
    assert len(admin.describe_topic(topic).partitions) == 5
    # the new partitions take writes and reads (a fresh producer sees 5 partitions)
    with Producer() as producer:
        assert producer.partitions_for(topic) == 5
        assert produce(producer, topic, [b"p4-0", b"p4-1"], partition=4) == [0, 1]
    assert read_partition(topic, 4, 2).column("value").to_pylist() == [b"p4-0", b"p4-1"]


def test_alter_topic_config_visible_and_enforced(rk, topic_name):
    admin = Admin()
    topic = topic_name()
    admin.create_topic(topic, config={"retention.ms": "60000"})
    fits_100 = str(100 + FRAMING_BYTES)  # a batch of one record of 100 bytes
    desc = admin.alter_topic_config(topic, {"max.message.bytes": fits_100, "retention.bytes": "1000000"})
    assert desc.config["max.message.bytes"] == fits_100
    assert desc.config["retention.bytes"] == "1000000"
    assert desc.config["retention.ms"] == "60000"  # untouched keys keep their values
    assert admin.describe_topic(topic).config == desc.config

    with Producer() as producer:
        assert produce(producer, topic, [b"x" * 100]) == [0]
        with pytest.raises(MessageTooLarge):
            producer.send(topic, b"x" * 101)
        with pytest.raises(MessageTooLarge):
            producer.send_batch(topic, pa.table({"value": pa.array([b"ok", b"y" * 101], pa.binary())}))
    assert admin.list_offsets(topic, 0, "latest") == 1

    # raising the limit again lets bigger records through
    admin.alter_topic_config(topic, {"max.message.bytes": str(1000 + FRAMING_BYTES)})
    with Producer() as producer:
        assert produce(producer, topic, [b"z" * 1000]) == [1]
    assert read_partition(topic, 0, 2).column("value").to_pylist() == [b"x" * 100, b"z" * 1000]


def test_alter_config_seen_by_a_live_producer(rk, topic_name):
    """A producer that cached the topic's config before an alter follows the new limit."""
    admin = Admin()
    topic = topic_name()
    admin.create_topic(topic, config={"max.message.bytes": str(100 + FRAMING_BYTES)})
    producer = Producer()
    assert produce(producer, topic, [b"a" * 100]) == [0]
    admin.alter_topic_config(topic, {"max.message.bytes": str(1000 + FRAMING_BYTES)})
    assert produce(producer, topic, [b"b" * 500]) == [1]
    assert producer.send_batch(topic, pa.table({"value": [b"c" * 900]})).result(TIMEOUT_S)[0].offset == 2
    admin.alter_topic_config(topic, {"max.message.bytes": "10"})
    # the producer's cached limit is stale now; the partition actor enforces the new one
    with pytest.raises(MessageTooLarge):
        producer.send(topic, b"d" * 50).result(TIMEOUT_S)
    with contextlib.suppress(MessageTooLarge):  # flush/close re-raise the error the future had
        producer.close()
    assert admin.list_offsets(topic, 0, "latest") == 3


def test_list_offsets(rk, topic_name):
    admin = Admin()
    topic = topic_name()
    admin.create_topic(topic, partitions=2)
    assert admin.list_offsets(topic, 0, "earliest") == 0
    assert admin.list_offsets(topic, 0, "latest") == 0
    assert admin.list_offsets(topic, 0, 0) == 0  # no record: the log end
    with Producer() as producer:
        # two batches, timestamps out of order inside the first one
        assert produce(producer, topic, [b"a", b"b", b"c"], timestamps=[1000, 3000, 2000]) == [0, 1, 2]
        assert produce(producer, topic, [b"d", b"e"], timestamps=[4000, 5000]) == [3, 4]
    assert admin.list_offsets(topic, 0, "earliest") == 0
    assert admin.list_offsets(topic, 0, "latest") == 5
    assert admin.list_offsets(topic, 1, "latest") == 0
    expected = {0: 0, 1000: 0, 1001: 1, 2000: 1, 3000: 1, 3001: 3, 4000: 3, 4500: 4, 5000: 4, 5001: 5}
    assert {ts: admin.list_offsets(topic, 0, ts) for ts in expected} == expected


def test_delete_records_moves_log_start(rk, topic_name):
    admin = Admin()
    topic = topic_name()
    admin.create_topic(topic)
    with Producer() as producer:
        assert produce(producer, topic, [b"m%d" % i for i in range(4)]) == [0, 1, 2, 3]
        assert produce(producer, topic, [b"m%d" % i for i in range(4, 6)]) == [4, 5]
    assert admin.delete_records(topic, {0: 3}) == {0: 3}
    assert admin.list_offsets(topic, 0, "earliest") == 3
    assert admin.list_offsets(topic, 0, "latest") == 6
    assert admin.list_offsets(topic, 0, 0) == 3  # a timestamp lookup never answers below the start
    part = admin.describe_topic(topic).partitions[0]
    assert (part.log_start_offset, part.high_watermark) == (3, 6)
    # the log start never moves back
    assert admin.delete_records(topic, {0: 1}) == {0: 3}

    # reading from the start gets exactly the surviving records
    table = read_partition(topic, 0, 3)
    assert table.column("offset").to_pylist() == [3, 4, 5]
    assert table.column("value").to_pylist() == [b"m3", b"m4", b"m5"]

    # an explicit position below the start: reset to earliest, or OffsetOutOfRange with "none"
    assert read_partition(topic, 0, 3, offset=1).column("offset").to_pylist() == [3, 4, 5]
    consumer = Consumer(group_id=None, auto_offset_reset="none")
    consumer.assign([TopicPartition(topic, 0, offset=1)])
    with pytest.raises(OffsetOutOfRange) as info:
        consumer.poll(timeout_s=5)
    assert (info.value.earliest, info.value.latest) == (3, 6)

    # the whole log, up to its end
    assert admin.delete_records(topic, {0: 6}) == {0: 6}
    part = admin.describe_topic(topic).partitions[0]
    assert (part.log_start_offset, part.high_watermark) == (6, 6)
    with Producer() as producer:
        assert produce(producer, topic, [b"after"]) == [6]
    assert read_partition(topic, 0, 1).column("value").to_pylist() == [b"after"]


def test_recreated_topic_is_empty(rk, topic_name):
    admin = Admin()
    topic = topic_name()
    admin.create_topic(topic, partitions=2, config={"retention.ms": "60000"})
    with Producer() as producer:
        assert produce(producer, topic, [b"old-1", b"old-2"]) == [0, 1]
    old_dirs = replica_directories(rk, topic)
    assert len(old_dirs) == 2 and all(d.is_dir() for d in old_dirs)
    admin.delete_topic(topic)
    assert not any(d.exists() for d in old_dirs)  # the data is gone from disk
    admin.create_topic(topic, partitions=1)
    desc = wait_ready(admin, topic)
    assert len(desc.partitions) == 1
    assert (desc.partitions[0].log_start_offset, desc.partitions[0].high_watermark) == (0, 0)
    assert desc.config["retention.ms"] == TOPIC_CONFIG_KEYS["retention.ms"].default  # old config gone
    with Producer() as producer:
        assert produce(producer, topic, [b"new"]) == [0]
    assert read_partition(topic, 0, 1).column("value").to_pylist() == [b"new"]
    [new_dir] = replica_directories(rk, topic)
    assert new_dir not in old_dirs
    assert new_dir.resolve().is_relative_to(
        namespace_root(Path(rk.data_dir).resolve(), rk.namespace) / "replicas"
    )
