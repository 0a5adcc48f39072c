"""The cluster metadata as immutable values: topics -> partitions -> replicas, leader, epoch, ISR.

What ``metadata/topics.json`` holds (docs/FORMAT.md section 0), typed. Every value
is frozen: a decision returns new metadata and leaves the old one untouched, so
the TopicManager can keep the old value when persisting the new one fails.
``topics_json.py`` converts to and from the file's dict shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class FrozenMap(Mapping[K, V]):
    """A read-only, hashable, picklable mapping (compares equal to any mapping with the same items)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[K, V] | Iterable[tuple[K, V]] = ()):
        self._items: dict[K, V] = dict(items)

    def __getitem__(self, key: K) -> V:
        return self._items[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._items == dict(other.items())
        return NotImplemented

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __repr__(self) -> str:
        return f"FrozenMap({self._items!r})"

    def __reduce__(self):
        return (FrozenMap, (self._items,))


@dataclass(frozen=True)
class Replica:
    """One copy of a partition: its id (a directory name), the Ray node its actor runs on, the
    identity of that node's disk, and the generation (part of the actor's name; bumped when the
    record moves to another node with the same disk)."""

    replica_id: str
    node_id: str
    storage_id: str | None = None
    generation: int = 0


@dataclass(frozen=True)
class PartitionState:
    """A partition's replicas (placement order: the first is the preferred leader), its leader
    (a replica id, or None), the leader epoch and the in-sync replicas."""

    partition: int
    replicas: tuple[Replica, ...]
    leader: str | None
    leader_epoch: int
    isr: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "replicas", tuple(self.replicas))
        object.__setattr__(self, "isr", tuple(self.isr))

    @property
    def replica_ids(self) -> tuple[str, ...]:
        return tuple(r.replica_id for r in self.replicas)

    @property
    def followers(self) -> tuple[str, ...]:
        """Every replica but the leader, in placement order."""
        return tuple(r.replica_id for r in self.replicas if r.replica_id != self.leader)

    def replica(self, replica_id: str | None) -> Replica | None:
        return next((r for r in self.replicas if r.replica_id == replica_id), None)

    def in_replica_order(self, ids: Iterable[str]) -> tuple[str, ...]:
        """``ids`` that are replicas of this partition, in placement order."""
        wanted = set(ids)
        return tuple(r for r in self.replica_ids if r in wanted)


@dataclass(frozen=True)
class TopicState:
    """A topic: ``config`` holds only the keys set explicitly; ``deleting`` while its deletion
    is under way (the replicas are destroyed, then the topic is forgotten)."""

    name: str
    topic_id: str
    created_ms: int
    config: Mapping[str, str]
    replication_factor: int
    partitions: tuple[PartitionState, ...]
    deleting: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", FrozenMap(self.config))
        object.__setattr__(self, "partitions", tuple(self.partitions))

    def partition(self, partition: int) -> PartitionState:
        """Partition ``partition``; ValueError (today's message) when it does not exist."""
        if not 0 <= partition < len(self.partitions):
            raise ValueError(
                f"topic {self.name!r} has partitions 0..{len(self.partitions) - 1}; got {partition}"
            )
        return self.partitions[partition]

    def with_partitions(self, changed: Mapping[int, PartitionState]) -> TopicState:
        """This topic with the partitions in ``changed`` (by number) replaced."""
        if not changed:
            return self
        return replace(self, partitions=tuple(changed.get(p.partition, p) for p in self.partitions))


@dataclass(frozen=True)
class ClusterMetadata:
    """Every topic of a namespace, by name."""

    topics: Mapping[str, TopicState] = field(default_factory=FrozenMap)

    def __post_init__(self) -> None:
        object.__setattr__(self, "topics", FrozenMap(self.topics))

    def topic(self, name: str) -> TopicState | None:
        return self.topics.get(name)

    def with_topic(self, topic: TopicState) -> ClusterMetadata:
        return ClusterMetadata({**self.topics, topic.name: topic})

    def without_topic(self, name: str) -> ClusterMetadata:
        return ClusterMetadata({n: t for n, t in self.topics.items() if n != name})

    def with_partitions(self, changed: Mapping[tuple[str, int], PartitionState]) -> ClusterMetadata:
        """This metadata with the partitions in ``changed`` (by ``(topic, partition)``) replaced;
        each topic is rebuilt once, however many of its partitions changed."""
        if not changed:
            return self
        by_topic: dict[str, dict[int, PartitionState]] = {}
        for (name, number), part in changed.items():
            by_topic.setdefault(name, {})[number] = part
        topics = dict(self.topics)
        for name, parts in by_topic.items():
            topics[name] = topics[name].with_partitions(parts)
        return ClusterMetadata(topics)

    def live_topics(self) -> Iterator[TopicState]:
        """Topics not being deleted."""
        return (t for t in self.topics.values() if not t.deleting)

    def partitions(self) -> Iterator[tuple[TopicState, PartitionState]]:
        """Every partition of every topic not being deleted."""
        return ((t, p) for t in self.live_topics() for p in t.partitions)
