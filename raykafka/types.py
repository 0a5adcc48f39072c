"""Plain value types of the public API: partitions, send results, descriptions.

Frozen dataclasses so they pickle across Ray, hash where Kafka's do, and print
readably. The CLI's ``--json`` prints their fields (``raykafka/cli/output.py``;
``TopicPartition`` keys become ``"topic:partition"`` strings).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TopicPartition:
    """A partition of a topic, optionally with an offset (for assign/seek/commit).

    Equality and hash use ``(topic, partition)`` only, as in kafka-python, so a
    TopicPartition with an offset finds its entry in a dict keyed without one.
    """

    topic: str
    partition: int
    offset: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.topic, str):
            raise TypeError(f"TopicPartition.topic must be a str, got {type(self.topic).__name__}")
        if isinstance(self.partition, bool) or not isinstance(self.partition, int):
            raise TypeError(f"TopicPartition.partition must be an int, got {type(self.partition).__name__}")
        if self.partition < 0:
            raise ValueError(f"partition must be >= 0, got {self.partition}")
        if self.offset is not None:
            if isinstance(self.offset, bool) or not isinstance(self.offset, int):
                raise TypeError(f"TopicPartition.offset must be an int, got {type(self.offset).__name__}")
            if self.offset < 0:
                raise ValueError(f"offset must be >= 0, got {self.offset}")


@dataclass(frozen=True)
class RecordMetadata:
    """Where a sent message landed."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int


@dataclass(frozen=True)
class PartitionDescription:
    """One partition's placement and range. ``log_start_offset``/``high_watermark`` are -1
    and ``offline`` is True when no replica could answer."""

    partition: int
    leader_node_id: str | None
    replica_node_ids: list[str]
    log_start_offset: int
    high_watermark: int
    isr_node_ids: list[str] = field(default_factory=list)
    leader_epoch: int = 0
    offline: bool = False


@dataclass(frozen=True)
class TopicDescription:
    name: str
    partitions: list[PartitionDescription]
    config: dict[str, str]


@dataclass(frozen=True)
class MemberDescription:
    member_id: str
    node_id: str | None
    assignment: list[TopicPartition]


@dataclass(frozen=True)
class GroupDescription:
    group_id: str
    state: str
    generation: int
    members: list[MemberDescription]
    committed: dict[TopicPartition, int]
    lag: dict[TopicPartition, int]
