"""Reconciliation on a real two-node Ray cluster: what the TopicManager repairs by itself.

Each test puts a replica or the metadata file into a state the TopicManager's commands did
not leave it in -- a ``become_leader`` that failed on a disk fault, a replica told a role by
someone else, a metadata write that fails -- and checks that the manager notices from what
the replicas report, repairs it, and never reports a partition writable that is not.

Faults come from the fault layer (``raykafka/storage/faults.py``): the cluster's processes
inherit ``RAYKAFKA_TEST_FAULTS_DIR``, and a test writes a control file there to break one
path's writes and removes it to heal it.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path

import pytest

import raykafka
from raykafka import Admin, Message, MessageSet, Producer
from raykafka.actors.naming import TOPIC_MANAGER_NAME
from raykafka.errors import MetadataWriteFailed
from raykafka.storage.layout import metadata_directory, namespace_root
from tests import conftest
from tests.conftest import kill_namespace
from tests.test_admin import read_partition

TIMEOUT_S = 60


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    conftest._MULTI_NODE["active"] = True
    faults_dir = tmp_path_factory.mktemp("faults")
    os.environ["RAYKAFKA_TEST_FAULTS_DIR"] = str(faults_dir)
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    c.faults_dir = faults_dir
    ray.init(address=c.address, logging_level="ERROR", log_to_driver=False)
    yield c
    ray.shutdown()
    c.shutdown()
    os.environ.pop("RAYKAFKA_TEST_FAULTS_DIR", None)
    conftest._MULTI_NODE["active"] = False


@pytest.fixture
def rkr(cluster, tmp_path):
    namespace = f"test-{uuid.uuid4().hex[:10]}"
    settings = raykafka.connect(namespace=namespace, data_dir=str(tmp_path / "data"))
    yield settings
    for control in ("fsync", "write", "open"):
        (cluster.faults_dir / control).unlink(missing_ok=True)
    kill_namespace(namespace)


def break_writes(cluster, op: str, path_prefix: Path) -> Path:
    control = cluster.faults_dir / op
    control.write_text(f"{path_prefix} EIO\n")
    return control


def manager(settings):
    import ray

    return ray.get_actor(TOPIC_MANAGER_NAME, namespace=settings.namespace)


def replicas(settings, topic: str) -> dict[str, dict]:
    """Each replica's ``info()`` by replica id, from the actors the manager knows."""
    import ray

    from raykafka.actors.replica_fleet import actor_name
    from raykafka.control import from_topics_json

    meta = from_topics_json(read_metadata_file(settings))
    part = meta.topic(topic).partitions[0]
    out = {}
    for replica in part.replicas:
        handle = ray.get_actor(actor_name(topic, 0, replica), namespace=settings.namespace)
        out[replica.replica_id] = {"handle": handle, **ray.get(handle.info.remote(), timeout=TIMEOUT_S)}
    return out


def read_metadata_file(settings) -> dict:
    path = metadata_directory(namespace_root(Path(settings.data_dir), settings.namespace)) / "topics.json"
    return json.loads(path.read_text())


def epoch_on_disk(settings, topic: str) -> int:
    return read_metadata_file(settings)["topics"][topic]["partitions"][0]["leader_epoch"]


def epoch_in_memory(settings, topic: str) -> int:
    import ray

    return ray.get(manager(settings).topic_metadata.remote(topic), timeout=TIMEOUT_S)["epochs"][0]


def wait_until(condition, what: str, timeout_s: float = TIMEOUT_S):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def healthy(topic: str) -> bool:
    return not Admin().describe_topic(topic).partitions[0].offline


def send(topic: str, values: list[bytes]) -> list[int]:
    with Producer(request_timeout_ms=TIMEOUT_S * 1000) as producer:
        sent = producer.send(topic, MessageSet(Message(v) for v in values), partition=0)
        return [md.offset for md in sent.result(TIMEOUT_S)]


def values(topic: str, count: int) -> list[bytes]:
    return read_partition(topic, 0, count).column("value").to_pylist()


def test_a_failed_become_leader_is_sent_again_until_it_takes(rkr, cluster):
    """The leader restarts and cannot record its new epoch (EIO on its epoch checkpoint): it
    has no role, the partition is reported offline (not writable) for as long as that lasts,
    and the manager keeps sending become_leader until it takes."""
    import ray

    topic = f"bl-{uuid.uuid4().hex[:6]}"
    Admin().create_topic(topic, partitions=1)
    assert send(topic, [b"a", b"b", b"c"]) == [0, 1, 2]
    [info] = replicas(rkr, topic).values()
    before = epoch_in_memory(rkr, topic)
    control = break_writes(cluster, "fsync", Path(info["directory"]) / "leader-epoch.checkpoint")
    os.kill(info["pid"], signal.SIGKILL)  # Ray restarts it; it must lead a new epoch

    wait_until(lambda: epoch_in_memory(rkr, topic) > before, "the restarted leader's new epoch")
    time.sleep(3)  # several rounds of become_leader, each failing
    state = ray.get(info["handle"].state.remote(), timeout=TIMEOUT_S)
    assert state["role"] == "unknown", state  # it leads nothing it could not record
    assert state["epoch"] < epoch_in_memory(rkr, topic), state
    assert Admin().describe_topic(topic).partitions[0].offline, "reported writable while it has no leader"

    control.unlink()
    wait_until(lambda: healthy(topic), "the leader to take its epoch once the disk heals")
    state = ray.get(info["handle"].state.remote(), timeout=TIMEOUT_S)
    assert (state["role"], state["epoch"]) == ("leader", epoch_in_memory(rkr, topic))
    assert epoch_on_disk(rkr, topic) == state["epoch"]
    assert send(topic, [b"d"]) == [3]
    assert values(topic, 4) == [b"a", b"b", b"c", b"d"]


def test_a_replica_in_another_role_than_recorded_is_told_again(rkr, cluster):
    """A follower told to lead by someone else (a stale controller's command) claims the current
    epoch beside the real leader; the manager sees its report, tells it to follow again, and
    the partition goes on replicating. The leader, told to follow, is made leader again in a
    new epoch."""
    import ray

    topic = f"role-{uuid.uuid4().hex[:6]}"
    Admin().create_topic(topic, partitions=1, replication_factor=2)
    assert send(topic, [b"x0", b"x1"]) == [0, 1]
    infos = replicas(rkr, topic)
    leader_id = next(r for r, i in infos.items() if i["role"] == "leader")
    follower_id = next(r for r in infos if r != leader_id)
    follower, leader = infos[follower_id]["handle"], infos[leader_id]["handle"]
    epoch = epoch_in_memory(rkr, topic)

    ray.get(follower.become_leader.remote(epoch, {}, [follower_id]), timeout=TIMEOUT_S)
    wait_until(
        lambda: ray.get(follower.state.remote())["role"] == "follower",
        "the follower to be told to follow again",
    )
    assert epoch_in_memory(rkr, topic) == epoch  # the real leader kept its term: nothing to re-elect

    ray.get(leader.become_follower.remote(epoch, follower_id, follower), timeout=TIMEOUT_S)
    wait_until(lambda: epoch_in_memory(rkr, topic) > epoch, "a new epoch for the leader told to follow")
    wait_until(lambda: healthy(topic), "the partition to be writable again")
    states = {r: ray.get(i["handle"].state.remote(), timeout=TIMEOUT_S) for r, i in infos.items()}
    new_epoch = epoch_in_memory(rkr, topic)
    assert (states[leader_id]["role"], states[leader_id]["epoch"]) == ("leader", new_epoch), states
    wait_until(
        lambda: ray.get(follower.state.remote())["epoch"] == new_epoch, "the follower to follow the new epoch"
    )
    with Producer(acks="all", request_timeout_ms=TIMEOUT_S * 1000) as producer:
        assert producer.send(topic, b"x2", partition=0).result(TIMEOUT_S)[0].offset == 2
    assert values(topic, 3) == [b"x0", b"x1", b"x2"]
    wait_until(
        lambda: ray.get(follower.state.remote())["log_end_offset"] == 3, "the follower to replicate x2"
    )


def test_a_failed_metadata_write_changes_nothing_and_is_repaired(rkr, cluster):
    """While topics.json cannot be written, nothing changes -- in memory, on disk or at the
    replicas: a restarted leader is not given an epoch that is not on disk (the partition stays
    offline), and create_topic raises MetadataWriteFailed and creates nothing. Once the disk
    heals, the manager writes and carries on."""
    topic = f"md-{uuid.uuid4().hex[:6]}"
    admin = Admin()
    admin.create_topic(topic, partitions=1)
    assert send(topic, [b"m0"]) == [0]
    [info] = replicas(rkr, topic).values()
    before = epoch_in_memory(rkr, topic)
    metadata_file = metadata_directory(namespace_root(Path(rkr.data_dir), rkr.namespace)) / "topics.json"
    control = break_writes(cluster, "write", metadata_file)
    os.kill(info["pid"], signal.SIGKILL)  # Ray restarts it; a new epoch must be written first

    with pytest.raises(MetadataWriteFailed):
        admin.create_topic(f"{topic}-other", partitions=1)
    time.sleep(3)  # rounds that try to write the new epoch, each failing
    assert epoch_in_memory(rkr, topic) == epoch_on_disk(rkr, topic) == before
    assert admin.describe_topic(topic).partitions[0].offline
    assert admin.list_topics() == [topic]

    control.unlink()
    wait_until(lambda: healthy(topic), "the partition to lead again once the metadata is written")
    assert epoch_in_memory(rkr, topic) == epoch_on_disk(rkr, topic) > before
    assert send(topic, [b"m1"]) == [1]
    assert values(topic, 2) == [b"m0", b"m1"]
    admin.create_topic(f"{topic}-other", partitions=1)
    assert admin.list_topics() == sorted([topic, f"{topic}-other"])
