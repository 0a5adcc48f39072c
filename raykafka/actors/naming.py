"""Names of raykafka's named actors, in one place, so every process finds the same actors."""

from __future__ import annotations

#: The Ray namespace raykafka's actors live in unless ``connect(namespace=...)`` says otherwise;
#: it also adopts a data directory written before the layout had namespaces (docs/FORMAT.md).
DEFAULT_NAMESPACE = "raykafka"
TOPIC_MANAGER_NAME = "raykafka.topic_manager"


def partition_actor_name(topic: str, partition: int, replica_id: str, generation: int = 0) -> str:
    """``generation`` counts re-placements of the replica on another node (same disk, new actor)."""
    return f"raykafka.partition.{topic}.{partition}.{replica_id}.{generation}"


def group_actor_name(group_id: str) -> str:
    return f"raykafka.group.{group_id}"
