"""TopicManager: the one named, detached actor that knows every topic and elects leaders.

It owns topic metadata -- names, ids, configs, partitions, where each replica
lives, each partition's leader, leader epoch and in-sync replicas (ISR) --
persisted as an atomic JSON snapshot in
``<data_dir>/namespaces/<namespace>/metadata/topics.json`` on the head node (a
directory it locks for its lifetime; ``raykafka.storage.layout``). It creates,
places, alters, reassigns and deletes PartitionActors and hands out their
handles; it is never on the data path.

Every mutation is persisted *before* it is acted on (create: record, then start
actors; delete: mark ``deleting``, then destroy, then forget; election: new
leader and epoch, then tell the replicas), so a manager killed at any point
converges when its constructor replays the snapshot: it re-attaches to
partition actors that still live (by name) and recreates the others -- replicas
whose node is gone (a restarted Ray gives its nodes new ids) first move to the
live node with the same storage identity, so none is ever pinned to a node that
no longer exists. A replica actor that died for good (its constructor failed,
e.g. ``DirectoryLocked`` while a previous owner's process was still exiting) is
re-created with exponential back-off.

Failure handling (it does not wait for Ray to declare a node dead, ~14 s here):

* every ``MONITOR_INTERVAL_MS`` it asks each leader for its state; a leader
  that fails ``LEADER_FAILURES_TO_ELECT`` times in a row is replaced by the
  first live replica of the ISR, with the leader epoch bumped;
* a replica that (re)starts asks for its role (``replica_ready``); a restarted
  leader leads again under a new epoch;
* a replica whose node is dead is recreated on a live node with the same
  *storage identity* -- the node label ``raykafka-storage``, else the node's
  IP address -- because that node sees the same disk and so the same data.

Placement: replicas of a partition go to distinct nodes (distinct storage
identities where possible), replicas and leaders spread evenly. When any node
carries the ``raykafka-storage`` label, only labelled nodes receive replicas
(the operator chose the broker nodes).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter

import ray
from ray.exceptions import ActorDiedError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from raykafka.actors.actor_logs import RecentEvents, route_actor_logs
from raykafka.actors.naming import DEFAULT_NAMESPACE, group_actor_name, partition_actor_name
from raykafka.actors.partition import MAX_CONCURRENCY, PartitionActor
from raykafka.control.nodes import STORAGE_LABEL
from raykafka.control.topics import MAX_PARTITIONS_PER_TOPIC, validate_new_topic
from raykafka.errors import (
    FencedLeader,
    InvalidConfig,
    InvalidReplicaAssignment,
    RequestTimedOut,
    TopicAlreadyExists,
    UnknownTopic,
)
from raykafka.storage.layout import (
    Identity,
    adopt_legacy_layout,
    legacy_layout_present,
    metadata_directory,
    namespace_cluster_id,
    namespace_root,
    open_owned_directory,
    resolve_data_dir,
)
from raykafka.storage.snapshot import read_json, write_json_atomic
from raykafka.topic_config import config_value, effective_config, validate_topic_config
from raykafka.types import PartitionDescription, TopicDescription

logger = logging.getLogger(__name__)

#: How long one state/offsets call to a replica may take before it counts as failed.
REPLICA_CALL_TIMEOUT_S = 1.0
#: How long describe_topic waits for one partition.
DESCRIBE_TIMEOUT_S = 5.0
#: How long telling replicas their roles may take (a new actor's process must start first).
INSTALL_TIMEOUT_S = 20.0
#: How often leaders are checked.
MONITOR_INTERVAL_MS = 500
#: Consecutive failed checks before a new leader is elected (~1.5 s with the values above).
LEADER_FAILURES_TO_ELECT = 2
#: How often dead nodes' replicas are looked at for re-placement.
NODE_CHECK_INTERVAL_MS = 2_000
#: A partition whose leader actor was created this recently and has not answered yet is starting
#: (a process to start, its log to open: seconds when a restarted cluster re-creates many at
#: once on 2 CPUs), not offline: logged at INFO, not ERROR.
REPLICA_START_GRACE_S = 60.0
#: A replica actor that died for good is re-created after this, doubling per failed attempt...
RECREATE_BACKOFF_MIN_S = 0.5
#: ... up to this.
RECREATE_BACKOFF_MAX_S = 30.0
#: How long a new TopicManager waits for the metadata directory's lock (its previous
#: process may still be exiting).
METADATA_LOCK_WAIT_S = 2.0
#: How long reassign_partitions waits for new replicas to catch up.
REASSIGN_TIMEOUT_S = 300

#: The partition actor's liveness check runs in its own concurrency group (see PartitionActor.health);
#: its other calls share MAX_CONCURRENCY slots, of which long polls take at most half.
_PartitionActor = ray.remote(max_concurrency=MAX_CONCURRENCY, concurrency_groups={"control": 4})(
    PartitionActor
)


def storage_id(node: dict) -> str:
    return node.get("Labels", {}).get(STORAGE_LABEL) or node["NodeManagerAddress"]


class TopicManager:
    def __init__(
        self,
        data_dir: str | None,
        namespace: str,
        maintenance_interval_ms: int = 1000,
        replica_lag_time_max_ms: int | None = None,
    ):
        route_actor_logs("topic_manager")  # internal events: this process's log file, not drivers
        self.events = RecentEvents()
        logging.getLogger("raykafka").addHandler(self.events)
        self.data_dir = data_dir  # as given: resolved on each partition's own node
        self.namespace = namespace
        self.maintenance_interval_ms = maintenance_interval_ms
        self.replica_lag_time_max_ms = replica_lag_time_max_ms
        node_data_dir = resolve_data_dir(data_dir)
        self.root = namespace_root(node_data_dir, namespace)
        self._adopt_legacy_layout(node_data_dir)
        self.cluster_id = namespace_cluster_id(self.root, namespace, uuid.uuid4().hex)
        self._metadata_lock = open_owned_directory(
            metadata_directory(self.root),
            Identity("metadata", namespace, self.cluster_id, ""),
            wait_s=METADATA_LOCK_WAIT_S,
        )
        self.meta_path = metadata_directory(self.root) / "topics.json"
        self.topics: dict[str, dict] = read_json(self.meta_path, {"topics": {}})["topics"]
        self.handles: dict[str, ray.actor.ActorHandle] = {}
        # replica_id -> (when to re-create it, why it died) of actors that died for good
        self.dead: dict[str, tuple[float, str]] = {}
        self.recreate_attempts: Counter = Counter()  # until the re-created actor answers
        self.lock = asyncio.Lock()
        self.partition_locks: dict[tuple[str, int], asyncio.Lock] = {}
        self.leader_failures: Counter = Counter()
        # replica_id -> when its actor was created, until it answers a check as leader (asking for
        # its role is not enough: a fresh actor still opening its log may miss the next checks)
        self.starting: dict[str, float] = {}
        self.said: dict[tuple[str, int], tuple[int, str]] = {}  # logged of a leaderless partition
        self.reported_offline: set[tuple[str, int]] = set()  # ... at ERROR, in its current outage
        self._relocate_lost_replicas()  # before attaching: never pin an actor to a node that is gone
        for name, topic in self.topics.items():
            if topic.get("deleting"):
                continue  # finished by the monitor
            for part in topic["partitions"]:
                for replica in part["replicas"]:
                    self.handles[replica["replica_id"]] = self._attach(
                        name, part["partition"], replica, topic
                    )
        logger.info("TopicManager up with %d topics from %s", len(self.topics), self.meta_path)
        loop = asyncio.get_running_loop()
        self._monitor = loop.create_task(self._run_monitor())
        # Its own loop: a re-placement waits on replicas (up to INSTALL_TIMEOUT_S when its new node
        # dies too), and leader elections must not wait behind it.
        self._replacer = loop.create_task(self._run_replacer())

    def _adopt_legacy_layout(self, node_data_dir) -> None:
        """Data written before the layout had namespaces belongs to the default namespace."""
        if self.namespace == DEFAULT_NAMESPACE:
            moved = adopt_legacy_layout(node_data_dir, self.root)
            if moved:
                logger.warning(
                    "moved %s from %s into %s (the layout with namespaces)", moved, node_data_dir, self.root
                )
        elif legacy_layout_present(node_data_dir):
            logger.warning(
                "%s holds topics written before the layout had namespaces; namespace %r adopts them when it "
                "starts. To give them to %r instead, move %s/metadata and %s/groups into %s first",
                node_data_dir,
                DEFAULT_NAMESPACE,
                self.namespace,
                node_data_dir,
                node_data_dir,
                self.root,
            )

    # -- persistence and actors --------------------------------------------------

    def _persist(self) -> None:
        write_json_atomic(self.meta_path, {"version": 2, "topics": self.topics})

    def _actor_name(self, topic: str, partition: int, replica: dict) -> str:
        return partition_actor_name(topic, partition, replica["replica_id"], replica.get("generation", 0))

    def _attach(self, topic: str, partition: int, replica: dict, meta: dict):
        name = self._actor_name(topic, partition, replica)
        try:
            return ray.get_actor(name, namespace=self.namespace)
        except ValueError:
            pass
        self.starting[replica["replica_id"]] = time.monotonic()
        options = {}
        if self.replica_lag_time_max_ms is not None:
            options["replica_lag_time_max_ms"] = self.replica_lag_time_max_ms
        return _PartitionActor.options(
            name=name,
            namespace=self.namespace,
            lifetime="detached",
            num_cpus=0,
            max_restarts=-1,
            max_task_retries=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(replica["node_id"], soft=False),
        ).remote(
            topic,
            partition,
            replica["replica_id"],
            self.data_dir,
            meta["config"],
            self.namespace,
            self.maintenance_interval_ms,
            cluster_id=self.cluster_id,
            **options,
        )

    @staticmethod
    def _alive_nodes() -> dict[str, dict]:
        return {n["NodeID"]: n for n in ray.nodes() if n.get("Alive")}

    def _broker_nodes(self) -> dict[str, dict]:
        """Nodes new replicas may go to: those labelled with a storage identity when any
        node is (the operator chose the brokers), else every alive node."""
        alive = self._alive_nodes()
        labelled = {n: node for n, node in alive.items() if node.get("Labels", {}).get(STORAGE_LABEL)}
        return labelled or alive

    def _place(self, partitions: range, replication_factor: int) -> list[list[dict]]:
        """Replica placements for new partitions: distinct nodes (distinct disks where possible),
        replicas and leaders spread evenly."""
        alive = self._broker_nodes()
        if replication_factor > len(alive):
            raise InvalidConfig(
                f"replication_factor={replication_factor} needs that many alive Ray nodes; "
                f"{len(alive)} are alive. Add nodes or lower the replication factor"
            )
        load, leads = Counter({n: 0 for n in alive}), Counter({n: 0 for n in alive})
        for topic in self.topics.values():
            for part in topic["partitions"]:
                for replica in part["replicas"]:
                    if replica["node_id"] in load:
                        load[replica["node_id"]] += 1
                        if replica["replica_id"] == part["leader"]:
                            leads[replica["node_id"]] += 1
        placements = []
        for _ in partitions:
            leader = min(alive, key=lambda n: (leads[n], load[n], n))
            chosen = [leader]
            while len(chosen) < replication_factor:
                disks = {storage_id(alive[n]) for n in chosen}
                rest = [n for n in alive if n not in chosen]
                chosen.append(min(rest, key=lambda n: (storage_id(alive[n]) in disks, load[n], n)))
            for n in chosen:
                load[n] += 1
            leads[leader] += 1
            placements.append(
                [
                    {"replica_id": uuid.uuid4().hex[:12], "node_id": n, "storage_id": storage_id(alive[n])}
                    for n in chosen
                ]
            )
        return placements

    def _new_partitions(self, first: int, count: int, replication_factor: int) -> list[dict]:
        parts = []
        for i, replicas in enumerate(self._place(range(count), replication_factor)):
            ids = [r["replica_id"] for r in replicas]
            parts.append(
                {
                    "partition": first + i,
                    "leader": ids[0],
                    "leader_epoch": 0,
                    "isr": ids,
                    "replicas": replicas,
                }
            )
        return parts

    async def _start(self, name: str, parts: list[dict]) -> None:
        meta = self.topics[name]
        for part in parts:
            for replica in part["replicas"]:
                self.handles[replica["replica_id"]] = self._attach(name, part["partition"], replica, meta)

        async def install(part: dict) -> None:
            async with self._plock(name, part["partition"]):  # replica_ready waits: no needless new epoch
                await self._install(name, part)

        await asyncio.gather(*(install(part) for part in parts))

    def _topic(self, name: str) -> dict:
        topic = self.topics.get(name)
        if topic is None or topic.get("deleting"):
            raise UnknownTopic(
                f"topic {name!r} does not exist; create it with Admin().create_topic({name!r}, partitions=N) "
                f"or `raykafka topics create {name}`"
            )
        return topic

    def _part(self, topic: str, partition: int) -> dict:
        parts = self._topic(topic)["partitions"]
        if not 0 <= partition < len(parts):
            raise ValueError(f"topic {topic!r} has partitions 0..{len(parts) - 1}; got {partition}")
        return parts[partition]

    def _plock(self, topic: str, partition: int) -> asyncio.Lock:
        return self.partition_locks.setdefault((topic, partition), asyncio.Lock())

    # -- roles: install, reconcile, elect ----------------------------------------

    async def _install(self, topic: str, part: dict) -> None:
        """Tell the leader and every live follower the partition's current epoch and roles."""
        if part["leader"] is None:
            return
        leader = self.handles[part["leader"]]
        followers = {
            r["replica_id"]: self.handles[r["replica_id"]]
            for r in part["replicas"]
            if r["replica_id"] != part["leader"]
        }
        epoch = part["leader_epoch"]
        try:
            await asyncio.wait_for(
                leader.become_leader.remote(epoch, followers, part["isr"]), INSTALL_TIMEOUT_S
            )
        except Exception as exc:  # it restarts or is gone: the monitor and replica_ready take over
            logger.warning("%s-%d: become_leader(epoch %d) failed: %s", topic, part["partition"], epoch, exc)
            return
        await asyncio.gather(
            *(
                asyncio.wait_for(h.become_follower.remote(epoch, part["leader"], leader), INSTALL_TIMEOUT_S)
                for h in followers.values()
            ),
            return_exceptions=True,  # a dead follower learns its role when it asks (replica_ready)
        )

    async def _state(self, replica_id: str) -> dict | None:
        """``{"role", "epoch"}`` of a replica, or None when it does not answer in time. An actor
        that died for good (not restarting) is scheduled for re-creation."""
        try:
            role, epoch = await asyncio.wait_for(
                self.handles[replica_id].health.remote(), REPLICA_CALL_TIMEOUT_S
            )
        except ActorDiedError as exc:
            self._note_death(replica_id, exc)
            return None
        except Exception:
            return None
        self.recreate_attempts.pop(replica_id, None)
        return {"role": role, "epoch": epoch}

    async def replica_ready(self, topic: str, partition: int, replica_id: str) -> None:
        """A replica (re)started and asks for its role; it gets it through become_*."""
        try:
            part = self._part(topic, partition)
        except (UnknownTopic, ValueError):
            return
        async with self._plock(topic, partition):
            if part["leader"] == replica_id:
                state = await self._state(replica_id)
                if state is not None and state["role"] == "leader" and state["epoch"] == part["leader_epoch"]:
                    return
                part["leader_epoch"] += 1  # a restarted leader leads a new term
                self._persist()
                message = "%s-%d: leader %s restarted; it leads again under a new epoch %d"
                logger.info(message, topic, partition, replica_id, part["leader_epoch"])
                await self._install(topic, part)
            elif part["leader"] is not None and replica_id in self.handles:
                leader = self.handles[part["leader"]]
                try:
                    await asyncio.wait_for(
                        self.handles[replica_id].become_follower.remote(
                            part["leader_epoch"], part["leader"], leader
                        ),
                        DESCRIBE_TIMEOUT_S,
                    )
                except Exception as exc:
                    logger.info("%s-%d: %s could not follow yet: %s", topic, partition, replica_id, exc)

    async def _elect(self, topic: str, part: dict, reason: str) -> None:
        """Make the first live in-sync replica (other than the failed leader) the leader."""
        partition = part["partition"]
        async with self._plock(topic, partition):
            old = part["leader"]
            candidates = [r for r in part["isr"] if r != old] + ([old] if old in part["isr"] else [])
            for candidate in candidates:
                state = await self._state(candidate)
                if state is None or state["role"] == "failed":  # gone, or its disk failed
                    continue
                if candidate == old and state["role"] == "leader" and state["epoch"] == part["leader_epoch"]:
                    self._leader_answers((topic, partition), old)
                    return  # it answers again as the leader it was (it was busy, or restarted and back)
                part["leader"] = candidate
                part["leader_epoch"] += 1
                if candidate != old:
                    part["isr"] = [r for r in part["isr"] if r != old]
                self._persist()
                if candidate == old:  # it answers again, but not as the leader of this term
                    message = "%s-%d: leader %s leads again under a new epoch %d (%s)"
                    logger.info(message, topic, partition, old, part["leader_epoch"], reason)
                else:
                    message = "%s-%d: leader %s -> %s, epoch %d (%s)"
                    logger.warning(message, topic, partition, old, candidate, part["leader_epoch"], reason)
                await self._install(topic, part)
                self._leader_answers((topic, partition), candidate)
                return
            key = (topic, partition)
            alive = self._alive_nodes()
            home = self._spare_disk_of(part, old, alive)
            started = self.starting.get(old)
            if home is not None:
                self._say_once(
                    key,
                    logging.INFO,
                    "%s-%d: waiting for its replica to be re-created on a live node with the same disk %s "
                    "(its node is not in this Ray cluster: a restarted cluster, or the node was replaced)",
                    topic,
                    partition,
                    home,
                )
            elif (
                started is not None
                and time.monotonic() - started < REPLICA_START_GRACE_S
                and (self._replica(part, old) or {}).get("node_id") in alive  # (pinned to a dead node: never)
            ):
                message = "%s-%d: waiting for replica %s to start"
                self._say_once(key, logging.INFO, message, topic, partition, old)
            else:
                message = "%s-%d: offline: no in-sync replica answers (%s)"
                self._say_once(key, logging.ERROR, message, topic, partition, reason)

    def _say_once(self, key: tuple[str, int], level: int, message: str, *args) -> None:
        """Log what a leaderless partition waits for once, not at every check (every 0.5 s)."""
        if self.said.get(key) != (level, message):
            self.said[key] = (level, message)
            logger.log(level, message, *args)
            if level >= logging.ERROR:
                self.reported_offline.add(key)

    def _leader_answers(self, key: tuple[str, int], replica_id: str) -> None:
        """The partition has a leader that answers: its failure count and what was said of it end."""
        self.leader_failures.pop(key, None)
        self.starting.pop(replica_id, None)
        self.said.pop(key, None)
        if key in self.reported_offline:
            self.reported_offline.discard(key)
            logger.warning("%s-%d: back online, led by %s", *key, replica_id)

    @staticmethod
    def _replica(part: dict, replica_id: str | None) -> dict | None:
        """``part``'s replica record of ``replica_id``, None if it has none."""
        return next((r for r in part["replicas"] if r["replica_id"] == replica_id), None)

    def _spare_disk_of(self, part: dict, replica_id: str, alive: dict[str, dict]) -> str | None:
        """The storage identity of ``replica_id`` when its node is gone and a live node sees the
        same disk -- the replacer will re-create it there -- else None."""
        replica = self._replica(part, replica_id)
        if replica is None or replica["node_id"] in alive:
            return None
        home = replica.get("storage_id")
        return home if any(storage_id(node) == home for node in alive.values()) else None

    async def alter_isr(self, topic: str, partition: int, epoch: int, isr: list[str]) -> None:
        """A leader changes its partition's ISR; refused (FencedLeader) from a deposed leader."""
        part = self._part(topic, partition)
        if epoch != part["leader_epoch"]:
            raise FencedLeader(
                f"{topic}-{partition}: epoch {epoch} is not the current {part['leader_epoch']}"
            )
        if sorted(isr) != sorted(part["isr"]):
            part["isr"] = sorted(isr)
            self._persist()

    # -- the monitor -----------------------------------------------------------

    async def _run_monitor(self) -> None:
        while True:
            await asyncio.sleep(MONITOR_INTERVAL_MS / 1000)
            try:
                await self._finish_deletions()
                await self._check_leaders()
            except Exception:
                logger.exception("monitor round failed")

    async def _run_replacer(self) -> None:
        while True:
            await asyncio.sleep(NODE_CHECK_INTERVAL_MS / 1000)
            try:
                await self._replace_lost_replicas()
                await self._probe_followers()
                await self._recreate_dead_replicas()
            except Exception:
                logger.exception("replica re-placement round failed")

    async def _check_leaders(self) -> None:
        parts = [
            (name, part)
            for name, t in self.topics.items()
            if not t.get("deleting")
            for part in t["partitions"]
        ]

        async def check(name: str, part: dict) -> None:
            key = (name, part["partition"])
            if part["leader"] is None or self._plock(*key).locked():
                return
            state = await self._state(part["leader"])
            if state is not None and state["role"] == "failed":  # its disk failed: it takes no writes
                await self._elect(name, part, "the leader's data directory failed")
                return
            if state is not None:
                self._leader_answers(key, part["leader"])
                if state["role"] == "unknown":  # restarted; it is asking for its role too
                    await self.replica_ready(name, part["partition"], part["leader"])
                return
            self.leader_failures[key] += 1
            if self.leader_failures[key] >= LEADER_FAILURES_TO_ELECT:
                await self._elect(name, part, f"leader failed {self.leader_failures[key]} checks")

        await asyncio.gather(*(check(name, part) for name, part in parts))

    def _relocate(self, part: dict, replica: dict, alive: dict[str, dict]) -> str | None:
        """Move ``replica``'s record from a node that is gone to a live node with the same storage
        identity (the same disk, so the same data) that holds no other replica of ``part``, with a
        new generation (a new actor name). Returns the lost node id, None if it stays."""
        if replica["node_id"] in alive:
            return None
        hosts = {r["node_id"] for r in part["replicas"]}
        home = replica.get("storage_id")
        spare = sorted(n for n, node in alive.items() if storage_id(node) == home and n not in hosts)
        if not spare:
            return None
        lost_node = replica["node_id"]
        replica["node_id"] = spare[0]
        replica["generation"] = replica.get("generation", 0) + 1
        return lost_node

    def _relocate_lost_replicas(self) -> None:
        """At start: re-home every replica whose node is gone (after ``ray stop; ray start`` every
        node has a new id), persisted once, before any actor is created."""
        alive = self._alive_nodes()
        moved = [
            (name, part["partition"], replica["replica_id"])
            for name, topic in self.topics.items()
            if not topic.get("deleting")
            for part in topic["partitions"]
            for replica in part["replicas"]
            if self._relocate(part, replica, alive) is not None
        ]
        if moved:
            self._persist()
            logger.info("%d replica(s) re-homed on live nodes with the same disk: %s", len(moved), moved[:10])

    async def _replace_lost_replicas(self) -> None:
        """Recreate replicas of dead nodes on live nodes that see the same disk."""
        alive = self._alive_nodes()
        for name, topic in list(self.topics.items()):
            if topic.get("deleting"):
                continue
            for part in topic["partitions"]:
                for replica in part["replicas"]:
                    if replica["node_id"] in alive:
                        continue
                    async with self._plock(name, part["partition"]):
                        old = self.handles.get(replica["replica_id"])
                        lost_node = self._relocate(part, replica, alive)
                        if lost_node is None:
                            continue
                        if old is not None:
                            ray.kill(old, no_restart=True)
                        self._persist()
                        logger.info(
                            "%s-%d: replica %s re-created on node %s (same disk %s); its node %s is gone",
                            name,
                            part["partition"],
                            replica["replica_id"],
                            replica["node_id"][:12],
                            replica.get("storage_id"),
                            lost_node[:12],
                        )
                        await self._recreate(name, part, replica, topic)
                    # it asks for its role when it is up (replica_ready)

    async def _recreate(self, name: str, part: dict, replica: dict, topic: dict) -> None:
        """Start ``replica``'s actor anew (its name is free: the old one died or was killed). A
        follower's leader replicates to actor handles it was given: it gets the new one in a new
        epoch; a leader learns its term when it asks (``replica_ready``), as after a restart."""
        self.handles[replica["replica_id"]] = self._attach(name, part["partition"], replica, topic)
        if replica["replica_id"] != part["leader"] and part["leader"] is not None:
            part["leader_epoch"] += 1
            self._persist()
            await self._install(name, part)

    def _note_death(self, replica_id: str, exc: BaseException) -> None:
        """``replica_id``'s actor died for good: schedule its re-creation, backing off per attempt."""
        if replica_id in self.dead:
            return
        attempts = self.recreate_attempts.get(replica_id, 0)
        delay = min(RECREATE_BACKOFF_MAX_S, RECREATE_BACKOFF_MIN_S * 2**attempts)
        reason = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else type(exc).__name__
        self.dead[replica_id] = (time.monotonic() + delay, reason)

    async def _recreate_dead_replicas(self) -> None:
        """Re-create replica actors that died for good, once their back-off passed, while their
        node lives (a dead node's replicas are re-homed by ``_replace_lost_replicas``)."""
        if not self.dead:
            return
        alive, now = self._alive_nodes(), time.monotonic()
        for name, topic in list(self.topics.items()):
            if topic.get("deleting"):
                continue
            for part in topic["partitions"]:
                for replica in part["replicas"]:
                    rid = replica["replica_id"]
                    due, reason = self.dead.get(rid, (None, ""))
                    if due is None or now < due or replica["node_id"] not in alive:
                        continue
                    async with self._plock(name, part["partition"]):
                        del self.dead[rid]
                        self.recreate_attempts[rid] = self.recreate_attempts.get(rid, 0) + 1
                        logger.info(
                            "%s-%d: replica %s died (%s); re-creating it (attempt %d)",
                            name,
                            part["partition"],
                            rid,
                            reason,
                            self.recreate_attempts[rid],
                        )
                        await self._recreate(name, part, replica, topic)

    async def _probe_followers(self) -> None:
        """Ask every follower on a live node for its state: one that died for good is re-created
        (the leaders are asked by the monitor every round)."""
        alive = self._alive_nodes()
        followers = [
            r["replica_id"]
            for t in self.topics.values()
            if not t.get("deleting")
            for p in t["partitions"]
            for r in p["replicas"]
            if r["replica_id"] != p["leader"] and r["node_id"] in alive and r["replica_id"] not in self.dead
        ]
        await asyncio.gather(*(self._state(rid) for rid in followers))

    async def _finish_deletions(self) -> None:
        for name in [n for n, t in self.topics.items() if t.get("deleting")]:
            async with self.lock:
                if name in self.topics:
                    await self._destroy(name)

    async def _destroy_replica(self, topic: str, partition: int, replica: dict) -> None:
        handle = self.handles.pop(replica["replica_id"], None)
        if handle is None:
            try:
                handle = ray.get_actor(self._actor_name(topic, partition, replica), namespace=self.namespace)
            except ValueError:
                return
        try:
            await asyncio.wait_for(handle.destroy.remote(), DESCRIBE_TIMEOUT_S)
        except Exception as exc:  # its node may be gone: the data stays there
            logger.warning(
                "could not delete data of %s-%d replica %s: %s", topic, partition, replica["replica_id"], exc
            )
        ray.kill(handle, no_restart=True)

    async def _destroy(self, name: str) -> None:
        topic = self.topics[name]
        await asyncio.gather(
            *(
                self._destroy_replica(name, p["partition"], r)
                for p in topic["partitions"]
                for r in p["replicas"]
            )
        )
        del self.topics[name]
        self._persist()

    # -- the API ---------------------------------------------------------------

    async def create_topic(
        self, name: str, partitions: int, replication_factor: int, config: dict | None
    ) -> TopicDescription:
        explicit = validate_new_topic(name, partitions, replication_factor, config)
        async with self.lock:
            if name in self.topics and self.topics[name].get("deleting"):
                await self._destroy(name)
            if name in self.topics:
                raise TopicAlreadyExists(
                    f"topic {name!r} already exists; use describe_topic, or delete_topic first"
                )
            parts = self._new_partitions(0, partitions, replication_factor)
            self.topics[name] = {
                "topic_id": uuid.uuid4().hex,
                "created_ms": int(time.time() * 1000),
                "config": explicit,
                "replication_factor": replication_factor,
                "partitions": parts,
            }
            self._persist()
            await self._start(name, parts)
        return await self.describe_topic(name)

    async def delete_topic(self, name: str) -> None:
        async with self.lock:
            self._topic(name)
            self.topics[name]["deleting"] = True
            self._persist()
            await self._destroy(name)

    async def list_topics(self) -> list[str]:
        return sorted(n for n, t in self.topics.items() if not t.get("deleting"))

    async def create_partitions(self, name: str, total: int) -> TopicDescription:
        async with self.lock:
            topic = self._topic(name)
            current = len(topic["partitions"])
            if total < current:
                raise ValueError(
                    f"topic {name!r} has {current} partitions; partitions only grow (asked {total})"
                )
            if total > MAX_PARTITIONS_PER_TOPIC:
                raise ValueError(f"at most {MAX_PARTITIONS_PER_TOPIC} partitions per topic")
            parts = self._new_partitions(current, total - current, topic.get("replication_factor", 1))
            topic["partitions"].extend(parts)
            self._persist()
            await self._start(name, parts)
        return await self.describe_topic(name)

    async def alter_topic_config(self, name: str, config: dict) -> TopicDescription:
        changes = validate_topic_config(config)
        async with self.lock:
            topic = self._topic(name)
            merged = {**topic["config"], **changes}
            if int(merged.get("min.insync.replicas", "1")) > topic.get("replication_factor", 1):
                raise InvalidConfig(
                    f"min.insync.replicas={merged['min.insync.replicas']} exceeds the replication factor "
                    f"{topic.get('replication_factor', 1)} of {name!r}"
                )
            topic["config"] = merged
            self._persist()
            replicas = [self.handles[r["replica_id"]] for p in topic["partitions"] for r in p["replicas"]]
            await asyncio.gather(
                *(asyncio.wait_for(h.update_config.remote(merged), DESCRIBE_TIMEOUT_S) for h in replicas),
                return_exceptions=True,  # a replica that is down reads the config when recreated
            )
        return await self.describe_topic(name)

    async def reassign_partitions(self, name: str, assignments: dict[int, list[str]]) -> TopicDescription:
        """Move partitions' replicas to the given nodes: new replicas are added and caught up
        (in the ISR) before the replicas that are not wanted any more are dropped."""
        topic = self._topic(name)
        alive = self._alive_nodes()
        for partition, nodes in assignments.items():
            self._part(name, partition)
            if not nodes or len(set(nodes)) != len(nodes):
                raise InvalidReplicaAssignment(f"partition {partition}: give a list of distinct node ids")
            dead = [n for n in nodes if n not in alive]
            if dead:
                raise InvalidReplicaAssignment(f"partition {partition}: nodes {dead} are not alive")
            self._refuse_unclean(name, topic, topic["partitions"][partition], nodes, will_copy=True)
        for partition, nodes in assignments.items():
            part = topic["partitions"][partition]
            async with self._plock(name, partition):
                on = {r["node_id"] for r in part["replicas"]}
                added = [
                    {"replica_id": uuid.uuid4().hex[:12], "node_id": n, "storage_id": storage_id(alive[n])}
                    for n in nodes
                    if n not in on
                ]
                if added:
                    part["replicas"].extend(added)
                    part["leader_epoch"] += 1  # the leader learns its new followers in a new term
                    self._persist()
                    for replica in added:
                        self.handles[replica["replica_id"]] = self._attach(name, partition, replica, topic)
                    await self._install(name, part)
            await self._await_in_sync(name, part, {r["replica_id"] for r in added})
            async with self._plock(name, partition):
                self._refuse_unclean(name, topic, part, nodes, will_copy=False)
                keep = [r for r in part["replicas"] if r["node_id"] in nodes]
                drop = [r for r in part["replicas"] if r["node_id"] not in nodes]
                if not drop:
                    continue
                kept_ids = [r["replica_id"] for r in keep]
                part["replicas"] = keep
                part["isr"] = [r for r in part["isr"] if r in kept_ids]
                if part["leader"] not in kept_ids:
                    part["leader"] = part["isr"][0] if part["isr"] else kept_ids[0]
                part["leader_epoch"] += 1
                self._persist()
                await self._install(name, part)
            await asyncio.gather(*(self._destroy_replica(name, partition, r) for r in drop))
        return await self.describe_topic(name)

    @staticmethod
    def _refuse_unclean(name: str, topic: dict, part: dict, nodes: list[str], *, will_copy: bool) -> None:
        """Refuse a reassignment that would leave ``part`` led by a replica that is not in sync:
        no unclean election unless the topic sets unclean.leader.election.enable (Kafka's rule).
        ``will_copy``: replicas still to be added on new nodes will copy a live leader's log and
        join the ISR before anything is dropped, which is enough."""
        if config_value(topic["config"], "unclean.leader.election.enable"):
            return
        on = {r["node_id"] for r in part["replicas"]}
        if will_copy and part["leader"] is not None and any(n not in on for n in nodes):
            return
        if not any(r["node_id"] in nodes and r["replica_id"] in part["isr"] for r in part["replicas"]):
            raise InvalidReplicaAssignment(
                f"{name}-{part['partition']}: no in-sync replica is on nodes {nodes}; moving there "
                f"could lose acknowledged records, and nothing was changed. Include the node of an "
                f"in-sync replica, or set unclean.leader.election.enable=true on the topic"
            )

    async def _await_in_sync(self, name: str, part: dict, replica_ids: set[str]) -> None:
        deadline = time.monotonic() + REASSIGN_TIMEOUT_S
        while replica_ids and not replica_ids <= set(part["isr"]):
            if time.monotonic() > deadline:
                raise RequestTimedOut(
                    f"{name}-{part['partition']}: new replicas did not catch up within "
                    f"{REASSIGN_TIMEOUT_S} s; "
                    f"they stay as followers, nothing was dropped"
                )
            await asyncio.sleep(0.2)

    async def topic_metadata(self, name: str) -> dict:
        """What clients cache: ``{"name", "topic_id", "config", "leaders": [handle per partition],
        "leader_names": [the leader actor's name per partition, None when offline],
        "epochs": [leader epoch per partition]}``. A leader name changes only with the actor
        (the epoch also moves when a follower is re-placed), so clients compare names to tell
        whether a request still waits on the current leader."""
        topic = self._topic(name)
        return {
            "name": name,
            "topic_id": topic["topic_id"],
            "config": effective_config(topic["config"]),
            "leaders": [self.handles.get(p["leader"]) for p in topic["partitions"]],
            "leader_names": [self._leader_name(name, p) for p in topic["partitions"]],
            "epochs": [p["leader_epoch"] for p in topic["partitions"]],
        }

    def _leader_name(self, topic: str, part: dict) -> str | None:
        replica = self._replica(part, part["leader"])
        return None if replica is None else self._actor_name(topic, part["partition"], replica)

    async def describe_topic(self, name: str) -> TopicDescription:
        topic = self._topic(name)
        parts = topic["partitions"]

        async def offsets(part: dict) -> tuple[int, int] | None:
            handle = self.handles.get(part["leader"])
            if handle is None:
                return None
            try:
                return await asyncio.wait_for(handle.offsets.remote(), DESCRIBE_TIMEOUT_S)
            except Exception:
                return None

        found = await asyncio.gather(*(offsets(p) for p in parts))
        descriptions = []
        for part, answer in zip(parts, found, strict=True):
            node_of = {r["replica_id"]: r["node_id"] for r in part["replicas"]}
            start, high = answer if answer is not None else (-1, -1)
            descriptions.append(
                PartitionDescription(
                    partition=part["partition"],
                    leader_node_id=node_of.get(part["leader"]),
                    replica_node_ids=[r["node_id"] for r in part["replicas"]],
                    log_start_offset=start,
                    high_watermark=high,
                    isr_node_ids=[node_of[r] for r in part["isr"] if r in node_of],
                    leader_epoch=part["leader_epoch"],
                    offline=answer is None,
                )
            )
        return TopicDescription(name=name, partitions=descriptions, config=effective_config(topic["config"]))

    async def list_groups(self) -> list[str]:
        """Groups with stored offsets (on this head node's disk) or a live coordinator."""
        groups_dir = self.root / "groups"
        names = {p.name for p in groups_dir.iterdir() if p.is_dir()} if groups_dir.is_dir() else set()
        prefix = group_actor_name("")
        for entry in ray.util.list_named_actors(all_namespaces=True):
            if entry["namespace"] == self.namespace and entry["name"].startswith(prefix):
                names.add(entry["name"][len(prefix) :])
        return sorted(names)

    async def recent_events(self, limit: int = 20) -> list[dict]:
        """The newest ``limit`` internal events (``{time_ms, level, message}``, oldest first):
        elections, re-created replicas, outages; ``raykafka status`` shows them."""
        return self.events.recent(limit)

    async def ping(self) -> dict:
        """Liveness and identity: data_dir, topic count, and this process's pid (for operators and tests)."""
        import os

        return {"data_dir": self.data_dir, "topics": len(self.topics), "pid": os.getpid()}
