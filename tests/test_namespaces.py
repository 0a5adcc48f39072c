"""Namespaces isolate, and no directory has two owners (a real local Ray, real disk).

Two namespaces on one data directory once shared everything under it: a second namespace
started a second partition actor on the same replica directory and overwrote acknowledged
records. Now the namespace is part of every path, and every owned directory is locked.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import time
import uuid
from pathlib import Path

import pytest

import raykafka
from raykafka import Admin, Consumer, Message, MessageSet, Producer, TopicPartition
from raykafka.actors.group_coordinator import GroupCoordinator
from raykafka.actors.naming import TOPIC_MANAGER_NAME
from raykafka.actors.partition import PartitionActor
from raykafka.actors.topic_manager import TopicManager
from raykafka.storage.layout import DirectoryLock, namespace_root, read_identity
from tests.conftest import kill_namespace
from tests.test_admin import read_partition, replica_directories, wait_ready

TIMEOUT_S = 30


def values_of(table) -> list[bytes]:
    return table.column("value").to_pylist()


def produce(topic: str, values: list[bytes]) -> list[int]:
    with Producer() as producer:
        sent = producer.send(topic, MessageSet(Message(v) for v in values), partition=0)
        return [md.offset for md in sent.result(TIMEOUT_S)]


def commit_first(topic: str, group: str, count: int) -> None:
    consumer = Consumer(group_id=group, auto_offset_reset="earliest", enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, 0)])
    got = 0
    while got < count:
        got += consumer.poll_batch(max_messages=count - got, timeout_s=1.0).num_rows
    consumer.commit()
    consumer.close()


@pytest.fixture
def two_namespaces(local_ray, tmp_path):
    """Two namespaces, one data directory; yields (namespace_a, namespace_b, data_dir)."""
    data_dir = str(tmp_path / "data")
    names = [f"test-{uuid.uuid4().hex[:8]}", f"typo-{uuid.uuid4().hex[:8]}"]
    yield names[0], names[1], data_dir
    for name in names:
        kill_namespace(name)


def test_two_namespaces_on_one_data_dir_keep_topics_groups_and_records_apart(two_namespaces, topic_name):
    ns_a, ns_b, data_dir = two_namespaces
    topic, group = topic_name("events"), f"g-{uuid.uuid4().hex[:6]}"

    raykafka.connect(namespace=ns_a, data_dir=data_dir)
    Admin().create_topic(topic, partitions=1)
    assert produce(topic, [b"a-0", b"a-1", b"a-2"]) == [0, 1, 2]
    commit_first(topic, group, 2)

    # The mistyped namespace shows an empty cluster on the same data directory...
    raykafka.connect(namespace=ns_b, data_dir=data_dir)
    admin_b = Admin()
    assert admin_b.list_topics() == []
    assert admin_b.list_groups() == []
    # ... and a topic of the same name there is another log, with offsets of its own.
    admin_b.create_topic(topic, partitions=1)
    assert produce(topic, [b"b-0", b"b-1"]) == [0, 1]
    assert values_of(read_partition(topic, 0, 2)) == [b"b-0", b"b-1"]

    raykafka.connect(namespace=ns_a, data_dir=data_dir)
    admin_a = Admin()
    assert admin_a.list_topics() == [topic]
    assert values_of(read_partition(topic, 0, 3)) == [b"a-0", b"a-1", b"a-2"]  # nothing overwritten
    assert admin_a.describe_group(group).committed == {TopicPartition(topic, 0): 2}

    # On disk: one directory per namespace, each with its identity.
    root_a = namespace_root(Path(data_dir).resolve(), ns_a)
    root_b = namespace_root(Path(data_dir).resolve(), ns_b)
    assert sorted(p.name for p in (Path(data_dir) / "namespaces").iterdir()) == sorted(
        [root_a.name, root_b.name]
    )
    [dir_a] = replica_directories(raykafka.api.connection.current_settings(), topic)
    assert dir_a.is_relative_to(root_a)
    identity = read_identity(dir_a)
    assert (identity.kind, identity.namespace, identity.owner) == ("replica", ns_a, f"{topic}-0/{dir_a.name}")
    assert identity.cluster_id == read_identity(root_a).cluster_id != read_identity(root_b).cluster_id
    assert read_identity(root_a / "metadata").namespace == ns_a
    assert read_identity(root_a / "groups" / group).owner == group


def _died_of(handle, method: str = "health") -> str:
    """The creation error of an actor whose constructor failed."""
    import ray

    with pytest.raises(ray.exceptions.ActorDiedError) as died:
        ray.get(getattr(handle, method).remote(), timeout=60)
    return str(died.value)


def test_second_opener_of_a_replica_metadata_or_group_directory_is_refused(rk, topic_name):
    import ray

    topic, group = topic_name(), f"g-{uuid.uuid4().hex[:6]}"
    admin = Admin()
    admin.create_topic(topic, partitions=1)
    assert produce(topic, [b"kept"]) == [0]
    commit_first(topic, group, 1)
    [directory] = replica_directories(rk, topic)
    options = {"namespace": rk.namespace, "num_cpus": 0, "max_restarts": 0}

    # The three intruders start together (a worker process each: seconds apiece on 2 CPUs).
    intruder = (
        ray.remote(concurrency_groups={"control": 1})(PartitionActor)
        .options(name=f"intruder-{uuid.uuid4().hex[:6]}", **options)
        .remote(topic, 0, directory.name, rk.data_dir, {}, rk.namespace)
    )
    manager = (
        ray.remote(TopicManager)
        .options(name=f"intruder-{uuid.uuid4().hex[:6]}", **options)
        .remote(rk.data_dir, rk.namespace)
    )
    coordinator = (
        ray.remote(GroupCoordinator)
        .options(name=f"intruder-{uuid.uuid4().hex[:6]}", **options)
        .remote(group, rk.data_dir, rk.namespace)
    )
    assert "DirectoryLocked" in _died_of(intruder) and str(directory) in _died_of(intruder)

    message = _died_of(manager, "ping")
    assert "DirectoryLocked" in message and "metadata" in message

    message = _died_of(coordinator, "pid")
    assert "DirectoryLocked" in message and group in message

    # The owners never noticed.
    assert produce(topic, [b"after"]) == [1]
    assert values_of(read_partition(topic, 0, 2)) == [b"kept", b"after"]
    assert Admin().describe_group(group).committed == {TopicPartition(topic, 0): 1}


def test_replica_whose_directory_is_held_comes_back_when_it_is_freed(rk, topic_name):
    """A restarted replica that finds its directory locked dies in its constructor; the
    TopicManager re-creates it with back-off until the lock is free, and nothing is lost."""
    import ray

    topic = topic_name()
    admin = Admin()
    admin.create_topic(topic, partitions=1)
    assert produce(topic, [b"r-0", b"r-1"]) == [0, 1]
    [directory] = replica_directories(rk, topic)
    manager = ray.get_actor(TOPIC_MANAGER_NAME, namespace=rk.namespace)
    leader = ray.get(manager.topic_metadata.remote(topic))["leaders"][0]
    pid = ray.get(leader.info.remote())["pid"]

    # Wait for the lock in a thread, then crash the owner: the kernel frees the lock at its death,
    # and the waiter (polling every 2 ms) takes it long before Ray has started a new process.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        taking = pool.submit(DirectoryLock(directory, "the test").acquire, 60, 0.002)
        time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)  # Ray restarts it; its constructor finds the lock held
        held = taking.result(60)
    try:
        deadline = time.monotonic() + 60
        while not admin.describe_topic(topic).partitions[0].offline:
            assert time.monotonic() < deadline, "the replica never went offline"
            time.sleep(0.2)
        time.sleep(3)  # several re-creations refused meanwhile
        assert admin.describe_topic(topic).partitions[0].offline
    finally:
        held.release()
    desc = wait_ready(admin, topic, timeout_s=90)
    assert not desc.partitions[0].offline
    assert desc.partitions[0].high_watermark == 2
    assert produce(topic, [b"r-2"]) == [2]
    assert values_of(read_partition(topic, 0, 3)) == [b"r-0", b"r-1", b"r-2"]


def test_data_of_the_layout_before_namespaces_is_adopted_by_the_default_namespace(
    local_ray, tmp_path, topic_name
):
    """An upgrade: metadata, groups and replicas directly under data_dir (the old layout) are
    moved into namespaces/raykafka/ on first start, records and commits intact."""
    import shutil

    from raykafka.actors.naming import DEFAULT_NAMESPACE

    data_dir = tmp_path / "data"
    topic, group = topic_name(), f"g-{uuid.uuid4().hex[:6]}"
    raykafka.connect(namespace=DEFAULT_NAMESPACE, data_dir=str(data_dir))
    try:
        Admin().create_topic(topic, partitions=1)
        assert produce(topic, [b"old-0", b"old-1"]) == [0, 1]
        commit_first(topic, group, 1)
        [replica] = replica_directories(raykafka.api.connection.current_settings(), topic)
    finally:
        kill_namespace(DEFAULT_NAMESPACE)
    # Rewrite it as the layout before namespaces had it: no namespace level, no identities.
    root = namespace_root(data_dir.resolve(), DEFAULT_NAMESPACE)
    for name in ("metadata", "groups", "replicas"):
        shutil.move(root / name, data_dir / name)
    shutil.rmtree(data_dir / "namespaces")
    for identity in data_dir.rglob("meta.properties"):
        identity.unlink()
    old_replica = data_dir / "replicas" / f"{topic}-0" / replica.name
    assert old_replica.is_dir()

    try:
        admin = Admin()
        assert admin.list_topics() == [topic]
        desc = wait_ready(admin, topic)
        assert desc.partitions[0].high_watermark == 2
        assert values_of(read_partition(topic, 0, 2)) == [b"old-0", b"old-1"]
        assert admin.describe_group(group).committed == {TopicPartition(topic, 0): 1}
        assert not (data_dir / "metadata").exists() and not old_replica.exists()
        assert (root / "replicas" / f"{topic}-0" / replica.name / "meta.properties").is_file()
        assert produce(topic, [b"new"]) == [2]
    finally:
        kill_namespace(DEFAULT_NAMESPACE)
