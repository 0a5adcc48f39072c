"""Topic decisions: create, grow, change the config of, and delete a topic.

Each validates its request (raising the API's errors with today's messages) and returns a
``Decision``. They change the desired state only: the replicas' actors are created, told
their roles and destroyed by reconciliation (``reconcile.py``), which the TopicManager runs
right after adopting the decision. Deletion is two-phase, as before: ``delete_topic`` marks
the topic ``deleting`` (persisted), reconciliation destroys its replicas and then forgets it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from raykafka.control.actions import Decision, Persist, UpdateConfig, unchanged
from raykafka.control.metadata import ClusterMetadata, PartitionState, TopicState
from raykafka.control.nodes import Node
from raykafka.control.placement import place, random_replica_id
from raykafka.errors import InvalidConfig, TopicAlreadyExists, UnknownTopic
from raykafka.topic_config import validate_topic_config, validate_topic_name

#: Upper bound on what one request may ask for (a named limit, not an accident).
MAX_PARTITIONS_PER_TOPIC = 10_000


class DeletionPending(TopicAlreadyExists):
    """The name belongs to a topic whose deletion is not finished: reconcile until it is gone."""


def lookup(metadata: ClusterMetadata, name: str) -> TopicState:
    """The topic ``name``; UnknownTopic when there is none (or it is being deleted)."""
    topic = metadata.topic(name)
    if topic is None or topic.deleting:
        raise UnknownTopic(
            f"topic {name!r} does not exist; create it with Admin().create_topic({name!r}, partitions=N) "
            f"or `raykafka topics create {name}`"
        )
    return topic


def validate_new_topic(
    name: str, partitions: int, replication_factor: int, config: Mapping[str, object] | None
) -> dict[str, str]:
    """Check a create_topic request's arguments; return its explicitly set config keys."""
    validate_topic_name(name)
    explicit = validate_topic_config(config)
    if not 1 <= partitions <= MAX_PARTITIONS_PER_TOPIC:
        raise ValueError(f"partitions must be in [1, {MAX_PARTITIONS_PER_TOPIC}], got {partitions}")
    if int(explicit.get("min.insync.replicas", "1")) > replication_factor:
        raise InvalidConfig(
            f"min.insync.replicas={explicit['min.insync.replicas']} exceeds replication_factor="
            f"{replication_factor}: acks='all' could never succeed"
        )
    return explicit


def create_topic(
    metadata: ClusterMetadata,
    name: str,
    partitions: int,
    replication_factor: int,
    config: Mapping[str, object] | None,
    nodes: Mapping[str, Node],
    *,
    now_ms: int,
    topic_id: str,
    new_replica_id: Callable[[], str] = random_replica_id,
) -> Decision:
    """A new topic, its partitions placed on ``nodes``; each partition led by its first replica at
    epoch 0 with every replica in sync (they are all empty)."""
    explicit = validate_new_topic(name, partitions, replication_factor, config)
    existing = metadata.topic(name)
    if existing is not None and existing.deleting:
        raise DeletionPending(f"topic {name!r} is still being deleted; create it again once it is gone")
    if existing is not None:
        raise TopicAlreadyExists(f"topic {name!r} already exists; use describe_topic, or delete_topic first")
    parts = _new_partitions(metadata, nodes, 0, partitions, replication_factor, new_replica_id)
    topic = TopicState(name, topic_id, now_ms, explicit, replication_factor, parts)
    return Decision(
        metadata.with_topic(topic),
        (
            Persist(
                f"create topic {name!r}: {partitions} partition(s), replication factor {replication_factor}"
            ),
        ),
    )


def create_partitions(
    metadata: ClusterMetadata,
    name: str,
    total: int,
    nodes: Mapping[str, Node],
    new_replica_id: Callable[[], str] = random_replica_id,
) -> Decision:
    """Grow ``name`` to ``total`` partitions (partitions only grow)."""
    topic = lookup(metadata, name)
    current = len(topic.partitions)
    if total < current:
        raise ValueError(f"topic {name!r} has {current} partitions; partitions only grow (asked {total})")
    if total > MAX_PARTITIONS_PER_TOPIC:
        raise ValueError(f"at most {MAX_PARTITIONS_PER_TOPIC} partitions per topic")
    if total == current:
        return unchanged(metadata)
    parts = _new_partitions(
        metadata, nodes, current, total - current, topic.replication_factor, new_replica_id
    )
    grown = replace(topic, partitions=topic.partitions + parts)
    return Decision(
        metadata.with_topic(grown), (Persist(f"topic {name!r}: partitions {current} -> {total}"),)
    )


def alter_topic_config(metadata: ClusterMetadata, name: str, config: Mapping[str, object]) -> Decision:
    """Merge ``config`` into ``name``'s explicit config; every replica is told the result."""
    changes = validate_topic_config(config)
    topic = lookup(metadata, name)
    merged = {**topic.config, **changes}
    if int(merged.get("min.insync.replicas", "1")) > topic.replication_factor:
        raise InvalidConfig(
            f"min.insync.replicas={merged['min.insync.replicas']} exceeds the replication factor "
            f"{topic.replication_factor} of {name!r}"
        )
    if merged == dict(topic.config):
        return unchanged(metadata)
    altered = replace(topic, config=merged)
    updates = tuple(
        UpdateConfig(name, p.partition, r.replica_id, merged) for p in topic.partitions for r in p.replicas
    )
    return Decision(metadata.with_topic(altered), (Persist(f"topic {name!r}: config {changes}"), *updates))


def delete_topic(metadata: ClusterMetadata, name: str) -> Decision:
    """Mark ``name`` deleting; reconciliation destroys its replicas, then forgets it."""
    topic = lookup(metadata, name)
    marked = replace(topic, deleting=True)
    return Decision(metadata.with_topic(marked), (Persist(f"delete topic {name!r}"),))


def _new_partitions(
    metadata: ClusterMetadata,
    nodes: Mapping[str, Node],
    first: int,
    count: int,
    replication_factor: int,
    new_replica_id: Callable[[], str],
) -> tuple[PartitionState, ...]:
    placements = place(metadata, nodes, count, replication_factor, new_replica_id)
    return tuple(
        PartitionState(first + i, replicas, replicas[0].replica_id, 0, tuple(r.replica_id for r in replicas))
        for i, replicas in enumerate(placements)
    )
