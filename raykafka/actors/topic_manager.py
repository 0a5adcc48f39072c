"""TopicManager: the one named, detached actor that knows every topic -- a thin shell over the control core.

It holds the namespace's cluster metadata (``raykafka.control.ClusterMetadata``: topics,
configs, partitions, replicas and where they live, each partition's leader, leader epoch
and in-sync replicas), persisted as an atomic JSON snapshot in
``<data_dir>/namespaces/<namespace>/metadata/topics.json`` on the head node (a directory
it locks for its lifetime; ``raykafka.storage.layout``). Every decision is the control
core's (``raykafka.control``: pure, no Ray, no I/O); this actor feeds it requests and
observations and carries out the ``Decision`` it returns. It is never on the data path.

**Persist, then act.** A decision's new metadata is written before anything is done about
it and adopted in memory only once the write succeeded (``_adopt``). A failed write keeps
the old metadata, drops the decision's actions and raises ``MetadataWriteFailed`` to
whoever asked; until a write succeeds again the current metadata is rewritten before any
next decision (the failed write may have reached the file). Memory and disk never disagree
about anything that was acted on, and a manager killed at any point converges from the
snapshot.

**Reconciliation** (``_run``): every ``MONITOR_INTERVAL_MS``, and at once after a change
or a replica's ``replica_ready``, the manager probes the replicas (``ReplicaFleet``,
per process, with a failure detector that does not flap on one slow answer) and asks the
``Reconciler`` for the actions that make them match the metadata: create replicas that
have no actor, re-home those whose node is gone onto a live node with the same disk, elect
a live in-sync replica when a leader is down or its log directory failed, and re-send
``become_leader`` / ``become_follower`` until each replica reports the role and epoch it
should have. A partition is healthy only when its recorded leader reports leading at the
recorded epoch (``control.health``); ``describe_topic`` reports anything else as offline.

Placement: replicas of a partition go to distinct nodes (distinct storage identities
where possible), replicas and leaders spread evenly. When any node carries the
``raykafka-storage`` label, only labelled nodes receive replicas (``control.nodes``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid

import ray

from raykafka.actors.actor_logs import RecentEvents, route_actor_logs
from raykafka.actors.naming import DEFAULT_NAMESPACE, group_actor_name
from raykafka.actors.replica_fleet import COMMAND_TIMEOUT_S, ReplicaFleet, _PartitionActor, actor_name
from raykafka.clock import now_ms
from raykafka.control import (
    BecomeLeader,
    ClusterMetadata,
    CreateReplica,
    Decision,
    DeletionPending,
    Health,
    Observation,
    Reconciler,
    StopReplica,
    UpdateConfig,
    from_topics_json,
    live_nodes,
    lookup,
    partition_health,
    to_topics_json,
)
from raykafka.control import alter_isr as decide_alter_isr
from raykafka.control import alter_topic_config as decide_alter_topic_config
from raykafka.control import create_partitions as decide_create_partitions
from raykafka.control import create_topic as decide_create_topic
from raykafka.control import delete_topic as decide_delete_topic
from raykafka.control.metadata import PartitionState
from raykafka.control.reassignment import finish_reassignment, start_reassignment
from raykafka.errors import MetadataWriteFailed, RequestTimedOut
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
from raykafka.topic_config import effective_config
from raykafka.types import PartitionDescription, TopicDescription

__all__ = ["INSTALL_TIMEOUT_S", "MONITOR_INTERVAL_MS", "TopicManager", "_PartitionActor"]

logger = logging.getLogger(__name__)

#: How long describe_topic waits for one partition's offsets.
DESCRIBE_TIMEOUT_S = 5.0
#: How often reconciliation runs when nothing wakes it earlier.
MONITOR_INTERVAL_MS = 500
#: How long telling a replica its role may take before reconciliation sends it again.
INSTALL_TIMEOUT_S = COMMAND_TIMEOUT_S
#: How long a command's success waits for others before the follow-up it allows (see _follow_up).
FOLLOW_UP_DELAY_S = 0.01
#: How long create_topic / create_partitions wait for every new partition to take writes.
CREATE_WAIT_S = 120.0
#: How long delete_topic waits for the replicas' data to be deleted (it finishes in the background).
DELETE_WAIT_S = 30.0
#: A partition whose replicas were created this recently and have not answered yet is starting
#: (a process to start, its log to open: seconds when a restarted cluster re-creates many at
#: once on 2 CPUs), not offline: logged at INFO, not ERROR.
REPLICA_START_GRACE_S = 60.0
#: How long a new TopicManager waits for the metadata directory's lock (its previous
#: process may still be exiting).
METADATA_LOCK_WAIT_S = 2.0
#: How long reassign_partitions waits for new replicas to catch up.
REASSIGN_TIMEOUT_S = 300


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
        self.meta: ClusterMetadata = from_topics_json(read_json(self.meta_path, {"topics": {}}))
        self._write_failed = False  # the last metadata write failed: rewrite before acting
        self.reconciler = Reconciler()
        self.fleet = ReplicaFleet(
            namespace, data_dir, self.cluster_id, maintenance_interval_ms, replica_lag_time_max_ms
        )
        for topic in self.meta.topics.values():
            for part in topic.partitions:
                for replica in part.replicas:
                    self.fleet.attach(topic.name, part.partition, replica)
        self._observations: dict[str, Observation] = {}  # of the last round
        self._nodes: dict = {}  # the live nodes, as of the last round
        self._follow_up_due: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task] = set()  # commands under way
        self._wake = asyncio.Event()
        self._round_done = asyncio.Event()
        # Set once the first round has probed every replica and created those without an actor:
        # until then what clients would be told (no handle, nothing known) is not the truth yet.
        self._first_round = asyncio.Event()
        self.said: dict[tuple[str, int], str] = {}  # what was logged of a partition's outage
        self.reported_offline: set[tuple[str, int]] = set()  # ... at ERROR, in its current outage
        logger.info("TopicManager up with %d topics from %s", len(self.meta.topics), self.meta_path)
        self._loop = asyncio.get_running_loop().create_task(self._run())

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

    # -- decisions: persist, adopt, act ------------------------------------------

    def _adopt(self, decision: Decision, *, reconcile: bool = True) -> None:
        """Persist ``decision``'s metadata (when it changed, or the last write failed), adopt it,
        then carry out its actions. MetadataWriteFailed, with nothing changed, when the write fails.
        ``reconcile``: run a round at once (a request changed the desired state; a round's own
        decision does not need one -- its commands' answers wake the loop)."""
        if decision.persist is not None or self._write_failed:
            try:
                write_json_atomic(self.meta_path, to_topics_json(decision.metadata))
            except OSError as exc:
                self.reconciler.abandon(decision)
                if not self._write_failed:
                    logger.error(
                        "cannot write the cluster metadata %s: %s; nothing changed", self.meta_path, exc
                    )
                self._write_failed = True
                raise MetadataWriteFailed(
                    f"the TopicManager could not write {self.meta_path} ({exc}); nothing was changed. "
                    f"Retry once the head node's disk is healthy"
                ) from None
            if self._write_failed:
                logger.warning("the cluster metadata is written again (%s)", self.meta_path)
                self._write_failed = False
            if decision.persist is not None and decision.persist.change:
                logger.info("%s", decision.persist.change)
        self.meta = decision.metadata
        for action in decision.effects:
            if isinstance(action, CreateReplica):
                self.fleet.create(action, self.meta.topic(action.topic).config)
            elif isinstance(action, StopReplica):
                self.fleet.stop(action)
            else:
                self._spawn(self._command(action))
        self.fleet.forget_missing(self.meta)
        if reconcile:
            self._wake.set()

    async def _command(self, action) -> None:
        ok = await self.fleet.run(action, self.meta)
        self.reconciler.on_result(action, ok)
        if ok and isinstance(action, BecomeLeader):  # "back online" is said before anyone sees it
            topic = self.meta.topic(action.topic)
            if topic is not None and not topic.deleting and action.partition < len(topic.partitions):
                part = topic.partitions[action.partition]
                self._say_partition_health(action.topic, part, self._view(), self._nodes)
        if not ok:
            self._wake.set()
        elif self._follow_up_due is None:  # answers arriving together share one follow-up
            self._follow_up_due = asyncio.get_running_loop().call_later(FOLLOW_UP_DELAY_S, self._follow_up)

    def _follow_up(self) -> None:
        """Reconcile at once on what is known, without probing: the step a command's success
        allows (a new leader's followers are told to follow it) need not wait for a round, whose
        probes can take a second when a node hangs."""
        self._follow_up_due = None
        try:
            decision = self.reconciler.reconcile(self.meta, self._nodes, self._view(), now_ms())
            self._adopt(decision, reconcile=False)
        except MetadataWriteFailed:
            pass  # logged; the next round tries again

    def _spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- reconciliation ----------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), MONITOR_INTERVAL_MS / 1000)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self._round()
            except MetadataWriteFailed:
                pass  # logged once in _adopt; the next round tries again
            except Exception:
                logger.exception("reconciliation round failed")
            finally:
                self._first_round.set()
                done, self._round_done = self._round_done, asyncio.Event()
                done.set()

    async def _round(self) -> None:
        observations = await self.fleet.observe(self.meta)
        nodes = self._nodes = live_nodes(ray.nodes())
        self._observations = observations
        decision = self.reconciler.reconcile(self.meta, nodes, observations, now_ms())
        try:
            self._adopt(decision, reconcile=False)
        finally:
            self._say_health(nodes)

    async def _started(self) -> None:
        """Wait for the first round after this manager started (see ``_first_round``)."""
        if not self._first_round.is_set():
            await asyncio.wait_for(self._first_round.wait(), CREATE_WAIT_S)

    async def _next_round(self, *, now: bool = True) -> None:
        """Wait for the end of a round: one started at once (``now``), or the next due."""
        if now:
            self._wake.set()
        await self._round_done.wait()

    def _view(self) -> dict[str, Observation]:
        """What is known of each replica now: the last round's observations, with the reports of
        role commands that succeeded since."""
        return {**self._observations, **self.fleet.last_reports()}

    def _health(self, part: PartitionState, nodes) -> Health:
        return partition_health(part, self._view(), nodes)

    def _say_health(self, nodes) -> None:
        """Log what a partition without a working leader waits for once per state, not every round."""
        view = self._view()
        for topic, part in self.meta.partitions():
            self._say_partition_health(topic.name, part, view, nodes)

    def _say_partition_health(self, topic: str, part: PartitionState, view, nodes) -> None:
        key = (topic, part.partition)
        health = partition_health(part, view, nodes)
        if health is Health.HEALTHY:
            self.said.pop(key, None)
            if key in self.reported_offline:
                self.reported_offline.discard(key)
                logger.warning("%s-%d: back online, led by %s", *key, part.leader)
        else:
            starting = [
                r
                for r in part.isr
                if (since := self.fleet.starting_since_ms(r)) is not None
                and now_ms() - since < REPLICA_START_GRACE_S * 1000
            ]
            undecided = [r for r in part.isr if r not in view]
            if starting or undecided:
                self._say_once(
                    key, logging.INFO, "%s-%d: waiting for replica(s) %s to start", starting or undecided
                )
            elif health is Health.OFFLINE:
                self._say_once(key, logging.ERROR, "%s-%d: offline: no in-sync replica answers", None)

    def _say_once(self, key: tuple[str, int], level: int, message: str, arg) -> None:
        if self.said.get(key) == message:
            return
        self.said[key] = message
        if arg is None:
            logger.log(level, message, *key)
        else:
            logger.log(level, message, *key, arg)
        if level >= logging.ERROR:
            self.reported_offline.add(key)

    async def _await(self, done, timeout_s: float) -> bool:
        """Run rounds until ``done()`` holds; False after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                return False
            await self._next_round(now=False)  # requests and answers wake the loop themselves
        return True

    async def _await_writable(self, name: str, partitions: range) -> None:
        def writable() -> bool:
            topic = self.meta.topic(name)
            if topic is None:
                return True
            nodes = live_nodes(ray.nodes())
            return all(self._health(topic.partitions[p], nodes) is Health.HEALTHY for p in partitions)

        if not await self._await(writable, CREATE_WAIT_S):
            logger.warning("%s: not every new partition has a leader after %d s", name, CREATE_WAIT_S)

    # -- requests from replicas ---------------------------------------------------

    async def replica_ready(self, topic: str, partition: int, replica_id: str) -> None:
        """A replica (re)started and asks for its role: reconciliation tells it. A restarted
        actor runs its constructor with the config it was created with: it gets today's."""
        state = self.meta.topic(topic)
        if state is not None and not state.deleting and 0 <= partition < len(state.partitions):
            self._spawn(self.fleet.run(UpdateConfig(topic, partition, replica_id, state.config), self.meta))
        self._wake.set()

    async def alter_isr(self, topic: str, partition: int, epoch: int, isr: list[str]) -> None:
        """A leader changes its partition's ISR; refused (FencedLeader) from a deposed leader, and
        (MetadataWriteFailed) when it cannot be recorded -- the leader keeps its old ISR and retries."""
        self._adopt(decide_alter_isr(self.meta, topic, partition, epoch, isr))

    # -- the API ---------------------------------------------------------------

    async def create_topic(
        self, name: str, partitions: int, replication_factor: int, config: dict | None
    ) -> TopicDescription:
        nodes = live_nodes(ray.nodes())

        def decide() -> Decision:
            return decide_create_topic(
                self.meta,
                name,
                partitions,
                replication_factor,
                config,
                nodes,
                now_ms=now_ms(),
                topic_id=uuid.uuid4().hex,
            )

        try:
            decision = decide()
        except DeletionPending:  # the name frees once its replicas are gone
            await self._await(lambda: self.meta.topic(name) is None, DELETE_WAIT_S)
            decision = decide()
        self._adopt(decision)
        await self._await_writable(name, range(partitions))
        return await self.describe_topic(name)

    async def delete_topic(self, name: str) -> None:
        self._adopt(decide_delete_topic(self.meta, name))
        await self._await(lambda: self.meta.topic(name) is None, DELETE_WAIT_S)

    async def list_topics(self) -> list[str]:
        return sorted(t.name for t in self.meta.live_topics())

    async def create_partitions(self, name: str, total: int) -> TopicDescription:
        before = len(lookup(self.meta, name).partitions)
        self._adopt(decide_create_partitions(self.meta, name, total, live_nodes(ray.nodes())))
        await self._await_writable(name, range(before, total))
        return await self.describe_topic(name)

    async def alter_topic_config(self, name: str, config: dict) -> TopicDescription:
        self._adopt(decide_alter_topic_config(self.meta, name, config))
        return await self.describe_topic(name)

    async def reassign_partitions(self, name: str, assignments: dict[int, list[str]]) -> TopicDescription:
        """Move partitions' replicas to the given nodes: new replicas are added and caught up
        (in the ISR) before the replicas that are not wanted any more are dropped."""
        lookup(self.meta, name)
        nodes = live_nodes(ray.nodes())
        for partition, target in assignments.items():  # every target checked before anything moves
            start_reassignment(self.meta, name, partition, target, nodes)
        for partition, target in assignments.items():
            decision, reassignment = start_reassignment(self.meta, name, partition, target, nodes)
            self._adopt(decision)
            if not await self._await(lambda r=reassignment: r.in_sync(self.meta), REASSIGN_TIMEOUT_S):
                raise RequestTimedOut(
                    f"{name}-{partition}: new replicas did not catch up within {REASSIGN_TIMEOUT_S} s; "
                    f"they stay as followers, nothing was dropped"
                )
            self._adopt(finish_reassignment(self.meta, reassignment))
        return await self.describe_topic(name)

    async def topic_metadata(self, name: str) -> dict:
        """What clients cache: ``{"name", "topic_id", "config", "leaders": [handle per partition],
        "leader_names": [the leader actor's name per partition, None when offline],
        "epochs": [leader epoch per partition]}``. A leader name changes only with the actor
        (the epoch also moves when a follower is re-placed), so clients compare names to tell
        whether a request still waits on the current leader."""
        await self._started()
        topic = lookup(self.meta, name)
        return {
            "name": name,
            "topic_id": topic.topic_id,
            "config": effective_config(dict(topic.config)),
            "leaders": [self.fleet.client_handle(p.leader) if p.leader else None for p in topic.partitions],
            "leader_names": [self._leader_name(name, p) for p in topic.partitions],
            "epochs": [p.leader_epoch for p in topic.partitions],
        }

    @staticmethod
    def _leader_name(topic: str, part: PartitionState) -> str | None:
        replica = part.replica(part.leader)
        return None if replica is None else actor_name(topic, part.partition, replica)

    async def describe_topic(self, name: str) -> TopicDescription:
        await self._started()
        lookup(self.meta, name)
        if any(
            p.leader is not None and p.leader not in self._view() for p in self.meta.topics[name].partitions
        ):
            await self._next_round()  # a leader not heard of since it (or this manager) started: ask it
        topic = lookup(self.meta, name)
        nodes = live_nodes(ray.nodes())

        async def offsets(part: PartitionState) -> tuple[int, int] | None:
            handle = self.fleet.handle(part.leader) if part.leader else None
            if handle is None or self._health(part, nodes) is not Health.HEALTHY:
                return None  # only a leader at the recorded epoch can take a write
            try:
                return await asyncio.wait_for(handle.offsets.remote(), DESCRIBE_TIMEOUT_S)
            except Exception:
                return None

        found = await asyncio.gather(*(offsets(p) for p in topic.partitions))
        descriptions = []
        for part, answer in zip(topic.partitions, found, strict=True):
            node_of = {r.replica_id: r.node_id for r in part.replicas}
            start, high = answer if answer is not None else (-1, -1)
            descriptions.append(
                PartitionDescription(
                    partition=part.partition,
                    leader_node_id=node_of.get(part.leader),
                    replica_node_ids=[r.node_id for r in part.replicas],
                    log_start_offset=start,
                    high_watermark=high,
                    isr_node_ids=[node_of[r] for r in part.isr if r in node_of],
                    leader_epoch=part.leader_epoch,
                    offline=answer is None,
                )
            )
        return TopicDescription(
            name=name, partitions=descriptions, config=effective_config(dict(topic.config))
        )

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
        return {"data_dir": self.data_dir, "topics": len(self.meta.topics), "pid": os.getpid()}
