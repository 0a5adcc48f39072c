"""Reconciler: compare the desired state with what each replica reports, and repair every difference.

The TopicManager calls ``reconcile`` every round (and right after adopting any decision) with
the metadata, the live nodes and one observation per replica (``observations.py``), carries
out the ``Decision`` it returns (``actions.py``) and reports each action's outcome with
``on_result`` -- or ``abandon`` when the decision's ``Persist`` failed. Per partition:

1. **Re-place** replicas whose node is gone onto a live node with the same disk
   (``replacement.py``): the old actor is stopped, the new one created.
2. **Create** replicas that have no actor (never created, or died for good), on a live node
   only, backing off per failed attempt (0.5 s doubling to 30 s). A created actor is
   *starting* until it reports (at most ``start_grace_ms``): its silence is not a failure.
   A follower's new actor gets the partition a new epoch -- the leader replicates to the
   handles it was given, and learns the new one in a new term -- unless the leader is known
   not to lead the current epoch yet (it is told its term with the new handle anyway).
3. **Lead**: a leader that is down, gone, or whose log directory failed is replaced by a live
   in-sync replica (``election.py``); none: the partition waits (offline). A leader that
   restarted (it reports no role while its checkpoint holds the current epoch) is replaced the
   same way when another in-sync replica kept its role, else leads again under a new epoch. A
   replica reporting an epoch above the recorded one gets the partition a newer epoch still.
4. **Tell**: ``BecomeLeader`` until the leader reports leading at the recorded epoch; then
   ``BecomeFollower`` to every follower that does not report following that epoch. A command
   is not repeated while it is in flight (until its result, or ``command_timeout_ms``). Only
   replicas that answer with a usable log directory are told anything; nothing is ever sent
   to a replica on the strength of silence.
5. **Delete**: a topic marked ``deleting`` has each replica destroyed (best effort, as before:
   a replica on a node that is gone keeps its data), then is forgotten.

Every metadata change of a round is persisted at once, before any action (one write per
round however many partitions changed). Re-sending is safe because a role command is
idempotent at the replica; epochs only grow and each is given to one leader, because every
epoch comes from the persisted metadata.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from raykafka.control.actions import (
    Action,
    BecomeFollower,
    BecomeLeader,
    CreateReplica,
    Decision,
    DestroyReplica,
    Persist,
    StopReplica,
)
from raykafka.control.election import choose_leader, elect, new_term, restarted
from raykafka.control.health import leads
from raykafka.control.metadata import ClusterMetadata, PartitionState, Replica, TopicState
from raykafka.control.nodes import Node
from raykafka.control.observations import DOWN, Observation, ReplicaReport, Unreachable
from raykafka.control.replacement import relocate

#: How long a role command or a deletion may stay unanswered before it is sent again.
COMMAND_TIMEOUT_MS = 20_000
#: How long a created actor may take to report before its silence counts (a process to start,
#: its log to open: seconds when a restarted cluster re-creates many at once on 2 CPUs).
START_GRACE_MS = 60_000
#: Back-off before re-creating an actor whose creation failed, doubling per attempt ...
RECREATE_BACKOFF_MIN_MS = 500
#: ... up to this.
RECREATE_BACKOFF_MAX_MS = 30_000


@dataclass
class _Attempts:
    count: int
    next_ms: int  # no new attempt before this


def _key(action: Action) -> tuple | None:
    """What identifies an action in flight; None for actions that are not tracked."""
    if isinstance(action, BecomeLeader):
        return ("lead", action.topic, action.partition, action.replica_id, action.epoch)
    if isinstance(action, BecomeFollower):
        return ("follow", action.topic, action.partition, action.replica_id, action.epoch)
    if isinstance(action, CreateReplica):
        return (
            "create",
            action.topic,
            action.partition,
            action.replica.replica_id,
            action.replica.generation,
        )
    if isinstance(action, DestroyReplica):
        return (
            "destroy",
            action.topic,
            action.partition,
            action.replica.replica_id,
            action.replica.generation,
        )
    return None


class Reconciler:
    """Reconciliation's memory between rounds: commands in flight, creation back-off, deletions
    done. It is soft state -- a restarted TopicManager starts a new one and at worst repeats an
    idempotent command."""

    def __init__(
        self,
        *,
        command_timeout_ms: int = COMMAND_TIMEOUT_MS,
        start_grace_ms: int = START_GRACE_MS,
        recreate_backoff_min_ms: int = RECREATE_BACKOFF_MIN_MS,
        recreate_backoff_max_ms: int = RECREATE_BACKOFF_MAX_MS,
    ):
        self.command_timeout_ms = command_timeout_ms
        self.start_grace_ms = start_grace_ms
        self.recreate_backoff_min_ms = recreate_backoff_min_ms
        self.recreate_backoff_max_ms = recreate_backoff_max_ms
        self._inflight: dict[tuple, int] = {}  # action key -> deadline (ms)
        self._attempts: dict[str, _Attempts] = {}  # replica id -> creations since it last reported
        self._destroyed: set[tuple[str, str]] = set()  # (topic, replica id) whose destroy was carried out

    # -- the shell reports back ----------------------------------------------------

    def on_result(self, action: Action, ok: bool) -> None:
        """``action`` was carried out (``ok``) or failed. A created actor stays *starting* until it
        reports, so a successful ``CreateReplica`` changes nothing here."""
        key = _key(action)
        if key is None:
            return
        if isinstance(action, CreateReplica):
            if not ok:
                self._inflight.pop(key, None)
            return
        self._inflight.pop(key, None)
        if isinstance(action, DestroyReplica):  # best effort: a failure is not retried (data stays)
            self._destroyed.add((action.topic, action.replica.replica_id))

    def abandon(self, decision: Decision) -> None:
        """``decision`` was not carried out (its ``Persist`` failed): forget its actions."""
        for action in decision.effects:
            key = _key(action)
            if key is not None:
                self._inflight.pop(key, None)
            if isinstance(action, CreateReplica):
                self._attempts.pop(action.replica.replica_id, None)

    # -- a round ---------------------------------------------------------------------

    def reconcile(
        self,
        metadata: ClusterMetadata,
        nodes: Mapping[str, Node],
        observations: Mapping[str, Observation],
        now_ms: int,
    ) -> Decision:
        """The actions that bring the replicas to ``metadata`` (and the metadata changes that needs)."""
        self._inflight = {k: deadline for k, deadline in self._inflight.items() if deadline > now_ms}
        self._destroyed = {d for d in self._destroyed if d[0] in metadata.topics}
        changed: dict[tuple[str, int], PartitionState] = {}
        notes: list[str] = []
        lifecycle: list[Action] = []
        roles: list[Action] = []
        for topic, part in metadata.partitions():
            new = self._partition(topic, part, nodes, observations, now_ms, notes, lifecycle, roles)
            if new != part:
                changed[(topic.name, part.partition)] = new
        forgotten = self._deletions(metadata, now_ms, lifecycle)
        for name in forgotten:
            notes.append(f"topic {name!r} deleted")
        if not changed and not forgotten:
            return Decision(metadata, (*lifecycle, *roles))
        new_metadata = metadata.with_partitions(changed)
        for name in forgotten:
            new_metadata = new_metadata.without_topic(name)
        return Decision(new_metadata, (Persist(_summary(notes)), *lifecycle, *roles))

    def _partition(
        self,
        topic: TopicState,
        part: PartitionState,
        nodes: Mapping[str, Node],
        raw: Mapping[str, Observation],
        now_ms: int,
        notes: list[str],
        lifecycle: list[Action],
        roles: list[Action],
    ) -> PartitionState:
        name = f"{topic.name}-{part.partition}"
        seen = {
            r.replica_id: self._observe(topic.name, part.partition, r, raw.get(r.replica_id))
            for r in part.replicas
        }

        # 1. re-place replicas whose node is gone: the old actor goes, the new one starts
        new, moved = relocate(part, nodes)
        for old, record in moved:
            seen[old.replica_id] = DOWN  # the old actor is being stopped
            lifecycle.append(StopReplica(topic.name, part.partition, old))
            lifecycle.append(self._create(topic.name, part.partition, record, now_ms))
            notes.append(f"{name}: replica {old.replica_id} re-homed on node {record.node_id} (same disk)")

        # 2. create replicas that have no actor, on live nodes, backing off
        created = [old.replica_id for old, _ in moved]
        for replica in new.replicas:
            obs = seen[replica.replica_id]
            if replica.replica_id in created or not (isinstance(obs, Unreachable) and obs.gone):
                continue
            if replica.node_id not in nodes:  # no live node sees its disk: never pin an actor there
                continue
            attempts = self._attempts.get(replica.replica_id)
            if attempts is not None and now_ms < attempts.next_ms:
                continue
            lifecycle.append(self._create(topic.name, part.partition, replica, now_ms))
            created.append(replica.replica_id)

        # 3. who leads, under which epoch
        new = self._lead(name, new, seen, nodes, notes)
        if (
            new.leader_epoch == part.leader_epoch
            and any(r != new.leader for r in created)
            and self._may_hold_old_handles(topic.name, new, seen, created)
        ):
            # The leader replicates to the handles it was given: it learns a new actor's in a new term.
            new = new_term(new, seen)
            notes.append(f"{name}: epoch {new.leader_epoch} for re-created follower(s)")

        # 4. tell the replicas
        self._tell(topic.name, new, seen, now_ms, roles)
        return new

    def _observe(
        self, topic: str, partition: int, replica: Replica, obs: Observation | None
    ) -> Observation | None:
        """The observation reconciliation acts on: a replica created earlier is *starting* (None:
        undecided) until it reports, its creation fails, or its grace ends."""
        key = ("create", topic, partition, replica.replica_id, replica.generation)
        if isinstance(obs, ReplicaReport):
            if self._attempts:  # (only replicas created by this manager have anything to clear)
                self._inflight.pop(key, None)
                self._attempts.pop(replica.replica_id, None)
            return obs
        if key in self._inflight:
            if isinstance(obs, Unreachable) and obs.gone:  # it died starting (e.g. DirectoryLocked)
                del self._inflight[key]
                return obs
            return None
        return obs

    def _may_hold_old_handles(
        self, topic: str, part: PartitionState, seen: Mapping[str, Observation | None], created: list[str]
    ) -> bool:
        """The leader may lead the current epoch with follower handles given before this round's
        creations: unless it is known to have no role at this epoch (it is new or starting, has no
        actor, or reports another role or epoch), assume it does."""
        leader = part.leader
        if leader is None or leader in created:
            return False
        if ("lead", topic, part.partition, leader, part.leader_epoch) in self._inflight:
            return True
        record = part.replica(leader)
        if (
            record is not None
            and ("create", topic, part.partition, leader, record.generation) in self._inflight
        ):
            return False  # starting: told nothing since its actor was created
        obs = seen.get(leader)
        if isinstance(obs, ReplicaReport):
            return leads(part, obs)
        return not (isinstance(obs, Unreachable) and obs.gone)  # down or no news: it may lead

    def _create(self, topic: str, partition: int, replica: Replica, now_ms: int) -> CreateReplica:
        action = CreateReplica(topic, partition, replica)
        attempts = self._attempts.get(replica.replica_id, _Attempts(0, now_ms))
        delay = min(self.recreate_backoff_max_ms, self.recreate_backoff_min_ms * 2**attempts.count)
        self._attempts[replica.replica_id] = _Attempts(attempts.count + 1, now_ms + delay)
        self._inflight[_key(action)] = now_ms + self.start_grace_ms
        return action

    def _lead(
        self,
        name: str,
        part: PartitionState,
        seen: Mapping[str, Observation | None],
        nodes: Mapping[str, Node],
        notes: list[str],
    ) -> PartitionState:
        leader = part.leader
        obs = seen.get(leader) if leader is not None else None
        if any(
            isinstance(o := seen.get(r), ReplicaReport) and o.log_dir_ok and o.epoch > part.leader_epoch
            for r in part.replica_ids
        ):
            new = new_term(part, seen)  # a replica saw a newer epoch than the metadata holds
            notes.append(f"{name}: epoch {part.leader_epoch} -> {new.leader_epoch} (a replica was ahead)")
            return new
        failed = (
            leader is None
            or leader not in part.isr
            or isinstance(obs, Unreachable)
            or (isinstance(obs, ReplicaReport) and not obs.log_dir_ok)
        )
        if failed:
            new = elect(part, seen, nodes)
            if new is not None:
                notes.append(f"{name}: leader {leader} -> {new.leader}, epoch {new.leader_epoch}")
                return new
            if leader is not None and not part.isr and isinstance(obs, ReplicaReport) and obs.log_dir_ok:
                # an empty ISR (an unclean reassignment before this module): the leader is all there is
                notes.append(f"{name}: ISR was empty; now its leader {leader}")
                return replace(part, isr=(leader,))
            return part
        if not isinstance(obs, ReplicaReport):
            return part  # undecided: no news of the leader yet
        if restarted(part, obs):
            candidate = choose_leader(part, seen, nodes, exclude=leader)
            if candidate is not None and not restarted(part, seen.get(candidate)):
                new = elect(part, seen, nodes)
                assert new is not None
                notes.append(
                    f"{name}: leader {leader} restarted; {new.leader} leads, epoch {new.leader_epoch}"
                )
                return new
            new = new_term(part, seen)
            notes.append(f"{name}: leader {leader} restarted; it leads again under epoch {new.leader_epoch}")
            return new
        if obs.role == "follower" and obs.epoch == part.leader_epoch:
            new = new_term(part, seen)  # told to follow in the epoch it should lead: a new one
            notes.append(f"{name}: leader {leader} follows epoch {obs.epoch}; new epoch {new.leader_epoch}")
            return new
        return part

    def _tell(
        self,
        topic: str,
        part: PartitionState,
        seen: Mapping[str, Observation | None],
        now_ms: int,
        roles: list[Action],
    ) -> None:
        leader, epoch = part.leader, part.leader_epoch
        if leader is None:
            return
        obs = seen.get(leader)
        if not (isinstance(obs, ReplicaReport) and obs.log_dir_ok):
            return
        if not leads(part, obs):
            self._send(
                BecomeLeader(topic, part.partition, leader, epoch, part.followers, part.isr), now_ms, roles
            )
            return
        for follower in part.followers:
            fobs = seen.get(follower)
            if not (isinstance(fobs, ReplicaReport) and fobs.log_dir_ok):
                continue
            if fobs.role == "follower" and fobs.epoch == epoch:
                continue
            self._send(BecomeFollower(topic, part.partition, follower, epoch, leader), now_ms, roles)

    def _send(self, action: Action, now_ms: int, out: list[Action]) -> None:
        key = _key(action)
        if key in self._inflight:
            return
        self._inflight[key] = now_ms + self.command_timeout_ms
        out.append(action)

    def _deletions(self, metadata: ClusterMetadata, now_ms: int, lifecycle: list[Action]) -> list[str]:
        """Destroy the replicas of topics being deleted; returns the topics whose replicas are all done."""
        done = []
        for topic in metadata.topics.values():
            if not topic.deleting:
                continue
            pending = False
            for part in topic.partitions:
                for replica in part.replicas:
                    if (topic.name, replica.replica_id) in self._destroyed:
                        continue
                    pending = True
                    self._send(DestroyReplica(topic.name, part.partition, replica), now_ms, lifecycle)
            if not pending:
                done.append(topic.name)
        return done


def _summary(notes: list[str], limit: int = 10) -> str:
    if len(notes) <= limit:
        return "; ".join(notes)
    return "; ".join(notes[:limit]) + f"; and {len(notes) - limit} more"
