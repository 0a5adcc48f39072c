"""Re-placing replicas whose node is gone onto a live node that sees the same disk.

A Ray node that leaves (or a whole Ray restarted: every node gets a new id) takes no data
with it when another live node has the same storage identity. A replica record pinned to a
node that is gone moves to such a node -- the first by id that holds no other replica of the
partition -- with its generation bumped (a new actor name: the old actor may still be known
to Ray). A moved follower is a new actor its leader holds no handle of, so the partition
gets a new epoch (the leader learns it in a new term); a moved leader is told its term when
its new actor reports. A replica with no such node stays where it is (and is not created:
no actor is ever pinned to a node that is gone).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from raykafka.control.actions import Decision, Persist, StopReplica, unchanged
from raykafka.control.metadata import ClusterMetadata, PartitionState, Replica
from raykafka.control.nodes import Node


def relocate(
    part: PartitionState, nodes: Mapping[str, Node]
) -> tuple[PartitionState, list[tuple[Replica, Replica]]]:
    """``part`` with each replica on a node that is gone moved where its disk is, and the
    ``(old, new)`` records moved. The epoch is bumped when a follower moved."""
    replicas = list(part.replicas)
    moved: list[tuple[Replica, Replica]] = []
    for i, replica in enumerate(replicas):
        if replica.node_id in nodes or replica.storage_id is None:
            continue
        hosts = {r.node_id for r in replicas}
        spare = sorted(
            n for n, node in nodes.items() if node.storage_id == replica.storage_id and n not in hosts
        )
        if not spare:
            continue
        replicas[i] = replace(replica, node_id=spare[0], generation=replica.generation + 1)
        moved.append((replica, replicas[i]))
    if not moved:
        return part, moved
    follower_moved = part.leader is not None and any(old.replica_id != part.leader for old, _ in moved)
    epoch = part.leader_epoch + 1 if follower_moved else part.leader_epoch
    return replace(part, replicas=tuple(replicas), leader_epoch=epoch), moved


def replace_lost_replicas(metadata: ClusterMetadata, nodes: Mapping[str, Node]) -> Decision:
    """Move every replica whose node is gone (topics being deleted excepted) and stop its old actor.
    The TopicManager runs this once before it creates any actor; reconciliation does it every round."""
    changed: dict[tuple[str, int], PartitionState] = {}
    stops: list[StopReplica] = []
    for topic, part in metadata.partitions():
        new, moved = relocate(part, nodes)
        if moved:
            changed[(topic.name, part.partition)] = new
            stops += [StopReplica(topic.name, part.partition, old) for old, _ in moved]
    if not changed:
        return unchanged(metadata)
    return Decision(
        metadata.with_partitions(changed),
        (Persist(f"{len(stops)} replica(s) re-homed on live nodes with the same disk"), *stops),
    )
