"""Replication across nodes on a real multi-node ``ray.cluster_utils.Cluster``.

Each worker node carries a ``raykafka-storage`` label (its "disk"), so replicas
land on distinct labelled nodes and a node that comes back under a new Ray
node id with the same label gets its replicas back. Nodes are removed without
grace (a node crash). The module holds its own Cluster, so it shuts the test
session's local Ray down first (conftest brings it back for later modules).
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest

import raykafka
from raykafka import Admin, Consumer, Producer, TopicPartition
from raykafka.actors.topic_manager import MONITOR_INTERVAL_MS
from raykafka.errors import RequestTimedOut
from tests import conftest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    conftest._MULTI_NODE["active"] = True
    # The nodes' processes inherit it: a test breaks a replica's disk by writing a control file
    # there (raykafka/storage/faults.py); nothing is injected until one does.
    faults_dir = tmp_path_factory.mktemp("faults")
    os.environ["RAYKAFKA_TEST_FAULTS_DIR"] = str(faults_dir)
    # Ray checks each node every 500 ms and gives up on it after 4 failed checks: a crashed node
    # (its port refuses at once) is declared dead in ~2 s instead of ~15 s, while a frozen one
    # (each check waits out the 10 s timeout) still looks hung, not dead, for ~40 s.
    health_checks = {"health_check_period_ms": 500, "health_check_failure_threshold": 4}
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "_system_config": health_checks})
    c.faults_dir = faults_dir
    c.workers = {}
    for i in range(3):
        c.workers[f"disk-{i}"] = c.add_node(num_cpus=1, labels={"raykafka-storage": f"disk-{i}"})
    c.wait_for_nodes()
    ray.init(address=c.address, logging_level="ERROR", log_to_driver=False)
    yield c
    ray.shutdown()
    c.shutdown()
    os.environ.pop("RAYKAFKA_TEST_FAULTS_DIR", None)
    conftest._MULTI_NODE["active"] = False


@pytest.fixture
def rkc(cluster, tmp_path):
    """raykafka on the cluster, in a namespace and data dir of this test's own."""
    namespace = f"repl-{uuid.uuid4().hex[:8]}"
    settings = raykafka.connect(namespace=namespace, data_dir=str(tmp_path / "data"))
    yield settings
    conftest.kill_namespace(namespace)


def node_of(cluster, node_id: str):
    for label, node in cluster.workers.items():
        if node.node_id == node_id:
            return label, node
    raise AssertionError(f"{node_id} is not a worker node")


def crash_node(cluster, node_id: str) -> str:
    label, node = node_of(cluster, node_id)
    cluster.remove_node(node, allow_graceful=False)
    del cluster.workers[label]
    return label


def restore_node(cluster, label: str):
    cluster.workers[label] = cluster.add_node(num_cpus=1, labels={"raykafka-storage": label})
    cluster.wait_for_nodes()
    return cluster.workers[label]


class SteadyProducer:
    """Sends numbered messages with acks="all" from a thread; remembers what was acknowledged."""

    def __init__(self, topic: str, partition: int = 0):
        self.topic, self.partition = topic, partition
        self.producer = Producer(acks="all", linger_ms=1, request_timeout_ms=30000)
        self.acked: dict[int, bytes] = {}
        self.ack_times: list[float] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            value = f"m-{i}".encode()
            try:
                meta = self.producer.send(self.topic, value, partition=self.partition).result(timeout=60)[0]
                self.acked[meta.offset] = value
                self.ack_times.append(time.monotonic())
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            i += 1
            time.sleep(0.005)

    def wait_for_acks(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.acked) < count:
            assert time.monotonic() < deadline, f"only {len(self.acked)} acks; errors {self.errors[-3:]}"
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=90)
        self.producer.close()


def read_all(topic: str, partition: int, expected: int, timeout_s: float = 60) -> dict[int, bytes]:
    consumer = Consumer(group_id=None, auto_offset_reset="earliest")
    consumer.assign([TopicPartition(topic, partition)])
    got: dict[int, bytes] = {}
    deadline = time.monotonic() + timeout_s
    while len(got) < expected and time.monotonic() < deadline:
        table = consumer.poll_batch(timeout_s=1.0)
        for offset, value in zip(
            table.column("offset").to_pylist(), table.column("value").to_pylist(), strict=True
        ):
            assert offset not in got, f"offset {offset} read twice"
            got[offset] = value
    consumer.close()
    return got


def manager_pid(settings) -> int:
    """The TopicManager's process id; it runs on the head node, i.e. on this machine."""
    import ray

    from raykafka.actors.naming import TOPIC_MANAGER_NAME

    manager = ray.get_actor(TOPIC_MANAGER_NAME, namespace=settings.namespace)
    return ray.get(manager.ping.remote())["pid"]


def kill_topic_manager(settings) -> None:
    os.kill(manager_pid(settings), signal.SIGKILL)


def test_placement_spreads_replicas_and_leaders(rkc):
    admin = Admin()
    description = admin.create_topic("spread", partitions=3, replication_factor=3)
    workers = {n["NodeID"] for n in _workers(rkc)}
    leaders = [p.leader_node_id for p in description.partitions]
    assert len(set(leaders)) == 3, "one leader per node"
    for p in description.partitions:
        assert set(p.replica_node_ids) == workers
        assert sorted(p.isr_node_ids) == sorted(workers)
    with pytest.raises(raykafka.errors.InvalidConfig, match="replication_factor=4"):
        admin.create_topic("too-many", partitions=1, replication_factor=4)


def _workers(settings):
    import ray

    return [n for n in ray.nodes() if n["Alive"] and n.get("Labels", {}).get("raykafka-storage")]


def test_leader_node_crash_loses_no_acknowledged_message(cluster, rkc):
    """RF 3, min.insync.replicas 2, acks=all: the leader's node dies mid-stream; producing
    resumes by itself; every acknowledged message is read exactly once at its offset, in order.
    The topic manager is killed too, right after the election."""
    admin = Admin()
    description = admin.create_topic(
        "orders", partitions=1, replication_factor=3, config={"min.insync.replicas": "2"}
    )
    leader_node = description.partitions[0].leader_node_id
    producer = SteadyProducer("orders")
    producer.wait_for_acks(100, timeout_s=60)
    before = len(producer.acked)
    crashed_at = time.monotonic()
    label = crash_node(cluster, leader_node)
    producer.wait_for_acks(before + 50, timeout_s=60)
    first_ack_after = min(t for t in producer.ack_times if t > crashed_at)
    kill_topic_manager(rkc)
    producer.wait_for_acks(len(producer.acked) + 50, timeout_s=60)
    producer.stop()
    assert producer.errors == []
    after = admin.describe_topic("orders").partitions[0]
    assert after.leader_node_id != leader_node
    assert after.leader_epoch >= 1
    got = read_all("orders", 0, len(producer.acked))
    for offset, value in producer.acked.items():
        assert got.get(offset) == value, f"acknowledged offset {offset} lost or changed"
    offsets = sorted(got)
    assert offsets == list(range(offsets[0], offsets[-1] + 1)), "offsets are contiguous"
    print(f"failover: first acks=all produce {first_ack_after - crashed_at:.2f} s after the crash")
    # The deposed leader's disk comes back under a new Ray node id: its replica is recreated there,
    # is fenced by the new epoch, truncates what the new leader never had, catches up and rejoins.
    restore_node(cluster, label)
    deadline = time.monotonic() + 120
    while len(admin.describe_topic("orders").partitions[0].isr_node_ids) < 3:
        assert time.monotonic() < deadline, "the old leader's replica did not rejoin the ISR"
        time.sleep(1)


def test_follower_loss_shrinks_isr_then_reassignment_catches_up(cluster, rkc):
    admin = Admin()
    description = admin.create_topic("logs", partitions=1, replication_factor=2)
    part = description.partitions[0]
    follower_node = next(n for n in part.replica_node_ids if n != part.leader_node_id)
    with Producer(acks="all") as producer:
        for i in range(200):
            producer.send("logs", f"a-{i}".encode())
    label = crash_node(cluster, follower_node)
    deadline = time.monotonic() + 30
    while len(admin.describe_topic("logs").partitions[0].isr_node_ids) != 1:
        assert time.monotonic() < deadline, "the ISR did not shrink"
        time.sleep(0.2)
    with Producer(acks="all") as producer:  # min.insync.replicas=1: goes on with the leader alone
        for i in range(200, 400):
            producer.send("logs", f"a-{i}".encode())
    fresh = restore_node(cluster, f"{label}-new")  # a new node with a new disk (and its own label)
    moved = admin.reassign_partitions("logs", {0: [part.leader_node_id, fresh.node_id]})
    assert sorted(moved.partitions[0].replica_node_ids) == sorted([part.leader_node_id, fresh.node_id])
    assert sorted(moved.partitions[0].isr_node_ids) == sorted([part.leader_node_id, fresh.node_id])
    # the new replica holds the whole log: make it the only one left and read everything from it
    moved = admin.reassign_partitions("logs", {0: [fresh.node_id]})
    assert moved.partitions[0].leader_node_id == fresh.node_id
    got = read_all("logs", 0, 400)
    assert [got[o] for o in range(400)] == [f"a-{i}".encode() for i in range(400)]


def test_unreplicated_partition_offline_then_back_with_its_data(cluster, rkc):
    admin = Admin()
    description = admin.create_topic("single", partitions=3, replication_factor=1)
    with Producer() as producer:
        for p in range(3):
            producer.send("single", f"keep-{p}".encode(), partition=p)
    victim = description.partitions[0].leader_node_id
    others = [p.partition for p in description.partitions if p.leader_node_id != victim]
    early = Producer(linger_ms=0, request_timeout_ms=120_000)
    early.partitions_for("single")  # holds the partition's old actor handle through the crash
    # The manager counts a leader that never answered its check as starting, not offline: let
    # its checks (every MONITOR_INTERVAL_MS) see this one answer first.
    time.sleep(4 * MONITOR_INTERVAL_MS / 1000)
    label = crash_node(cluster, victim)
    deadline = time.monotonic() + 30
    while not admin.describe_topic("single").partitions[0].offline:  # its process dies within ~2 s
        assert time.monotonic() < deadline, "partition 0 still answers after its node crashed"
        time.sleep(0.5)
    started = time.monotonic()
    with pytest.raises(RequestTimedOut), Producer(request_timeout_ms=3000) as producer:
        producer.send("single", b"lost", partition=0).result(timeout=30)
    assert time.monotonic() - started < 15, "fails within the request timeout (plus detection), not hangs"
    with Producer() as producer:  # the other partitions keep working
        for p in others:
            producer.send("single", f"more-{p}".encode(), partition=p).result(timeout=30)
    # Sent to the old handle while the partition is offline (Ray: ActorUnschedulableError, the
    # actor's node is gone): retried until the partition is back, then acknowledged.
    during = early.send("single", b"during", partition=0)
    time.sleep(1.0)
    assert not during.done(), "a send to an offline partition is retried, not failed"
    restore_node(cluster, label)  # same disk label, new Ray node id
    deadline = time.monotonic() + 60
    while admin.describe_topic("single").partitions[0].offline:
        assert time.monotonic() < deadline, "partition 0 did not come back"
        time.sleep(0.5)
    assert during.result(timeout=90)[0].offset == 1
    early.close()
    assert read_all("single", 0, 2) == {0: b"keep-0", 1: b"during"}
    # The manager said so once per state, not at each 0.5 s check (5 ERRORs here, before).
    said = manager_log(cluster, rkc, "single-0: ")
    assert sum("offline: no in-sync replica answers" in line for line in said) == 1, said
    assert any(line.startswith("single-0: back online") for line in said), "\n".join(said)


def manager_log(cluster, settings, prefix: str) -> list[str]:
    """The messages starting with ``prefix`` in the TopicManager's log file (raykafka/actors/
    actor_logs.py: ``<time> <LEVEL> <logger>: <message>``), with the time, level and logger cut."""
    logs = Path(cluster.head_node.get_session_dir_path()) / "logs" / "raykafka"
    path = logs / f"topic_manager-{manager_pid(settings)}.log"
    with open(path) as f:
        messages = [line.rstrip("\n").split(": ", 1)[-1] for line in f]
    return [m for m in messages if m.startswith(prefix)]


def test_group_consumes_across_failover_without_skipping(cluster, rkc):
    admin = Admin()
    admin.create_topic("events", partitions=2, replication_factor=3, config={"min.insync.replicas": "2"})
    sent = []
    with Producer(acks="all") as producer:
        for i in range(300):
            sent.append(f"e-{i}".encode())
            producer.send("events", sent[-1], partition=i % 2)
    consumer = Consumer(
        group_id="g", auto_offset_reset="earliest", heartbeat_interval_ms=200, session_timeout_ms=5000
    )
    consumer.subscribe(["events"])
    seen = []
    deadline = time.monotonic() + 60
    while len(seen) < 150 and time.monotonic() < deadline:
        seen += consumer.poll_batch(max_messages=50, timeout_s=1.0).column("value").to_pylist()
    leader = admin.describe_topic("events").partitions[0].leader_node_id
    label = crash_node(cluster, leader)
    with Producer(acks="all") as producer:
        for i in range(300, 400):
            sent.append(f"e-{i}".encode())
            producer.send("events", sent[-1], partition=i % 2)
    deadline = time.monotonic() + 90
    while set(seen) != set(sent) and time.monotonic() < deadline:
        seen += consumer.poll_batch(timeout_s=1.0).column("value").to_pylist()
    consumer.close()
    assert set(seen) == set(sent), f"missing {len(set(sent) - set(seen))} messages"
    restore_node(cluster, label)


def test_followers_keep_the_leaders_log_start(cluster, rkc):
    """delete_records on the leader reaches the followers: after a failover the records stay deleted."""
    admin = Admin()
    description = admin.create_topic("trimmed", partitions=1, replication_factor=3)
    with Producer(acks="all") as producer:
        for i in range(100):
            producer.send("trimmed", f"r-{i}".encode())
    assert admin.delete_records("trimmed", {0: 40}) == {0: 40}
    time.sleep(1.5)  # a replicate keepalive (every 0.5 s) carries the new log start
    label = crash_node(cluster, description.partitions[0].leader_node_id)
    part = new_leader_of(admin, "trimmed", description.partitions[0].leader_node_id)
    assert (part.log_start_offset, part.high_watermark) == (40, 100)
    assert admin.list_offsets("trimmed", 0, "earliest") == 40
    restore_node(cluster, label)


def freeze_node(node) -> list:
    """SIGSTOP a node's raylet and every process it started: to the GCS the node stays alive
    (until its health checks give up), but nothing scheduled onto it ever starts or answers."""
    import psutil
    from ray._private import ray_constants

    raylet = psutil.Process(node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid)
    raylet.suspend()  # first: it cannot start more processes while its children are stopped
    frozen = [raylet]
    for child in raylet.children(recursive=True):
        try:
            child.suspend()
            frozen.append(child)
        except psutil.NoSuchProcess:
            pass
    return frozen


def new_leader_of(admin: Admin, topic: str, old_node_id: str, timeout_s: float = 30):
    """Partition 0 of ``topic`` once it is online with a leader on another node than ``old_node_id``."""
    deadline = time.monotonic() + timeout_s
    while True:
        part = admin.describe_topic(topic).partitions[0]
        if not part.offline and part.leader_node_id != old_node_id:
            return part
        assert time.monotonic() < deadline, "no new leader"
        time.sleep(0.5)


def thaw(frozen: list) -> None:
    """Resume what ``freeze_node`` stopped (a process may have exited meanwhile)."""
    import psutil

    for process in frozen:
        try:
            process.resume()
        except psutil.NoSuchProcess:
            pass


def replace_hung_node(cluster, label: str, node, frozen: list) -> None:
    """After a test hung a worker node: thaw it, remove it, and bring its disk back on a new node."""
    thaw(frozen)
    cluster.remove_node(node, allow_graceful=False)
    del cluster.workers[label]
    restore_node(cluster, label)


def acks_resume_after(producer: SteadyProducer, since: float, timeout_s: float = 60) -> float:
    """Seconds from ``since`` to the second ack after it (sends are one at a time, so at most
    one ack after an event can be of a message the old leader took before it)."""
    deadline = since + timeout_s
    while len([t for t in producer.ack_times if t > since]) < 2:
        assert time.monotonic() < deadline, f"no acks after the event; errors {producer.errors[-3:]}"
        time.sleep(0.02)
    return sorted(t for t in producer.ack_times if t > since)[1] - since


def _alive(node_id: str) -> bool:
    import ray

    return any(n["NodeID"] == node_id and n["Alive"] for n in ray.nodes())


def test_election_does_not_wait_behind_a_stuck_replica_replacement(cluster, rkc):
    """Guards commit 2010707: re-placing a lost replica (whose _install can wait up to
    INSTALL_TIMEOUT_S on a new node that hangs) runs in its own loop, so a leader crash
    meanwhile is still failed over within seconds. In one loop, the election waited for it."""

    from raykafka.actors.topic_manager import INSTALL_TIMEOUT_S

    admin = Admin()
    description = admin.create_topic("split", partitions=2, replication_factor=2)
    p0, p1 = description.partitions
    follower_0 = next(n for n in p0.replica_node_ids if n != p0.leader_node_id)  # X
    leader_1 = p1.leader_node_id  # Y
    # Placement (3 empty nodes): p0 = [a, b], p1 = [c, a]; the crashes below hit one replica each.
    assert leader_1 not in p0.replica_node_ids and follower_0 not in p1.replica_node_ids, description
    labels = set(cluster.workers)
    frozen_node, frozen = None, []
    producer = SteadyProducer("split", partition=1)  # p1 is not touched until its leader's crash
    try:
        producer.wait_for_acks(50, timeout_s=60)
        lost_label = crash_node(cluster, follower_0)
        deadline = time.monotonic() + 60
        while _alive(follower_0):  # the manager re-places p0's follower once Ray sees the node dead
            assert time.monotonic() < deadline, "Ray did not notice the crashed node"
            time.sleep(0.1)
        # The same disk comes back on a node that then hangs: re-placing p0's follower there
        # waits (in _install) until INSTALL_TIMEOUT_S or until Ray gives the node up.
        frozen_node = cluster.add_node(num_cpus=1, labels={"raykafka-storage": lost_label})
        frozen = freeze_node(frozen_node)
        deadline = time.monotonic() + 30
        while frozen_node.node_id not in admin.describe_topic("split").partitions[0].replica_node_ids:
            assert time.monotonic() < deadline, "p0's follower was not re-placed on the restored node"
            time.sleep(0.1)
        stall_started = time.monotonic()  # the manager is now inside _install, waiting on the frozen node

        producer.wait_for_acks(len(producer.acked) + 10, timeout_s=30)
        crashed_at = time.monotonic()
        crash_node(cluster, leader_1)
        failover_s = acks_resume_after(producer, crashed_at)
        stall_s = time.monotonic() - stall_started
        still_stuck = _alive(frozen_node.node_id) and stall_s < INSTALL_TIMEOUT_S
        producer.wait_for_acks(len(producer.acked) + 20, timeout_s=30)
        producer.stop()
        print(f"failover {failover_s:.2f} s; the re-placement was stuck for {stall_s:.2f} s by then")
        assert failover_s < INSTALL_TIMEOUT_S / 2, f"failover took {failover_s:.2f} s behind the re-placement"
        # else the failover did not overlap the stall and the bound above proves nothing
        assert still_stuck, f"the re-placement ended before the failover ({stall_s:.2f} s)"
        assert producer.errors == []
        after = admin.describe_topic("split").partitions[1]
        assert after.leader_node_id in p1.replica_node_ids and after.leader_node_id != leader_1
        assert after.leader_epoch > p1.leader_epoch
        got = read_all("split", 1, len(producer.acked))
        for offset, value in producer.acked.items():
            assert got.get(offset) == value, f"acknowledged offset {offset} lost or changed"
    finally:
        producer.stop()
        thaw(frozen)
        if frozen_node is not None:
            cluster.remove_node(frozen_node, allow_graceful=False)
        for label in sorted(labels - set(cluster.workers)):
            restore_node(cluster, label)


def test_grouped_requests_with_acks_all_survive_the_leaders_crash(cluster, rkc):
    """A backlog goes out as requests of several batches; with acks="all" each is answered only
    once the followers hold all of its batches, so a new leader has every acknowledged record."""
    import pyarrow as pa

    admin = Admin()
    description = admin.create_topic("grouped", partitions=1, replication_factor=3)
    tables = [
        pa.table({"value": pa.array([b"g%d-%d" % (t, i) for i in range(100)], pa.binary())})
        for t in range(30)
    ]
    with Producer(acks="all", max_in_flight_requests_per_partition=1) as producer:
        futures = [producer.send_batch("grouped", t, partition=0) for t in tables]
        offsets = [md.offset for f in futures for md in f.result(timeout=60)]
        requests = producer._requests_sent
    assert offsets == list(range(3000))
    assert requests < 30  # one request in flight: the queued batches went together
    label = crash_node(cluster, description.partitions[0].leader_node_id)
    new_leader_of(admin, "grouped", description.partitions[0].leader_node_id)
    got = read_all("grouped", 0, 3000)
    assert [got[o] for o in range(3000)] == [v for t in tables for v in t.column("value").to_pylist()]
    restore_node(cluster, label)


def test_admin_finds_the_new_leader_when_the_old_one_hangs(cluster, rkc):
    """A leader whose node hangs (SIGSTOP: Ray does not report it dead for a while) never answers;
    list_offsets asks again who leads instead of waiting on it until request_timeout_ms."""

    admin = Admin(request_timeout_ms=25_000)
    description = admin.create_topic("hung", partitions=1, replication_factor=3)
    with Producer(acks="all") as producer:
        for i in range(30):
            producer.send("hung", b"h-%d" % i)
    old_leader = description.partitions[0].leader_node_id
    label, node = node_of(cluster, old_leader)
    frozen = freeze_node(node)
    try:
        started = time.monotonic()
        assert admin.list_offsets("hung", 0, "latest") == 30
        took_s = time.monotonic() - started
        assert admin.describe_topic("hung").partitions[0].leader_node_id != old_leader
        print(f"list_offsets answered by the new leader after {took_s:.2f} s")
        assert took_s < 15, f"list_offsets took {took_s:.2f} s"  # it waited for the deadline before
    finally:
        replace_hung_node(cluster, label, node, frozen)


def test_producer_moves_to_the_new_leader_when_the_old_one_hangs(cluster, rkc):
    """A leader whose node hangs (SIGSTOP) never answers, and Ray does not report it dead for a
    while; the producer re-reads who leads after LEADER_ATTEMPT_S and resends the waiting
    batches there, instead of failing them at request_timeout_ms (30 s)."""

    admin = Admin()
    description = admin.create_topic("hang", partitions=1, replication_factor=3)
    old_leader = description.partitions[0].leader_node_id
    label, node = node_of(cluster, old_leader)
    producer = SteadyProducer("hang")
    frozen = []
    try:
        producer.wait_for_acks(50, timeout_s=60)
        frozen_at = time.monotonic()
        frozen = freeze_node(node)
        moved_s = acks_resume_after(producer, frozen_at)
        producer.wait_for_acks(len(producer.acked) + 20, timeout_s=30)
        producer.stop()
        print(f"acks resumed {moved_s:.2f} s after the leader's node froze")
        assert producer.errors == []
        assert moved_s < 12, f"acks resumed only after {moved_s:.2f} s"
        assert admin.describe_topic("hang").partitions[0].leader_node_id != old_leader
        got = read_all("hang", 0, len(producer.acked))
        for offset, value in producer.acked.items():
            assert got.get(offset) == value, f"acknowledged offset {offset} lost or changed"
    finally:
        producer.stop()
        replace_hung_node(cluster, label, node, frozen)


def test_a_leader_given_a_new_epoch_still_answers_retries_of_what_it_appended(cluster, rkc):
    """Adding a follower gives the same leader a new epoch. A producer's retry of a batch the
    leader appended before must be answered from its sequencer, not stored a second time."""
    from tests.test_faults import leader
    from tests.test_produce_requests import payload

    admin = Admin()
    description = admin.create_topic("kept", partitions=1, replication_factor=1)
    part = description.partitions[0]
    handle = leader(rkc, "kept")
    request = ("producer-kept", 0, 0, 1, 30_000, False)
    assert ray_get(handle.append.remote([payload([b"k0", b"k1"])], request)) == [(0, -1)]
    other = next(n["NodeID"] for n in _workers(rkc) if n["NodeID"] != part.leader_node_id)
    after = admin.reassign_partitions("kept", {0: [part.leader_node_id, other]}).partitions[0]
    assert after.leader_node_id == part.leader_node_id and after.leader_epoch > part.leader_epoch
    # The answer was lost; the producer sends seq 0 again (to the same leader).
    assert ray_get(handle.append.remote([payload([b"k0", b"k1"])], request)) == [(0, -1)]
    assert admin.list_offsets("kept", 0, "latest") == 2
    assert read_all("kept", 0, 2) == {0: b"k0", 1: b"k1"}


def ray_get(ref, timeout_s: float = 60):
    import ray

    return ray.get(ref, timeout=timeout_s)


def test_with_flush_messages_1_an_acks_all_ack_is_on_every_in_sync_replicas_disk(cluster, rkc):
    """flush.messages=1: the leader fsyncs before acknowledging and each follower before it
    reports its new log end, so at the acknowledgement every in-sync replica has it on disk."""
    import ray

    admin = Admin()
    admin.create_topic(
        "fsynced",
        partitions=1,
        replication_factor=3,
        config={"flush.messages": "1", "min.insync.replicas": "3"},
    )
    prefix = "raykafka.partition.fsynced.0."
    replicas = [
        ray.get_actor(entry["name"], namespace=rkc.namespace)
        for entry in ray.util.list_named_actors(all_namespaces=True)
        if entry["namespace"] == rkc.namespace and entry["name"].startswith(prefix)
    ]
    assert len(replicas) == 3
    with Producer(acks="all", linger_ms=0) as producer:
        for i in range(10):
            [meta] = producer.send("fsynced", f"f-{i}".encode()).result(30)
            flushed = [ray.get(replica.state.remote())["flushed_offset"] for replica in replicas]
            assert min(flushed) >= meta.offset + 1, (i, flushed)


def test_a_leader_whose_disk_fails_hands_over_and_nothing_acknowledged_is_lost(cluster, rkc):
    """EIO on the leader's fsync (injected): it stops acknowledging, reports itself failed,
    an in-sync replica takes over; every acknowledged record is there, once, in order."""
    import ray

    admin = Admin()
    description = admin.create_topic(
        "eio", partitions=1, replication_factor=3, config={"flush.messages": "1", "min.insync.replicas": "2"}
    )
    old_leader = description.partitions[0].leader_node_id
    manager = ray.get_actor("raykafka.topic_manager", namespace=rkc.namespace)
    leader = ray.get(manager.topic_metadata.remote("eio"))["leaders"][0]
    leader_dir = ray.get(leader.info.remote())["directory"]
    sent = [f"e-{i}".encode() for i in range(40)]
    control = cluster.faults_dir / "fsync"
    offsets = []
    try:
        with Producer(acks="all", linger_ms=0) as producer:
            for i, value in enumerate(sent):
                if i == 20:
                    control.write_text(f"{leader_dir} EIO\n")  # the leader's disk fails
                offsets.append(producer.send("eio", value).result(60)[0].offset)
        assert ray.get(leader.health.remote())[0] == "failed"
        part = new_leader_of(admin, "eio", old_leader)
        assert old_leader not in part.isr_node_ids
    finally:
        control.unlink(missing_ok=True)
    assert offsets == sorted(set(offsets))
    consumer = Consumer(group_id=None, auto_offset_reset="earliest")
    consumer.assign([TopicPartition("eio", 0)])
    got = []
    deadline = time.monotonic() + 60
    while len(got) < offsets[-1] + 1 and time.monotonic() < deadline:
        got += consumer.poll_batch(timeout_s=1.0).column("value").to_pylist()
    consumer.close()
    assert [got[offset] for offset in offsets] == sent  # each acknowledged record at its offset
    # Every record once, the one in flight when the disk failed too: the producer's retry is
    # answered from the new leader's producer state if the batch was replicated, else appended.
    assert got == sent


# -- replication safety, driven deterministically on partition actors made by hand --------------
# No TopicManager knows these replicas, so a leader's request to shrink its ISR is refused and it
# keeps the ISR it has: what a test sees is the leader's own rule, not the manager's.


def _record_payloads(n: int) -> list:
    import pyarrow as pa

    from raykafka.storage.records import RECORD_SCHEMA, encode_record_batch

    payloads = []
    for i in range(n):
        batch = pa.RecordBatch.from_arrays(
            [
                pa.array([None], pa.binary()),
                pa.array([f"r-{i}".encode()], pa.binary()),
                pa.array([1_000 + i], pa.int64()),
                pa.array([None], RECORD_SCHEMA.field("headers").type),
            ],
            schema=RECORD_SCHEMA,
        )
        payloads.append(encode_record_batch(batch))
    return payloads


def _hand_made_replicas(rkc, tmp_path, names: list[str], config: dict[str, str] | None = None) -> dict:
    import ray

    from raykafka.actors.topic_manager import _PartitionActor

    handles = {
        name: _PartitionActor.options(namespace=rkc.namespace, num_cpus=0, name=f"hand-{name}").remote(
            "safety", 0, name, str(tmp_path / "data"), dict(config or {}), rkc.namespace, 200
        )
        for name in names
    }
    ray.get([h.state.remote() for h in handles.values()])
    return handles


def _first_frames(frames: list, count: int) -> list:
    """The first ``count`` frames of a fetch answer, as one buffer (a follower given only those)."""
    from raykafka.storage.framing import unpack_header

    data = b"".join(bytes(memoryview(buf).cast("B")) for buf in frames)
    end = 0
    for _ in range(count):
        end += unpack_header(data, end).frame_length
    return [data[:end]]


def _isr_and_hw(handle) -> tuple[list[str], int]:
    import ray

    state = ray.get(handle.state.remote())
    return state["isr"], state["high_watermark"]


def test_a_short_follower_is_not_admitted_against_a_new_leaders_stale_high_watermark(cluster, rkc, tmp_path):
    """KAFKA-7128, driven step by step. Old leader P had records 0..9 in sync with L and T; L
    learned a high watermark of only 5 (followers hear it a round late). S holds 0..6. P dies,
    and T with it; L leads epoch 1 from log end 10 with ISR [L, T], so its stale high watermark
    stands. S answers at 7: past that high watermark, short of what P may have acknowledged. S's
    disk then fails, so it stays at 7. S must not be in L's ISR, from which it could be elected
    and lose 7..9."""
    import ray

    handles = _hand_made_replicas(rkc, tmp_path, ["P", "L", "S", "T"])
    p, leader, short, dead = handles["P"], handles["L"], handles["S"], handles["T"]
    ray.get(p.become_leader.remote(0, {}, ["P"]))
    ray.get([p.append.remote(payload) for payload in _record_payloads(10)])
    frames, _, high_watermark = ray.get(p.fetch.remote(0, 1 << 20, 0))
    assert high_watermark == 10
    ray.get(leader.become_follower.remote(0, "P", p))
    assert ray.get(leader.replicate.remote(0, 0, frames, 5, 0)) == 10
    ray.get(short.become_follower.remote(0, "P", p))
    assert ray.get(short.replicate.remote(0, 0, _first_frames(frames, 7), 5, 0)) == 7
    ray.kill(p)
    ray.kill(dead)
    control = cluster.faults_dir / "write"
    control.write_text(f"{ray.get(short.info.remote())['directory']} EIO\n")  # S stays at 7
    try:
        ray.get(short.become_follower.remote(1, "L", leader))
        ray.get(leader.become_leader.remote(1, {"S": short, "T": dead}, ["L", "T"]))
        deadline = time.monotonic() + 30
        while ray.get(short.health.remote())[0] != "failed":  # S answered at 7, then failed on 7..9
            assert time.monotonic() < deadline, "L never sent S records 7..9"
            time.sleep(0.05)
        assert _isr_and_hw(leader) == (["L", "T"], 5)
        assert ray.get(short.state.remote())["log_end_offset"] == 7
    finally:
        control.unlink(missing_ok=True)
        for h in handles.values():
            ray.kill(h)


def test_retention_stops_at_the_high_watermark_a_stuck_in_sync_follower_holds(cluster, rkc, tmp_path):
    """Records past the high watermark are not on every in-sync replica yet: retention keeps them,
    however old, while a follower in the ISR is stuck below them."""
    import ray

    config = {"segment.bytes": "300", "retention.ms": "0"}  # a segment per ~2 batches, all expired
    handles = _hand_made_replicas(rkc, tmp_path, ["L", "S"], config)
    leader, stuck = handles["L"], handles["S"]
    ray.get(stuck.become_follower.remote(1, "L", leader))
    ray.get(leader.become_leader.remote(1, {"S": stuck}, ["L", "S"]))
    payloads = _record_payloads(12)
    ray.get([leader.append.remote(payload) for payload in payloads[:4]])
    deadline = time.monotonic() + 30
    while _isr_and_hw(leader) != (["L", "S"], 4):
        assert time.monotonic() < deadline, _isr_and_hw(leader)
        time.sleep(0.05)
    control = cluster.faults_dir / "write"
    control.write_text(f"{ray.get(stuck.info.remote())['directory']} EIO\n")
    try:
        ray.get([leader.append.remote(payload) for payload in payloads[4:]])
        ray.get(leader.apply_retention.remote())
        state = ray.get(leader.state.remote())
        assert (state["high_watermark"], state["log_end_offset"], state["isr"]) == (4, 12, ["L", "S"])
        assert 0 < state["log_start_offset"] <= 4  # expired segments below the HW went, no more
    finally:
        control.unlink(missing_ok=True)
        for h in handles.values():
            ray.kill(h)


def test_a_deposed_leader_acknowledges_and_serves_nothing_to_clients_that_know_the_new_epoch(
    cluster, rkc, tmp_path
):
    """A leads epoch 1; B was made leader of epoch 2 and A has not heard yet. A request naming
    epoch 2 is refused by A (NotLeader), nothing stored; B refuses epoch 1 (FencedLeaderEpoch:
    the client's metadata is stale) and takes epoch 2."""
    import ray

    from raykafka.errors import FencedLeaderEpoch, NotLeader

    handles = _hand_made_replicas(rkc, tmp_path, ["A", "B"])
    deposed, current = handles["A"], handles["B"]
    try:
        ray.get(deposed.become_leader.remote(1, {}, ["A"]))
        ray.get(current.become_leader.remote(2, {}, ["B"]))
        [payload] = _record_payloads(1)

        def request(epoch: int) -> tuple:
            return (None, 0, None, 1, 30_000, False, epoch)

        with pytest.raises(NotLeader):
            ray.get(deposed.append.remote(payload, request(2)))
        with pytest.raises(NotLeader):
            ray.get(deposed.fetch.remote(0, 1 << 20, 0, (2, None)))
        assert ray.get(deposed.state.remote())["log_end_offset"] == 0
        with pytest.raises(FencedLeaderEpoch):
            ray.get(current.append.remote(payload, request(1)))
        assert ray.get(current.append.remote(payload, request(2))) == (0, -1)
        assert ray.get(current.state.remote())["log_end_offset"] == 1
    finally:
        for h in handles.values():
            ray.kill(h)


def _replica_dir_on(settings, topic: str, node_id: str) -> str:
    """The data directory of ``topic``'s replica on ``node_id`` (asked of the actor itself)."""
    import ray

    prefix = f"raykafka.partition.{topic}."
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["namespace"] == settings.namespace and entry["name"].startswith(prefix):
            info = ray.get(ray.get_actor(entry["name"], namespace=settings.namespace).info.remote())
            if info["node_id"] == node_id:
                return info["directory"]
    raise AssertionError(f"no replica of {topic} on {node_id}")


def test_a_reassignment_onto_no_in_sync_replica_is_refused(cluster, rkc):
    """Moving a partition onto only an out-of-sync replica would elect it (an unclean election):
    refused with a typed error and nothing changed, unless the topic allows unclean elections."""
    from raykafka.errors import InvalidReplicaAssignment

    admin = Admin()
    description = admin.create_topic("moving", partitions=1, replication_factor=2)
    leader_node = description.partitions[0].leader_node_id
    follower_node = next(n for n in description.partitions[0].replica_node_ids if n != leader_node)
    with Producer(acks="all") as producer:
        producer.send("moving", b"before").result(30)
    follower_dir = _replica_dir_on(rkc, "moving", follower_node)
    control = cluster.faults_dir / "write"
    control.write_text(f"{follower_dir} EIO\n")
    try:
        with Producer(acks=1) as producer:
            producer.send("moving", b"while the follower's disk fails").result(30)
        deadline = time.monotonic() + 30
        while admin.describe_topic("moving").partitions[0].isr_node_ids != [leader_node]:
            assert time.monotonic() < deadline, "the failed follower never left the ISR"
            time.sleep(0.1)
        with pytest.raises(InvalidReplicaAssignment, match="no in-sync replica"):
            admin.reassign_partitions("moving", {0: [follower_node]})
        after = admin.describe_topic("moving").partitions[0]
        assert (after.leader_node_id, sorted(after.replica_node_ids)) == (
            leader_node,
            sorted([leader_node, follower_node]),
        )
    finally:
        control.unlink(missing_ok=True)
    assert list(read_all("moving", 0, 2).values()) == [b"before", b"while the follower's disk fails"]


# -- idempotence across failover (KIP-98) -------------------------------------------------------


def test_with_idempotence_a_batch_retried_across_a_leader_failover_is_stored_once(cluster, rkc):
    """An acks="all" request was appended and replicated, and its answer was lost with the
    leader's node. The producer sends it again -- with one more batch -- to the new leader, which
    finds the batches' (producer id, epoch, sequence) in the producer state it built from the
    replicated frames and answers them with their offsets; only the new batch is appended.
    Before, a new leader's sequencer started empty and stored them a second time."""
    from tests.test_faults import leader
    from tests.test_produce_requests import payload

    admin = Admin()
    description = admin.create_topic(
        "idem", partitions=1, replication_factor=3, config={"min.insync.replicas": "2"}
    )
    old_node = description.partitions[0].leader_node_id
    request = (((1 << 62) + 14, 0), 0, 0, "all", 30_000, False)  # (producer id, epoch), seq 0, ...
    batches = [payload([b"i0", b"i1"]), payload([b"i2"])]
    assert ray_get(leader(rkc, "idem").append.remote(batches, request)) == [(0, -1), (2, -1)]
    label = crash_node(cluster, old_node)
    try:
        new_leader_of(admin, "idem", old_node)
        retried = ray_get(leader(rkc, "idem").append.remote([*batches, payload([b"i3"])], request))
        assert retried == [(0, -1), (2, -1), (3, -1)]
        assert admin.list_offsets("idem", 0, "latest") == 4
        assert read_all("idem", 0, 4) == {0: b"i0", 1: b"i1", 2: b"i2", 3: b"i3"}
    finally:
        restore_node(cluster, label)


def test_an_acks_all_batch_whose_isr_shrank_after_the_append_is_retried_and_stored_once(cluster, rkc):
    """Kafka's NOT_ENOUGH_REPLICAS_AFTER_APPEND: RF 2, min.insync.replicas 2. The follower's node
    hangs, the leader appends a batch, and the ISR shrinks to the leader alone before the batch
    is on two replicas. The idempotent producer retries it (answered from the leader's producer
    state, not stored again) until the follower is back in the ISR; the send succeeds, and the
    record is in the log once. Before, the send failed with NotEnoughReplicas although the record
    was in the log."""
    admin = Admin()
    description = admin.create_topic(
        "near", partitions=1, replication_factor=2, config={"min.insync.replicas": "2"}
    )
    part = description.partitions[0]
    follower_node = next(n for n in part.replica_node_ids if n != part.leader_node_id)
    label, node = node_of(cluster, follower_node)
    frozen = []
    try:
        with Producer(acks="all", linger_ms=0) as producer:
            assert producer.send("near", b"n0").result(60)[0].offset == 0
            frozen = freeze_node(node)
            future = producer.send("near", b"n1")
            deadline = time.monotonic() + 30
            while admin.describe_topic("near").partitions[0].isr_node_ids != [part.leader_node_id]:
                assert time.monotonic() < deadline, "the hung follower never left the ISR"
                time.sleep(0.1)
            assert not future.done()  # (before: failed with NotEnoughReplicas about here)
            thaw(frozen)
            assert future.result(60)[0].offset == 1
        assert admin.list_offsets("near", 0, "latest") == 2
        assert read_all("near", 0, 2) == {0: b"n0", 1: b"n1"}
    finally:
        thaw(frozen)
        if not _alive(node.node_id):  # hung long enough for Ray to give the node up
            cluster.remove_node(node, allow_graceful=False)
            del cluster.workers[label]
            restore_node(cluster, label)


# -- power loss of a follower, then the leader's crash ------------------------------------------


def _replica_infos(settings, topic: str) -> dict[str, dict]:
    """``info()`` of each replica of ``topic``'s partition 0, by node id."""
    import ray

    prefix = f"raykafka.partition.{topic}.0."
    infos = {}
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["namespace"] == settings.namespace and entry["name"].startswith(prefix):
            info = ray_get(ray.get_actor(entry["name"], namespace=settings.namespace).info.remote())
            infos[info["node_id"]] = info
    return infos


def _take_lock(fd: int) -> None:
    """Take a replica directory's lock from its killed process, before its restart can."""
    import fcntl

    deadline = time.monotonic() + 30
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            assert time.monotonic() < deadline, "the killed replica's process kept its directory lock"
            time.sleep(0.001)


def _stop_after_an_outage(producer: SteadyProducer) -> None:
    """Stop ``producer``. Its close() raises again the first error of a send that failed while
    the partition had too few replicas (recorded in ``producer.errors``, never acknowledged):
    expected after an outage, anything else is not."""
    try:
        producer.stop()
    except raykafka.errors.RayKafkaError as exc:
        assert f"{type(exc).__name__}: {exc}" in producer.errors, exc


def test_a_followers_power_loss_then_the_leaders_crash_loses_nothing_acknowledged(cluster, rkc, tmp_path):
    """flush.messages=1, acks="all", RF 3, min.insync.replicas 2, producing steadily. At one
    moment the leader's node stops (frozen: it can neither acknowledge more nor drop anyone from
    the ISR), follower F loses power (its process killed, its files cut back to what it fsynced,
    from the journal its process kept) and follower G's process is killed (its files kept); then
    the leader's node crashes. F, held back by its directory lock until now, comes back first:
    the only in-sync replica left, it is elected with what its disk kept, and G follows it.
    Every acknowledged record is at its offset, once, in order: with flush.messages=1 a follower
    fsyncs before it reports its log end, so everything acknowledged was on F's disk. (Without
    that fsync F keeps only what its last maintenance round fsynced, up to a second behind.)"""
    import contextlib

    import psutil

    from raykafka.storage import faults

    faults.track_power_loss_in(cluster.faults_dir, (tmp_path / "data").resolve())  # rkc's data_dir
    admin = Admin()
    description = admin.create_topic(
        "durable",
        partitions=1,
        replication_factor=3,
        config={"flush.messages": "1", "min.insync.replicas": "2"},
    )
    leader_node = description.partitions[0].leader_node_id
    infos = _replica_infos(rkc, "durable")
    f_node, g_node = sorted(n for n in infos if n != leader_node)
    label, node = node_of(cluster, leader_node)
    locks = {n: os.open(Path(infos[n]["directory"]) / ".lock", os.O_RDWR) for n in (f_node, g_node)}
    producer = SteadyProducer("durable")
    frozen: list = []
    try:
        producer.wait_for_acks(150, timeout_s=60)
        deadline = time.monotonic() + 30
        while len(admin.describe_topic("durable").partitions[0].isr_node_ids) < 3:
            assert time.monotonic() < deadline, "the followers are not in sync"
            time.sleep(0.1)
        frozen = freeze_node(node)
        for n in (f_node, g_node):
            os.kill(infos[n]["pid"], signal.SIGKILL)
        for n in (f_node, g_node):
            _take_lock(locks[n])
        # What the old leader acknowledged (the dict, not producer.acked: where a record was lost,
        # the new leader gives its offset to a later one, and producer.acked forgets the first)
        acked_before = dict(producer.acked)
        cut = faults.simulate_power_loss_from_journal(cluster.faults_dir, infos[f_node]["directory"])
        crash_node(cluster, leader_node)
        for process in frozen:  # its workers, frozen, would never notice their raylet is gone
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        os.close(locks.pop(f_node))
        part = new_leader_of(admin, "durable", leader_node, timeout_s=60)
        assert part.leader_node_id == f_node
        os.close(locks.pop(g_node))
        producer.wait_for_acks(len(acked_before) + 30, timeout_s=60)
        _stop_after_an_outage(producer)
        print(f"F's power loss cut {cut.bytes_cut} bytes, undid {cut.entries_undone} entries")
        got = read_all("durable", 0, admin.list_offsets("durable", 0, "latest"))
        acked = [acked_before, producer.acked]
        lost = [o for a in acked for o, value in a.items() if got.get(o) != value]
        assert not lost, f"acknowledged offsets {sorted(set(lost))} lost or changed"
        assert sorted(got) == list(range(len(got)))
        values = [got[offset] for offset in sorted(got)]
        assert len(set(values)) == len(values), "a record stored twice"
        acked_values = {**acked_before, **producer.acked}
        sent_order = [int(acked_values[offset][2:]) for offset in sorted(acked_values)]
        assert sent_order == sorted(sent_order), "acknowledged records out of order"
    finally:
        with contextlib.suppress(Exception):  # stopped above unless the test failed: report that
            producer.stop()
        for fd in locks.values():
            os.close(fd)
        (cluster.faults_dir / faults.TRACK_POWER_LOSS_FILE).unlink(missing_ok=True)
        if label in cluster.workers and frozen:  # failed before the crash
            replace_hung_node(cluster, label, node, frozen)
        elif label not in cluster.workers:
            restore_node(cluster, label)
