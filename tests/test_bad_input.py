"""Bad input: typed errors at the call, raised before anything is written; afterwards all still works.

The tests share one namespace and data directory (``rk`` overridden below), so the
TopicManager starts once; every test uses topics of its own.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pyarrow as pa
import pytest

import raykafka
from raykafka import Admin, Consumer, Message, MessageSet, Producer, TopicPartition
from raykafka.api.producer import FRAMING_BYTES
from raykafka.errors import (
    InvalidConfig,
    InvalidTopicName,
    MessageTooLarge,
    OffsetOutOfRange,
    TopicAlreadyExists,
    UnknownTopic,
)
from raykafka.storage.layout import namespace_root
from tests.conftest import kill_namespace

TIMEOUT_S = 30

BAD_NAMES = ["", "a/b", "../x", "x" * 250, ".", "..", "bad name", "a\\b", "tab\tname", "é", "a\x00b", "/abs"]


@pytest.fixture(scope="module")
def shared(ray_session, tmp_path_factory):
    namespace = f"test-bad-{uuid.uuid4().hex[:8]}"
    root = tmp_path_factory.mktemp("bad")
    yield namespace, root
    kill_namespace(namespace)


@pytest.fixture
def rk(shared):
    namespace, root = shared
    return raykafka.connect(namespace=namespace, data_dir=str(root / "data"))


def make_topic() -> str:
    """A new one-partition topic holding two records, whose max.message.bytes fits a record of
    100 key + value bytes in a batch of its own (and no more)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    Admin().create_topic(name, config={"max.message.bytes": str(100 + FRAMING_BYTES)})
    with Producer() as producer:
        producer.send(name, MessageSet([Message(b"r0"), Message(b"r1")])).result(TIMEOUT_S)
    return name


@pytest.fixture(scope="module")
def module_topic(shared):
    namespace, root = shared
    raykafka.connect(namespace=namespace, data_dir=str(root / "data"))
    return make_topic()


@pytest.fixture
def topic(rk, module_topic):
    """The module's topic: tests only add to it (so they check offsets relative to its log end)."""
    return module_topic


def latest(topic: str, partition: int = 0) -> int:
    return Admin().list_offsets(topic, partition, "latest")


def round_trip(topic: str) -> None:
    """A normal send and read still work: the new record lands right at the old log end."""
    end = latest(topic)
    with Producer() as producer:
        [md] = producer.send(topic, b"ok-%d" % end, key=b"k").result(TIMEOUT_S)
    assert (md.partition, md.offset) == (0, end)
    consumer = Consumer(group_id=None, auto_offset_reset="none")
    consumer.assign([TopicPartition(topic, 0, offset=end)])
    message = consumer.poll(timeout_s=10)
    assert (message.offset, message.key, message.value) == (end, b"k", b"ok-%d" % end)
    consumer.close()


# -- topic names -------------------------------------------------------------------------


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_invalid_topic_names(rk, topic, name):
    admin = Admin()
    before = admin.list_topics()
    with pytest.raises(InvalidTopicName):
        admin.create_topic(name)
    for call in (
        lambda: admin.describe_topic(name),
        lambda: admin.delete_topic(name),
        lambda: admin.alter_topic_config(name, {"retention.ms": "1000"}),
        lambda: admin.create_partitions(name, total=2),
        lambda: admin.list_offsets(name, 0, "latest"),
        lambda: admin.delete_records(name, {0: 0}),
    ):
        with pytest.raises(InvalidTopicName):
            call()
    with Producer() as producer, pytest.raises((InvalidTopicName, UnknownTopic)):
        producer.send(name, b"x")
    with pytest.raises((InvalidTopicName, UnknownTopic)):
        Consumer(group_id=None).assign([TopicPartition(name, 0)])
    assert admin.list_topics() == before
    round_trip(topic)


@pytest.mark.parametrize("length", [200, 249])
def test_long_topic_names_work_end_to_end(rk, length):
    admin = Admin()
    name = uuid.uuid4().hex[:8] + "L" * (length - 8)
    admin.create_topic(name)
    try:
        with Producer(request_timeout_ms=5_000) as producer:
            [md] = producer.send(name, b"long").result(TIMEOUT_S)
        assert (md.partition, md.offset) == (0, 0)
        assert admin.list_offsets(name, 0, "latest") == 1
    finally:
        admin.delete_topic(name)


def test_topic_names_stay_inside_the_data_dir(rk, shared):
    """Odd but legal names (dots, dashes) make directories under data_dir/replicas and nowhere else."""
    _, root = shared
    data_dir = root / "data"
    admin = Admin()
    odd = [
        f"..{uuid.uuid4().hex[:6]}",
        f"...{uuid.uuid4().hex[:6]}",
        f".h{uuid.uuid4().hex[:6]}",
        f"-{uuid.uuid4().hex[:6]}",
        f"a..b{uuid.uuid4().hex[:6]}",
        f"_.-{uuid.uuid4().hex[:6]}",
    ]
    with Producer() as producer:
        for name in odd:
            admin.create_topic(name)
            assert producer.send(name, b"v").result(TIMEOUT_S)[0].offset == 0
    for name in BAD_NAMES:
        with pytest.raises(InvalidTopicName):
            admin.create_topic(name)

    namespace_dir = namespace_root(data_dir.resolve(), rk.namespace)
    replicas = namespace_dir / "replicas"
    manager = raykafka.api.connection.topic_manager(rk)
    import ray

    for name in odd:
        for handle in ray.get(manager.topic_metadata.remote(name))["leaders"]:
            directory = Path(ray.get(handle.info.remote())["directory"]).resolve()
            assert directory.is_relative_to(replicas)
            assert directory.relative_to(replicas).parts[0].startswith(f"{name}-0")
    # nothing outside data_dir: the test's root holds only it, data_dir only raykafka's own folders
    assert sorted(p.name for p in root.iterdir()) == ["data"]
    assert {p.name for p in data_dir.iterdir()} <= {"namespaces", ".layout-migration.lock"}
    assert [p.name for p in (data_dir / "namespaces").iterdir()] == [namespace_dir.name]
    assert {p.name for p in namespace_dir.iterdir()} <= {"replicas", "metadata", "groups", "meta.properties"}
    for path, dirs, _files in os.walk(replicas):
        for d in dirs:
            assert (Path(path) / d).resolve().is_relative_to(replicas)
    assert not (root / "x").exists() and not (data_dir / "x").exists()


# -- create_topic arguments ----------------------------------------------------------------


def test_topic_already_exists(rk, topic):
    admin = Admin()
    before = admin.describe_topic(topic)
    assert before.partitions[0].high_watermark >= 2
    with pytest.raises(TopicAlreadyExists):
        admin.create_topic(topic, partitions=3, config={"retention.ms": "1"})
    assert admin.describe_topic(topic) == before  # neither partitions nor config changed, no data lost
    round_trip(topic)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"partitions": 0}, ValueError),
        ({"partitions": -1}, ValueError),
        ({"partitions": "2"}, TypeError),
        ({"partitions": 1.0}, TypeError),
        ({"partitions": True}, TypeError),
        ({"replication_factor": 0}, ValueError),
    ],
    ids=repr,
)
def test_bad_partition_counts(rk, topic_name, kwargs, error):
    admin = Admin()
    name = topic_name()
    with pytest.raises(error):
        admin.create_topic(name, **kwargs)
    assert name not in admin.list_topics()


@pytest.mark.parametrize(
    "config",
    [
        {"retention.msx": "1"},
        {"compression.type": "lz4"},
        {"": "1"},
        {"retention.ms": "abc"},
        {"retention.ms": "-2"},
        {"retention.ms": "1.5"},
        {"retention.ms": ""},
        {"retention.ms": None},
        {"retention.ms": 1.5},
        {"retention.ms": True},
        {"segment.bytes": "10"},
        {"max.message.bytes": "-1"},
        {"max.message.bytes": str(1 << 31)},
        {"message.timestamp.type": "logappendtime"},
        {"cleanup.policy": "compact"},
        {"cleanup.policy": "nonsense"},
        {"min.insync.replicas": "0"},
        {"flush.messages": "0"},
    ],
    ids=repr,
)
def test_bad_configs(rk, topic, topic_name, config):
    admin = Admin()
    name = topic_name()
    with pytest.raises(InvalidConfig):
        admin.create_topic(name, config=config)
    assert name not in admin.list_topics()
    before = admin.describe_topic(topic).config
    with pytest.raises(InvalidConfig):
        admin.alter_topic_config(topic, config)
    assert admin.describe_topic(topic).config == before


def test_config_must_be_a_mapping(rk, topic):
    admin = Admin()
    with pytest.raises(InvalidConfig):
        admin.create_topic("never-" + uuid.uuid4().hex[:6], config=[("retention.ms", "1")])
    with pytest.raises((InvalidConfig, TypeError, ValueError)):
        admin.alter_topic_config(topic, {})
    round_trip(topic)


# -- unknown topics ---------------------------------------------------------------------------


def test_unknown_topic_everywhere(rk, topic, topic_name):
    admin = Admin()
    missing = topic_name("missing")
    producer = Producer()
    calls = {
        "send": lambda: producer.send(missing, b"x"),
        "send keyed": lambda: producer.send(missing, b"x", key=b"k", partition=0),
        "send MessageSet": lambda: producer.send(missing, MessageSet(Message(b"x"))),
        "send_batch": lambda: producer.send_batch(missing, pa.table({"value": [b"x"]})),
        "assign": lambda: Consumer(group_id=None).assign([TopicPartition(missing, 0)]),
        "describe": lambda: admin.describe_topic(missing),
        "delete": lambda: admin.delete_topic(missing),
        "alter": lambda: admin.alter_topic_config(missing, {"retention.ms": "1000"}),
        "list_offsets": lambda: admin.list_offsets(missing, 0, "earliest"),
        "list_offsets ts": lambda: admin.list_offsets(missing, 0, 1000),
        "delete_records": lambda: admin.delete_records(missing, {0: 0}),
        "create_partitions": lambda: admin.create_partitions(missing, total=2),
    }
    for what, call in calls.items():
        with pytest.raises(UnknownTopic) as info:
            call()
        assert "create" in str(info.value), what  # the message says how to create it
    producer.close()
    assert missing not in admin.list_topics()  # nothing auto-created it
    round_trip(topic)


def test_a_deleted_topic_is_unknown(rk, topic_name):
    admin = Admin()
    name = topic_name()
    admin.create_topic(name)
    admin.delete_topic(name)
    with pytest.raises(UnknownTopic):
        admin.delete_topic(name)
    with pytest.raises(UnknownTopic), Producer() as producer:
        producer.send(name, b"x")


# -- payloads ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["text", 1, None, 1.5, [b"a"], {"a": b"b"}], ids=repr)
def test_payloads_must_be_bytes(rk, topic, value):
    end = latest(topic)
    producer = Producer()
    with pytest.raises(TypeError):
        producer.send(topic, value)
    with pytest.raises(TypeError):
        Message(value)
    with pytest.raises(TypeError):
        producer.send(topic, b"v", key=value if value is not None else "k")
    with pytest.raises(TypeError):
        producer.send(topic, b"v", headers={"h": value if value is not None else "s"})
    producer.close()
    assert latest(topic) == end
    round_trip(topic)


def test_bad_message_sets_headers_and_tables(rk, topic):
    end = latest(topic)
    producer = Producer()
    bad = [
        (TypeError, lambda: producer.send(topic, MessageSet([b"raw bytes"]))),
        (TypeError, lambda: MessageSet([Message(b"a"), "b"])),
        (TypeError, lambda: producer.send(topic, MessageSet(Message(b"a")), key=b"k")),
        (ValueError, lambda: producer.send(topic, MessageSet([]))),
        (TypeError, lambda: producer.send(topic, b"v", headers={1: b"x"})),
        (TypeError, lambda: producer.send(topic, b"v", headers=[("h", b"x")])),
        (TypeError, lambda: producer.send(topic, b"v", timestamp_ms="now")),
        (ValueError, lambda: producer.send(topic, b"v", timestamp_ms=-1)),
        (ValueError, lambda: producer.send(topic, b"v", partition=-1)),
        (ValueError, lambda: producer.send(topic, b"v", partition=1)),  # the topic has one partition
        (TypeError, lambda: producer.send(topic, b"v", partition="0")),
        (TypeError, lambda: producer.send_batch(topic, [b"a"])),
        (TypeError, lambda: producer.send_batch(topic, pa.table({"value": ["a string"]}))),
        (TypeError, lambda: producer.send_batch(topic, pa.table({"value": [b"a"], "key": [1]}))),
        (TypeError, lambda: producer.send_batch(topic, pa.table({"value": [b"a"], "timestamp_ms": ["x"]}))),
        (ValueError, lambda: producer.send_batch(topic, pa.table({"value": [b"a"], "timestamp_ms": [-5]}))),
        (ValueError, lambda: producer.send_batch(topic, pa.table({"values": [b"a"]}))),
        (ValueError, lambda: producer.send_batch(topic, pa.table({"value": [b"a"], "extra": [1]}))),
        (ValueError, lambda: producer.send_batch(topic, pa.table({"value": pa.array([], pa.binary())}))),
        (ValueError, lambda: producer.send_batch(topic, pa.table({"value": [b"a"]}), partition=5)),
    ]
    for error, call in bad:
        with pytest.raises(error):
            call()
    producer.close()
    assert latest(topic) == end
    round_trip(topic)


def test_message_too_large_writes_nothing(rk, topic):
    end = latest(topic)  # the topic's max.message.bytes fits 100 bytes of key + value alone
    producer = Producer()
    with pytest.raises(MessageTooLarge):
        producer.send(topic, b"x" * 101)
    with pytest.raises(MessageTooLarge):
        producer.send(topic, b"x" * 60, key=b"k" * 41)
    with pytest.raises(MessageTooLarge):  # headers count too
        producer.send(topic, b"x" * 60, headers={"h": b"y" * 40})
    with pytest.raises(MessageTooLarge):  # one big message spoils the whole set, the others are not sent
        producer.send(topic, MessageSet([Message(b"small"), Message(b"y" * 101), Message(b"small")]))
    with pytest.raises(MessageTooLarge):
        producer.send_batch(topic, pa.table({"value": [b"small", b"z" * 101]}))
    with pytest.raises(MessageTooLarge):
        producer.send_batch(topic, pa.table({"value": [b"small", b"z" * 50], "key": [b"k", b"q" * 51]}))
    producer.flush(TIMEOUT_S)
    assert latest(topic) == end
    # exactly the limit is fine
    assert producer.send(topic, b"x" * 60, key=b"k" * 40).result(TIMEOUT_S)[0].offset == end
    producer.close()
    round_trip(topic)


# -- offsets ------------------------------------------------------------------------------------


def test_negative_offsets_and_partitions(rk, topic):
    admin = Admin()
    with pytest.raises(ValueError):
        TopicPartition(topic, 0, offset=-1)
    with pytest.raises(ValueError):
        TopicPartition(topic, -1)
    with pytest.raises(TypeError):
        TopicPartition(topic, 0, offset="1")
    with pytest.raises(ValueError):
        admin.delete_records(topic, {0: -1})
    with pytest.raises(ValueError):
        admin.list_offsets(topic, 0, -5)
    with pytest.raises((TypeError, ValueError)):
        admin.list_offsets(topic, 0, "middle")
    with pytest.raises(ValueError):
        admin.list_offsets(topic, 1, "latest")  # no partition 1
    with pytest.raises(ValueError):
        admin.delete_records(topic, {3: 0})
    consumer = Consumer(group_id=None, auto_offset_reset="earliest")
    with pytest.raises(ValueError):
        consumer.assign([TopicPartition(topic, 7)])
    consumer.assign([TopicPartition(topic, 0)])
    with pytest.raises(ValueError):
        consumer.seek(TopicPartition(topic, 0))  # no offset
    with pytest.raises(ValueError):
        consumer.poll(timeout_s=-1)
    with pytest.raises(ValueError):
        consumer.poll_batch(max_messages=0)
    with pytest.raises(ValueError):
        Consumer(group_id=None, auto_offset_reset="smallest")
    assert admin.list_offsets(topic, 0, "earliest") == 0
    assert consumer.poll(timeout_s=10).offset == 0  # the consumer still works
    consumer.close()
    round_trip(topic)


def test_seek_past_either_end(rk):
    admin = Admin()
    topic = make_topic()
    with Producer() as producer:
        producer.send(topic, MessageSet(Message(b"m%d" % i) for i in range(4))).result(TIMEOUT_S)
    admin.delete_records(topic, {0: 2})  # the log is [2, 6)
    assert (admin.list_offsets(topic, 0, "earliest"), latest(topic)) == (2, 6)

    strict = Consumer(group_id=None, auto_offset_reset="none")
    strict.assign([TopicPartition(topic, 0)])
    for offset in (7, 100, 1, 0):
        strict.seek(TopicPartition(topic, 0, offset=offset))
        with pytest.raises(OffsetOutOfRange) as info:
            strict.poll(timeout_s=5)
        assert (info.value.earliest, info.value.latest) == (2, 6)
    # both ends themselves are in range
    strict.seek(TopicPartition(topic, 0, offset=2))
    assert strict.poll(timeout_s=5).offset == 2
    strict.seek(TopicPartition(topic, 0, offset=6))
    assert strict.poll(timeout_s=0.3) is None

    tp = TopicPartition(topic, 0)
    for reset, expected in (("earliest", [2, 3, 4, 5]), ("latest", [])):
        for start in (50, 0):
            consumer = Consumer(group_id=None, auto_offset_reset=reset)
            consumer.assign([TopicPartition(topic, 0, offset=start)])
            got = []
            while table := consumer.poll_batch(timeout_s=1.0):
                if not table.num_rows:
                    break
                got += table.column("offset").to_pylist()
            assert got == expected, (reset, start)
            assert consumer.position([tp]) == {tp: 6}
            consumer.close()

    with pytest.raises(OffsetOutOfRange) as info:
        admin.delete_records(topic, {0: 7})
    assert info.value.latest == 6
    assert (admin.list_offsets(topic, 0, "earliest"), latest(topic)) == (2, 6)
    round_trip(topic)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"linger_ms": -1}, ValueError),
        ({"batch_size": 0}, ValueError),
        ({"batch_size": 1 << 31}, ValueError),  # one Arrow array with 32-bit offsets per batch
        ({"batch_size": "1"}, TypeError),
        ({"acks": 2}, ValueError),
        ({"buffer_memory": 0}, ValueError),
        ({"max_request_size": 0}, ValueError),
        ({"max_request_size": 1.5}, TypeError),
    ],
    ids=repr,
)
def test_bad_producer_settings(rk, topic, kwargs, error):
    with pytest.raises(error):
        Producer(**kwargs)
    round_trip(topic)
