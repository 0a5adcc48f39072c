"""A model of the cluster the control core runs, for property tests: no Ray, no files.

* **Replicas** are actors with a role and an epoch, over a log (the epoch of each record)
  and a leader-epoch checkpoint kept on a *disk* -- one per storage identity, so data
  survives its node. They follow ``PartitionActor``'s rules: ``become_leader`` /
  ``become_follower`` are fenced by epoch and idempotent, a follower truncates to the end of
  its last epoch in the leader's log (KIP-101) when told to follow, a (re)started replica
  reports "unknown" with the newest epoch its checkpoint keeps past recovery.
* **Leaders** replicate by pushing to the follower *handles* they were given (an actor
  re-created since is a new handle they cannot reach), track the ISR with the real
  ``ReplicaTracker``, shrink it through ``alter_isr`` first and report growth after.
* **The TopicManager shell** persists a decision before acting on it, probes every process
  (``FailureDetector``), reconciles, carries out the actions and reports their results.
* **Faults**: a node lost (its actors with it) and back under a new id with the same disk;
  a replica process restarted by Ray, dead for good, frozen; a log directory failing; an
  action lost before or after it was carried out (with or without the shell learning it);
  a persist failing cleanly or after the file was written; the TopicManager restarted from
  the last persisted metadata.

The invariants are checked as the model runs (``Violation``) and by ``test_properties.py``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

from raykafka.control import (
    Action,
    BecomeFollower,
    BecomeLeader,
    ClusterMetadata,
    CreateReplica,
    Decision,
    DestroyReplica,
    FailureDetector,
    Node,
    PartitionState,
    ProcessReport,
    Reassignment,
    Reconciler,
    ReplicaReport,
    StopReplica,
    alter_isr,
    create_topic,
    finish_reassignment,
    from_topics_json,
    replica_observations,
    start_reassignment,
    to_topics_json,
)
from raykafka.errors import FencedLeader, InvalidReplicaAssignment
from raykafka.replication.isr import ReplicaTracker

TOPIC = "t"
ROUND_MS = 500  # one reconciliation round (the TopicManager's check interval)
LAG_MS = 1_500  # replica_lag_time_max_ms
CHUNK = 2  # records one replicate call carries at most (REPLICA_FETCH_MAX_BYTES)

#: What happens to one action or request: carried out and answered; lost before it was carried
#: out (the caller learns it failed, or learns nothing); carried out but its answer lost.
OK, LOST, SILENT, ANSWER_LOST = "ok", "lost", "silent", "answer-lost"
FATES = (OK, LOST, SILENT, ANSWER_LOST)


class Violation(AssertionError):
    """An invariant of the control plane does not hold."""


@dataclass
class Disk:
    logs: dict[str, list[int]] = field(default_factory=dict)  # replica id -> epoch of each record
    checkpoints: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # -> [(epoch, start)]
    failed: set[str] = field(default_factory=set)  # replicas whose log directory failed

    def log(self, replica_id: str) -> list[int]:
        return self.logs.setdefault(replica_id, [])

    def checkpoint(self, replica_id: str) -> list[tuple[int, int]]:
        return self.checkpoints.setdefault(replica_id, [])


@dataclass
class Leading:
    epoch: int
    tracker: ReplicaTracker
    handles: dict[str, int]  # follower id -> serial of the actor it was given (-1: none)
    shrink: set[str] = field(default_factory=set)  # followers to take out of the ISR
    report: bool = False  # a growth of the ISR not recorded yet


@dataclass
class Actor:
    serial: int
    partition: int
    replica_id: str
    generation: int
    node_id: str
    disk: Disk
    role: str = "unknown"
    epoch: int = -1
    hw: int = 0
    frozen: bool = False
    leading: Leading | None = None

    # -- its disk --------------------------------------------------------------------

    @property
    def log(self) -> list[int]:
        return self.disk.log(self.replica_id)

    @property
    def checkpoint(self) -> list[tuple[int, int]]:
        return self.disk.checkpoint(self.replica_id)

    @property
    def failed(self) -> bool:
        return self.replica_id in self.disk.failed

    def latest_epoch(self) -> int:
        return self.checkpoint[-1][0] if self.checkpoint else -1

    def assign(self, epoch: int, start: int) -> None:
        if epoch > self.latest_epoch():
            self.checkpoint.append((epoch, start))

    def end_offset_for(self, epoch: int) -> int:
        """``LeaderEpochCache.end_offset_for``."""
        for later, start in self.checkpoint:
            if later > epoch:
                return start
        return len(self.log)

    def truncate(self, offset: int) -> None:
        del self.log[offset:]
        self.disk.checkpoints[self.replica_id] = [(e, s) for e, s in self.checkpoint if s < offset]
        self.hw = min(self.hw, offset)

    def start(self) -> None:
        """A (re)started process: no role, the checkpoint's epochs past the log end forgotten."""
        self.truncate(len(self.log))
        self.role, self.epoch, self.hw, self.leading, self.frozen = (
            "unknown",
            self.latest_epoch(),
            0,
            None,
            False,
        )

    def report(self) -> ReplicaReport:
        return ReplicaReport.from_health("failed" if self.failed else self.role, self.epoch, len(self.log))

    def depose(self) -> None:
        self.role, self.leading = "unknown", None


class Cluster:
    def __init__(self, *, storages: int = 4, partitions: int = 2, replication_factor: int = 3):
        self.now = 0
        self.serials = itertools.count()
        self.disks = {f"s{i}": Disk() for i in range(storages)}
        self.incarnations = {s: 0 for s in self.disks}
        self.nodes: dict[str, str] = {f"{s}#0": s for s in self.disks}  # live node id -> storage id
        self.actors: dict[tuple[str, int], Actor] = {}  # (replica id, generation) -> actor
        self.fates: Iterator[str] = iter(())
        self.persist_fault: str | None = None  # "clean" | "written": how the next persist fails
        self.disk_ahead = False  # a persist that failed after writing: the file is ahead of memory
        self.reassignments: dict[int, Reassignment] = {}
        self._parsed: tuple[str, ClusterMetadata] = ("", ClusterMetadata())
        # what the invariants remember
        self.leaders_by_epoch: dict[tuple[int, int], set[str]] = {}
        self.highest_epoch: dict[int, int] = {}
        self.committed: dict[int, list[int]] = {p: [] for p in range(partitions)}
        self.start_manager(ClusterMetadata())
        ids = (f"r{i}" for i in itertools.count())
        decision = create_topic(
            self.metadata,
            TOPIC,
            partitions,
            replication_factor,
            None,
            self.node_map(),
            now_ms=0,
            topic_id="0" * 32,
            new_replica_id=lambda: next(ids),
        )
        assert self.run(decision)

    # -- the TopicManager shell ----------------------------------------------------------

    def start_manager(self, metadata: ClusterMetadata | None = None) -> None:
        """A TopicManager (re)starts: soft state lost, metadata read back from the file."""
        if metadata is None:
            metadata = self.on_disk()
        else:
            self.persisted = json.dumps(to_topics_json(metadata), sort_keys=True)
        self.metadata = metadata
        self.disk_ahead = False
        self.reconciler = Reconciler(
            command_timeout_ms=2_000,
            start_grace_ms=3_000,
            recreate_backoff_min_ms=500,
            recreate_backoff_max_ms=4_000,
        )
        self.detector = FailureDetector(timeout_ms=1_000, misses=2)
        self.reassignments = {}

    def node_map(self) -> dict[str, Node]:
        return {n: Node(n, s, labelled=True) for n, s in self.nodes.items()}

    def fate(self) -> str:
        return next(self.fates, OK)

    def persist(self, decision: Decision) -> bool:
        """Write the decision's metadata first, if it changed -- or whenever a failed write may have
        left the file ahead of memory: nothing is acted on until the file says what memory says."""
        if decision.persist is None and not self.disk_ahead:
            return True
        fault, self.persist_fault = self.persist_fault, None
        if fault == "clean":
            return False
        self.persisted = json.dumps(to_topics_json(decision.metadata), sort_keys=True)
        if fault == "written":  # e.g. the directory fsync after the rename failed
            self.disk_ahead = True
            return False
        self.metadata, self.disk_ahead = decision.metadata, False
        return True

    def run(self, decision: Decision) -> bool:
        """Carry out ``decision`` as the shell does; False when its persist failed."""
        if not self.persist(decision):
            self.reconciler.abandon(decision)
            return False
        for action in decision.effects:
            fate = self.fate()
            if fate == SILENT:
                continue
            if fate == LOST:
                self.reconciler.on_result(action, ok=False)
                continue
            ok = self.apply(action)
            if fate == OK:
                self.reconciler.on_result(action, ok)
        return True

    def observe(self) -> dict:
        """One probe per process: reports, misses, and actors that no longer exist."""
        hosted, reports, gone = {}, [], []
        for _, part in self.metadata.partitions():
            for replica in part.replicas:
                process = f"{replica.replica_id}#{replica.generation}"
                hosted[process] = [replica.replica_id]
                actor = self.actors.get((replica.replica_id, replica.generation))
                if actor is None:
                    gone.append(process)
                elif actor.frozen:
                    self.detector.missed(process, self.now)
                else:
                    self.detector.heard(process, self.now)
                    reports.append(ProcessReport(process, {replica.replica_id: actor.report()}))
        down = self.detector.down(list(hosted), self.now)
        return replica_observations(hosted, reports, down=down, gone=gone)

    def manager_round(self) -> Decision:
        self.now += ROUND_MS
        decision = self.reconciler.reconcile(self.metadata, self.node_map(), self.observe(), self.now)
        for action in decision.effects:
            if isinstance(action, BecomeLeader) and action.replica_id not in action.isr:
                raise Violation(f"{action} names a leader outside its ISR")
        self.run(decision)
        self.check()
        return decision

    def request_alter_isr(self, leader: Actor, isr: list[str]) -> str:
        """A leader's alter_isr through the shell: "ok", "fenced" or "failed"."""
        fate = self.fate()
        if fate in (LOST, SILENT):
            return "failed"
        try:
            decision = alter_isr(self.metadata, TOPIC, leader.partition, leader.leading.epoch, isr)
        except FencedLeader:
            return "failed" if fate == ANSWER_LOST else "fenced"
        if not self.persist(decision):
            return "failed"
        self.check()
        return "failed" if fate == ANSWER_LOST else "ok"

    def reassign(self, partition: int, nodes: list[str]) -> None:
        if partition in self.reassignments:
            return
        try:
            decision, move = start_reassignment(
                self.metadata, TOPIC, partition, nodes, self.node_map(), self.new_replica_id
            )
        except InvalidReplicaAssignment:
            return
        if self.run(decision):
            self.reassignments[partition] = move

    def finish_reassignments(self) -> None:
        for partition, move in list(self.reassignments.items()):
            if not move.in_sync(self.metadata):
                continue
            try:
                decision = finish_reassignment(self.metadata, move)
            except InvalidReplicaAssignment:
                del self.reassignments[partition]
                continue
            if self.run(decision):
                del self.reassignments[partition]

    def new_replica_id(self) -> str:
        return f"x{next(self.serials)}"

    # -- carrying out actions -------------------------------------------------------------

    def part(self, partition: int) -> PartitionState:
        return self.metadata.topics[TOPIC].partitions[partition]

    def current(self, partition: int, replica_id: str) -> Actor | None:
        """The actor of ``replica_id``'s current record (the handle the shell holds)."""
        record = self.part(partition).replica(replica_id)
        return None if record is None else self.actors.get((record.replica_id, record.generation))

    def by_serial(self, serial: int) -> Actor | None:
        return next((a for a in self.actors.values() if a.serial == serial), None)

    def apply(self, action: Action) -> bool:
        if isinstance(action, CreateReplica):
            replica = action.replica
            if replica.node_id not in self.nodes:
                return False
            if (replica.replica_id, replica.generation) in self.actors:
                return True  # the name is taken: it runs already
            disk = self.disks[self.nodes[replica.node_id]]
            if any(a.replica_id == replica.replica_id and a.disk is disk for a in self.actors.values()):
                return True  # its constructor fails on the directory lock: the actor never appears
            actor = Actor(
                next(self.serials),
                action.partition,
                replica.replica_id,
                replica.generation,
                replica.node_id,
                disk,
            )
            actor.start()
            self.actors[(replica.replica_id, replica.generation)] = actor
            return True
        if isinstance(action, StopReplica):
            self.actors.pop((action.replica.replica_id, action.replica.generation), None)
            return True
        if isinstance(action, DestroyReplica):
            actor = self.actors.pop((action.replica.replica_id, action.replica.generation), None)
            if actor is None or actor.frozen:
                return False
            actor.disk.logs.pop(actor.replica_id, None)
            actor.disk.checkpoints.pop(actor.replica_id, None)
            return True
        if isinstance(action, BecomeLeader):
            return self.become_leader(action)
        if isinstance(action, BecomeFollower):
            return self.become_follower(action)
        return True  # UpdateConfig

    def become_leader(self, action: BecomeLeader) -> bool:
        actor = self.current(action.partition, action.replica_id)
        if actor is None or actor.frozen or actor.failed or action.epoch < actor.epoch:
            return False
        if actor.role == "leader" and actor.epoch == action.epoch:
            return True
        actor.role, actor.epoch = "leader", action.epoch
        actor.assign(action.epoch, len(actor.log))
        handles = {}
        for follower in action.followers:
            target = self.current(action.partition, follower)
            handles[follower] = -1 if target is None else target.serial
        tracker = ReplicaTracker(
            actor.replica_id,
            action.followers,
            action.isr,
            leader_end=len(actor.log),
            high_watermark=actor.hw,
            lag_time_max_ms=LAG_MS,
            now_ms=self.now,
            epoch_start_offset=actor.end_offset_for(action.epoch - 1),  # where become_leader began it
        )
        actor.leading = Leading(action.epoch, tracker, handles)
        self.leaders_by_epoch.setdefault((action.partition, action.epoch), set()).add(action.replica_id)
        if len(self.leaders_by_epoch[(action.partition, action.epoch)]) > 1:
            raise Violation(f"two leaders in epoch {action.epoch}: {self.leaders_by_epoch}")
        committed = self.committed[action.partition]
        if actor.log[: len(committed)] != committed:
            raise Violation(f"leader {actor.replica_id} of epoch {action.epoch} lacks acknowledged records")
        self.on_high_watermark(actor)
        return True

    def become_follower(self, action: BecomeFollower) -> bool:
        actor = self.current(action.partition, action.replica_id)
        if actor is None or actor.frozen or actor.failed or action.epoch < actor.epoch:
            return False
        leader = self.current(action.partition, action.leader)
        if leader is None or leader.frozen:
            return False  # asking the leader where our last epoch ended fails
        if actor.latest_epoch() >= 0 and actor.log:
            end = leader.end_offset_for(actor.latest_epoch())
            if end < len(actor.log):
                actor.truncate(end)
        actor.role, actor.epoch, actor.leading = "follower", action.epoch, None
        return True

    # -- the data plane ----------------------------------------------------------------------

    def leaders(self) -> list[Actor]:
        return [a for a in self.actors.values() if a.leading is not None and not a.frozen and not a.failed]

    def produce(self, partition: int, records: int) -> None:
        """A client appends to whichever actor of the partition thinks it leads (maybe a deposed one)."""
        for actor in self.leaders():
            if actor.partition == partition:
                actor.log.extend([actor.leading.epoch] * records)
                if actor.leading.tracker.on_append(len(actor.log)):
                    self.on_high_watermark(actor)
                return

    def replicate(self) -> None:
        """One round of every leader's pumps, lag checks and ISR changes."""
        self.now += 100
        for actor in self.leaders():
            leading = actor.leading
            for follower, serial in leading.handles.items():
                if actor.leading is None:
                    break
                target = self.by_serial(serial)
                if target is None or target.frozen or target.failed:
                    if follower in leading.tracker.isr:
                        leading.shrink.add(follower)  # the call failed
                    continue
                if target.epoch > leading.epoch:  # FencedLeader: a newer leader exists
                    actor.depose()
                    break
                if target.role != "follower" or target.epoch != leading.epoch:
                    continue  # NotLeader: not following this epoch yet (the lag check decides)
                leader_end = len(actor.log)
                target.log.extend(actor.log[len(target.log) : len(target.log) + CHUNK])
                self.record_epochs(target)
                target.hw = min(actor.hw, len(target.log))
                if leading.tracker.on_follower_ack(follower, len(target.log), leader_end, self.now):
                    leading.report = True
                self.on_high_watermark(actor)
            if actor.leading is None:
                continue
            leading.shrink |= set(leading.tracker.laggards(self.now))
            for follower in sorted(leading.shrink):
                if follower not in leading.tracker.isr:
                    leading.shrink.discard(follower)
                    continue
                result = self.request_alter_isr(actor, sorted(leading.tracker.isr - {follower}))
                if result == "fenced":
                    actor.depose()
                    break
                if result == "ok":
                    leading.tracker.remove(follower)
                    leading.shrink.discard(follower)
                    self.on_high_watermark(actor)
            if actor.leading is not None and leading.report:
                result = self.request_alter_isr(actor, sorted(leading.tracker.isr))
                if result == "fenced":
                    actor.depose()
                elif result == "ok":
                    leading.report = False
        self.check()

    @staticmethod
    def record_epochs(follower: Actor) -> None:
        """A follower records each new epoch it appends (frames carry their epoch)."""
        for offset, epoch in enumerate(follower.log):
            if epoch > follower.latest_epoch():
                follower.assign(epoch, offset)

    def on_high_watermark(self, actor: Actor) -> None:
        """The leader's high watermark: every record below it is acknowledged, for good."""
        actor.hw = max(actor.hw, actor.leading.tracker.high_watermark)
        committed = self.committed[actor.partition]
        shared = min(actor.hw, len(committed))
        if actor.log[:shared] != committed[:shared]:
            raise Violation(f"{actor.replica_id} acknowledges a log that differs from acknowledged records")
        if actor.hw > len(committed):
            self.committed[actor.partition] = list(actor.log[: actor.hw])

    # -- faults ------------------------------------------------------------------------------

    def lose_node(self, storage: str) -> None:
        for node, disk in list(self.nodes.items()):
            if disk == storage:
                del self.nodes[node]
                for key, actor in list(self.actors.items()):
                    if actor.node_id == node:
                        del self.actors[key]

    def return_node(self, storage: str) -> None:
        if storage not in self.nodes.values():
            self.incarnations[storage] += 1
            self.nodes[f"{storage}#{self.incarnations[storage]}"] = storage

    def actor_at(self, index: int) -> Actor | None:
        actors = sorted(self.actors.values(), key=lambda a: a.serial)
        return actors[index % len(actors)] if actors else None

    # -- invariants --------------------------------------------------------------------------

    def on_disk(self) -> ClusterMetadata:
        """The metadata the file holds (parsed once per write)."""
        if self._parsed[0] != self.persisted:
            self._parsed = (self.persisted, from_topics_json(json.loads(self.persisted)))
        return self._parsed[1]

    def check(self) -> None:
        if not self.disk_ahead and self.on_disk() != self.metadata:
            raise Violation("the TopicManager's memory and its file disagree")
        for _, part in self.metadata.partitions():
            p = part.partition
            if part.leader is not None and part.leader not in part.isr:
                raise Violation(f"partition {p}: leader {part.leader} outside its ISR {part.isr}")
            if part.leader_epoch < self.highest_epoch.get(p, -1):
                raise Violation(f"partition {p}: epoch went back to {part.leader_epoch}")
            self.highest_epoch[p] = part.leader_epoch
            actor = self.current(p, part.leader) if part.leader is not None else None
            leading = actor.leading if actor is not None else None
            if (
                leading is not None
                and leading.epoch == part.leader_epoch
                and not set(part.isr) <= leading.tracker.isr
            ):
                raise Violation(
                    f"partition {p}: high watermark from ISR {sorted(leading.tracker.isr)}, "
                    f"smaller than the recorded {part.isr}"
                )

    # -- convergence --------------------------------------------------------------------------

    def heal(self) -> None:
        """Faults stop: frozen processes resume, actions and persists succeed from now on."""
        for actor in self.actors.values():
            actor.frozen = False
        self.fates = iter(())
        self.persist_fault = None

    def recoverable(self, part: PartitionState, replica_id: str) -> bool:
        """A replica that can serve once faults stop: its disk works and a live node sees it."""
        record = part.replica(replica_id)
        return (
            record is not None
            and record.storage_id in self.nodes.values()
            and replica_id not in self.disks[record.storage_id].failed
        )

    def settle(self, rounds: int = 40) -> None:
        for _ in range(rounds):
            self.replicate()
            self.manager_round()
            self.finish_reassignments()

    def assert_converged(self) -> None:
        observed = self.observe()
        for _, part in self.metadata.partitions():
            if not any(self.recoverable(part, r) for r in part.isr):
                continue  # no in-sync replica can ever lead again (no unclean election)
            leader = self.current(part.partition, part.leader) if part.leader is not None else None
            report = None if leader is None else leader.report()
            if report != ReplicaReport("leader", part.leader_epoch, len(leader.log) if leader else None):
                raise Violation(
                    f"partition {part.partition} has no healthy leader: {part}, leader reports {report}"
                )
            for replica in part.replicas:
                if self.recoverable(part, replica.replica_id) and replica.replica_id not in part.isr:
                    raise Violation(
                        f"partition {part.partition}: live {replica.replica_id} never rejoined the ISR"
                    )
        again = self.reconciler.reconcile(self.metadata, self.node_map(), observed, self.now + ROUND_MS)
        if again.actions:
            raise Violation(f"reconciling a settled cluster still acts: {again.actions}")
