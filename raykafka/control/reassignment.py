"""Reassignment: move a partition's replicas to given nodes -- add, wait until in sync, drop.

1. ``start_reassignment`` validates the target (distinct live nodes) and adds a replica on
   every target node that holds none, under a new epoch (the leader learns its new followers
   in a new term). Reconciliation creates them and tells them to follow. A replica whose node
   is gone is first re-placed where its disk is, so a target node with that disk counts as
   holding it.
2. The new replicas copy the leader's log and join the ISR through the leader's ``alter_isr``;
   ``Reassignment.in_sync`` says when all of them have.
3. ``finish_reassignment`` drops the replicas on nodes outside the target, under a new epoch;
   a dropped leader hands over to the first remaining in-sync replica. The dropped replicas
   are destroyed after the change is persisted.

No unclean leader: a reassignment that would leave no in-sync replica is refused
(``InvalidReplicaAssignment``, nothing changed) unless the topic sets
``unclean.leader.election.enable=true``. At the start, replicas still to be added count when
the partition has a leader for them to copy (they join the ISR before anything is dropped);
at the finish only replicas in the ISR count. An unclean finish makes the new leader the
whole ISR (Kafka's unclean election), never a leader outside it.

The target is not persisted (``topics.json`` has no place for it): a TopicManager restarted
between the two steps keeps the added replicas, as today.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from raykafka.control.actions import Decision, DestroyReplica, Persist, StopReplica, unchanged
from raykafka.control.metadata import ClusterMetadata, PartitionState, Replica, TopicState
from raykafka.control.nodes import Node
from raykafka.control.placement import random_replica_id
from raykafka.control.replacement import relocate
from raykafka.control.topics import lookup
from raykafka.errors import InvalidReplicaAssignment
from raykafka.topic_config import config_value


@dataclass(frozen=True)
class Reassignment:
    """A reassignment under way: the target nodes and the replicas added for them."""

    topic: str
    partition: int
    nodes: tuple[str, ...]
    added: tuple[str, ...]

    def in_sync(self, metadata: ClusterMetadata) -> bool:
        """Every added replica is in the ISR (or the partition is gone)."""
        topic = metadata.topic(self.topic)
        if topic is None or topic.deleting or self.partition >= len(topic.partitions):
            return True
        return set(self.added) <= set(topic.partitions[self.partition].isr)


def start_reassignment(
    metadata: ClusterMetadata,
    topic: str,
    partition: int,
    target: Sequence[str],
    nodes: Mapping[str, Node],
    new_replica_id: Callable[[], str] = random_replica_id,
) -> tuple[Decision, Reassignment]:
    """Validate ``target`` (node ids) and add the replicas it needs."""
    state = lookup(metadata, topic)
    part = state.partition(partition)
    target = tuple(target)
    if not target or len(set(target)) != len(target):
        raise InvalidReplicaAssignment(f"partition {partition}: give a list of distinct node ids")
    dead = [n for n in target if n not in nodes]
    if dead:
        raise InvalidReplicaAssignment(f"partition {partition}: nodes {dead} are not alive")
    # A replica whose node is gone moves to the node that sees its disk first: a target node with
    # that disk is its home, not a place for another copy (which would leave it nowhere to go).
    part, moved = relocate(part, nodes)
    refuse_unclean(state, part, target, will_copy=True)
    on = {r.node_id for r in part.replicas}
    added = tuple(Replica(new_replica_id(), n, nodes[n].storage_id) for n in target if n not in on)
    reassignment = Reassignment(topic, partition, target, tuple(r.replica_id for r in added))
    if not added and not moved:
        return unchanged(metadata), reassignment
    if added:
        part = replace(part, replicas=part.replicas + added, leader_epoch=part.leader_epoch + 1)
    decision = Decision(
        metadata.with_partitions({(topic, partition): part}),
        (
            Persist(f"{topic}-{partition}: reassigning to {list(target)}, adding {list(reassignment.added)}"),
            *(StopReplica(topic, partition, old) for old, _ in moved),
        ),
    )
    return decision, reassignment


def finish_reassignment(metadata: ClusterMetadata, reassignment: Reassignment) -> Decision:
    """Drop the replicas on nodes outside the target (call once ``in_sync``)."""
    topic, partition = reassignment.topic, reassignment.partition
    state = lookup(metadata, topic)
    part = state.partition(partition)
    refuse_unclean(state, part, reassignment.nodes, will_copy=False)
    keep = tuple(r for r in part.replicas if r.node_id in reassignment.nodes)
    drop = tuple(r for r in part.replicas if r.node_id not in reassignment.nodes)
    if not drop:
        return unchanged(metadata)
    kept_ids = {r.replica_id for r in keep}
    isr = tuple(r for r in part.isr if r in kept_ids)
    leader = part.leader
    if leader not in kept_ids:
        leader = isr[0] if isr else keep[0].replica_id
    if leader not in isr:  # unclean (allowed by the topic): the new leader is all that is in sync
        isr = (leader,)
    shrunk = replace(part, replicas=keep, leader=leader, leader_epoch=part.leader_epoch + 1, isr=isr)
    return Decision(
        metadata.with_partitions({(topic, partition): shrunk}),
        (
            Persist(f"{topic}-{partition}: reassigned, dropping {[r.replica_id for r in drop]}"),
            *(DestroyReplica(topic, partition, r) for r in drop),
        ),
    )


def refuse_unclean(
    topic: TopicState, part: PartitionState, target: Sequence[str], *, will_copy: bool
) -> None:
    """InvalidReplicaAssignment when moving ``part`` to ``target`` would leave no in-sync replica
    to lead it, unless the topic allows an unclean leader. ``will_copy``: replicas still to be
    added on new nodes will copy a live leader's log first, which is enough."""
    if config_value(topic.config, "unclean.leader.election.enable"):
        return
    on = {r.node_id for r in part.replicas}
    if will_copy and part.leader is not None and any(n not in on for n in target):
        return
    if not any(r.node_id in target and r.replica_id in part.isr for r in part.replicas):
        raise InvalidReplicaAssignment(
            f"{topic.name}-{part.partition}: no in-sync replica is on nodes {list(target)}; moving there "
            f"could lose acknowledged records, and nothing was changed. Include the node of an "
            f"in-sync replica, or set unclean.leader.election.enable=true on the topic"
        )
