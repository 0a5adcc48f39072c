"""Where a new partition's replicas go: distinct nodes, distinct disks where possible, replicas
and leaders spread evenly over the broker nodes.

The rule the TopicManager has used since replication (kept exactly, so placements do not
change when it adopts this module): for each new partition, the leader goes to the broker
node leading fewest partitions (then carrying fewest replicas, then lowest id); each further
replica to the node, among those not chosen yet, whose disk is not used by the partition
yet, then carrying fewest replicas, then lowest id. Replicas of every topic on live broker
nodes count, including topics being deleted.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Mapping

from raykafka.control.metadata import ClusterMetadata, Replica
from raykafka.control.nodes import Node, broker_nodes
from raykafka.errors import InvalidConfig


def random_replica_id() -> str:
    """A new replica id: 12 hex digits (docs/FORMAT.md section 0)."""
    return uuid.uuid4().hex[:12]


def place(
    metadata: ClusterMetadata,
    nodes: Mapping[str, Node],
    count: int,
    replication_factor: int,
    new_replica_id: Callable[[], str] = random_replica_id,
) -> list[tuple[Replica, ...]]:
    """Replicas for ``count`` new partitions, the leader first. InvalidConfig when there are fewer
    broker nodes than ``replication_factor``."""
    if replication_factor < 1:
        raise InvalidConfig(f"replication_factor must be at least 1, got {replication_factor}")
    brokers = broker_nodes(nodes)
    if replication_factor > len(brokers):
        raise InvalidConfig(
            f"replication_factor={replication_factor} needs that many alive Ray nodes; "
            f"{len(brokers)} are alive. Add nodes or lower the replication factor"
        )
    load: Counter[str] = Counter({n: 0 for n in brokers})
    leads: Counter[str] = Counter({n: 0 for n in brokers})
    for topic in metadata.topics.values():
        for part in topic.partitions:
            for replica in part.replicas:
                if replica.node_id in load:
                    load[replica.node_id] += 1
                    if replica.replica_id == part.leader:
                        leads[replica.node_id] += 1
    placements = []
    for _ in range(count):
        leader = min(brokers, key=lambda n: (leads[n], load[n], n))
        chosen = [leader]
        while len(chosen) < replication_factor:
            disks = {brokers[n].storage_id for n in chosen}
            rest = [n for n in brokers if n not in chosen]
            chosen.append(min(rest, key=lambda n: (brokers[n].storage_id in disks, load[n], n)))
        for n in chosen:
            load[n] += 1
        leads[leader] += 1
        placements.append(tuple(Replica(new_replica_id(), n, brokers[n].storage_id) for n in chosen))
    return placements
