"""Admin: topics, offsets and consumer groups. A thin client of the actors.

Arguments are checked here, before anything reaches an actor, so bad input
fails at the call with TypeError/ValueError or a typed raykafka error.
"""

from __future__ import annotations

from collections.abc import Mapping

import ray

from raykafka.api.connection import Settings, current_settings, group_coordinator, topic_manager
from raykafka.api.rpc import call
from raykafka.api.validation import check_int
from raykafka.errors import UnknownGroup
from raykafka.topic_config import validate_group_id, validate_topic_config, validate_topic_name
from raykafka.types import GroupDescription, TopicDescription


class Admin:
    """Create, describe, alter and delete topics; query and trim offsets; inspect and delete groups.

    Example::

        from raykafka import Admin
        admin = Admin()
        admin.create_topic("topic1", partitions=4, config={"retention.ms": "3600000"})
        admin.describe_topic("topic1").partitions[0].high_watermark
    """

    def __init__(self, request_timeout_ms: int = 30000, *, settings: Settings | None = None):
        """``settings``: a connection to use instead of the process's (as ``Consumer`` takes it)."""
        self.request_timeout_ms = check_int("request_timeout_ms", request_timeout_ms, 1)
        self._settings: Settings = settings or current_settings()
        self._manager = topic_manager(self._settings)

    def _call(self, method: str, *args, idempotent: bool = True):
        return call(
            getattr(self._manager, method),
            *args,
            timeout_s=self.request_timeout_ms / 1000,
            idempotent=idempotent,
            what=method,
        )

    # -- topics ------------------------------------------------------------------

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int = 1,
        config: Mapping[str, str] | None = None,
    ) -> TopicDescription:
        """Create a topic; raises TopicAlreadyExists, InvalidTopicName, InvalidConfig."""
        validate_topic_name(name)
        check_int("partitions", partitions, 1)
        check_int("replication_factor", replication_factor, 1)
        explicit = validate_topic_config(config)
        return self._call("create_topic", name, partitions, replication_factor, explicit, idempotent=False)

    def delete_topic(self, name: str) -> None:
        """Delete a topic and its data on every node; raises UnknownTopic."""
        validate_topic_name(name)
        self._call("delete_topic", name, idempotent=False)

    def list_topics(self) -> list[str]:
        return self._call("list_topics")

    def describe_topic(self, name: str) -> TopicDescription:
        """Partitions (placement, log start, high watermark) and the effective config."""
        validate_topic_name(name)
        return self._call("describe_topic", name)

    def create_partitions(self, name: str, total: int) -> TopicDescription:
        """Grow ``name`` to ``total`` partitions (partitions never shrink)."""
        validate_topic_name(name)
        check_int("total", total, 1)
        return self._call("create_partitions", name, total, idempotent=False)

    def alter_topic_config(self, name: str, config: Mapping[str, str]) -> TopicDescription:
        """Set the given config keys (others keep their values); applied to live partitions."""
        validate_topic_name(name)
        if not config:
            raise ValueError("alter_topic_config needs at least one key")
        return self._call("alter_topic_config", name, validate_topic_config(config))

    def reassign_partitions(self, name: str, assignments: Mapping[int, list[str]]) -> TopicDescription:
        """Move partitions' replicas to the given Ray node ids, e.g. onto nodes that joined later:
        ``{partition: [node_id, ...]}``. New replicas copy the log from the leader and join the
        in-sync set before the replicas that are not wanted any more are dropped; the leader
        moves if its node is not in the list. Blocks until done (or RequestTimedOut)."""
        validate_topic_name(name)
        if not isinstance(assignments, Mapping) or not assignments:
            raise ValueError("reassign_partitions takes {partition: [node_id, ...]}")
        clean = {}
        for partition, nodes in assignments.items():
            check_int("partition", partition, 0)
            if isinstance(nodes, str) or not all(isinstance(n, str) for n in nodes):
                raise TypeError("each partition maps to a list of Ray node id strings")
            clean[partition] = list(nodes)
        return self._call("reassign_partitions", name, clean, idempotent=False)

    # -- offsets -----------------------------------------------------------------

    def _partition_leader(self, topic: str, partition: int) -> tuple:
        """``(handle, actor name)`` of the partition's leader, as the TopicManager has it now."""
        validate_topic_name(topic)
        check_int("partition", partition, 0)
        meta = self._call("topic_metadata", topic)
        leaders = meta["leaders"]
        if partition >= len(leaders):
            raise ValueError(f"topic {topic!r} has partitions 0..{len(leaders) - 1}; got {partition}")
        names = meta.get("leader_names") or [None] * len(leaders)  # (an older TopicManager)
        return leaders[partition], names[partition]

    def _call_leader(self, topic: str, partition: int, method: str, *args, what: str):
        """Call the partition's leader; when it is gone, moved or hangs, call the new one."""

        def leader_method() -> tuple:
            handle, name = self._partition_leader(topic, partition)
            return getattr(handle, method), name

        first, name = leader_method()
        return call(
            first,
            *args,
            timeout_s=self.request_timeout_ms / 1000,
            what=what,
            refresh=leader_method,
            leader_name=name,
        )

    def list_offsets(self, topic: str, partition: int, spec: str | int) -> int:
        """``"earliest"`` (log start), ``"latest"`` (log end), or a timestamp in ms: the first
        offset whose timestamp is >= it (the log end when there is none, so a seek there
        reads only newer messages)."""
        if isinstance(spec, str) and spec not in ("earliest", "latest"):
            raise ValueError(f"list_offsets takes 'earliest', 'latest' or a timestamp in ms, got {spec!r}")
        if spec not in ("earliest", "latest"):
            check_int("timestamp_ms", spec, 0)
        return self._call_leader(topic, partition, "list_offset", spec, what="list_offsets")

    def delete_records(self, topic: str, before_offsets: Mapping[int, int]) -> dict[int, int]:
        """Make each partition's log start ``before_offset`` (records below it are gone).

        Returns the new log start per partition. Raises OffsetOutOfRange past the log end.
        """
        if not isinstance(before_offsets, Mapping):
            raise TypeError("delete_records takes {partition: before_offset}")
        for partition, offset in before_offsets.items():
            check_int("before_offset", offset, 0)
            self._partition_leader(topic, partition)  # every partition checked before any is changed
        return {
            p: self._call_leader(topic, p, "delete_records", offset, what="delete_records")
            for p, offset in before_offsets.items()
        }

    # -- groups ------------------------------------------------------------------

    def list_groups(self) -> list[str]:
        """Groups that have committed offsets or live members."""
        return self._call("list_groups")

    def _coordinator(self, group_id: str):
        validate_group_id(group_id)
        if group_id not in self.list_groups():
            raise UnknownGroup(f"group {group_id!r} does not exist (no members, no committed offsets)")
        return group_coordinator(self._settings, group_id)

    def describe_group(self, group_id: str) -> GroupDescription:
        """State, generation, members with their partitions, committed offsets, and lag
        (log end offset minus committed offset) per partition."""
        coordinator = self._coordinator(group_id)
        return call(coordinator.describe, timeout_s=self.request_timeout_ms / 1000, what="describe_group")

    def delete_group(self, group_id: str) -> None:
        """Delete a group's committed offsets; raises GroupNotEmpty while it has members."""
        coordinator = self._coordinator(group_id)
        call(
            coordinator.destroy,
            timeout_s=self.request_timeout_ms / 1000,
            idempotent=False,
            what="delete_group",
        )
        ray.kill(coordinator, no_restart=True)
