"""``ClusterMetadata`` to and from the dict shape of ``metadata/topics.json`` (docs/FORMAT.md section 0).

Lossless for what today's TopicManager writes: ``to_topics_json(from_topics_json(d)) == d``
for every version-2 document it produces, key for key, so adopting the typed core changes
no byte of the file (it is written with ``sort_keys=True``). Optional keys stay optional:
``generation`` is written only when it is not 0 (placement never writes it; a re-placement
sets it to 1 or more), ``deleting`` only while true, ``storage_id`` only when known.

Reading is strict: an unknown key, a missing one or a value of the wrong type is a
ValueError naming where it is, never silently dropped -- a key this module does not know
would otherwise be lost on the next write. A document without ``version`` (the
TopicManager's default when no file exists yet) is read as version 2; version 1 (before
replication: no ISR, no storage identity, no replication factor) is upgraded on read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from raykafka.control.metadata import ClusterMetadata, PartitionState, Replica, TopicState

#: The version this module writes.
FORMAT_VERSION = 2

_TOPIC_KEYS = {"topic_id", "created_ms", "config", "replication_factor", "partitions", "deleting"}
_PARTITION_KEYS = {"partition", "leader", "leader_epoch", "isr", "replicas"}
_REPLICA_KEYS = {"replica_id", "node_id", "storage_id", "generation"}


def to_topics_json(metadata: ClusterMetadata) -> dict[str, Any]:
    """The document to write to ``topics.json``."""
    return {"version": FORMAT_VERSION, "topics": {t.name: _topic_out(t) for t in metadata.topics.values()}}


def from_topics_json(document: Mapping[str, Any]) -> ClusterMetadata:
    """The metadata a ``topics.json`` document holds; ValueError when it is not one."""
    _require(isinstance(document, Mapping), "topics.json", "is not a JSON object")
    version = document.get("version", FORMAT_VERSION)
    _require(version in (1, FORMAT_VERSION), "topics.json", f"has version {version!r}; this reads 1 and 2")
    unknown = set(document) - {"version", "topics"}
    _require(not unknown, "topics.json", f"has unknown keys {sorted(unknown)}")
    topics = document.get("topics", {})
    _require(isinstance(topics, Mapping), "topics.json", "'topics' is not an object")
    return ClusterMetadata({name: _topic_in(name, t, version) for name, t in topics.items()})


# -- writing -------------------------------------------------------------------


def _topic_out(topic: TopicState) -> dict[str, Any]:
    out: dict[str, Any] = {
        "topic_id": topic.topic_id,
        "created_ms": topic.created_ms,
        "config": dict(topic.config),
        "replication_factor": topic.replication_factor,
        "partitions": [_partition_out(p) for p in topic.partitions],
    }
    if topic.deleting:
        out["deleting"] = True
    return out


def _partition_out(part: PartitionState) -> dict[str, Any]:
    return {
        "partition": part.partition,
        "leader": part.leader,
        "leader_epoch": part.leader_epoch,
        "isr": list(part.isr),
        "replicas": [_replica_out(r) for r in part.replicas],
    }


def _replica_out(replica: Replica) -> dict[str, Any]:
    out: dict[str, Any] = {"replica_id": replica.replica_id, "node_id": replica.node_id}
    if replica.storage_id is not None:
        out["storage_id"] = replica.storage_id
    if replica.generation:
        out["generation"] = replica.generation
    return out


# -- reading -------------------------------------------------------------------


def _topic_in(name: str, raw: Any, version: int) -> TopicState:
    where = f"topics.json: topic {name!r}"
    _require(isinstance(name, str), where, "has a name that is not a string")
    _require(isinstance(raw, Mapping), where, "is not an object")
    _keys(raw, _TOPIC_KEYS, {"topic_id", "created_ms", "config", "partitions"}, where)
    config = raw["config"]
    _require(
        isinstance(config, Mapping) and all(isinstance(v, str) for v in config.values()),
        where,
        "config is not an object of strings",
    )
    partitions_raw = raw["partitions"]
    _require(isinstance(partitions_raw, list), where, "partitions is not a list")
    partitions = tuple(
        _partition_in(f"{where} partition #{i}", p, version) for i, p in enumerate(partitions_raw)
    )
    _require(
        [p.partition for p in partitions] == list(range(len(partitions))),
        where,
        "partitions are not numbered 0, 1, ... in order",
    )
    if "replication_factor" in raw:
        replication_factor = _int(raw["replication_factor"], where, "replication_factor")
    else:
        _require(version == 1, where, "has no replication_factor")
        replication_factor = max((len(p.replicas) for p in partitions), default=1)
    deleting = raw.get("deleting", False)
    _require(isinstance(deleting, bool), where, "deleting is not a boolean")
    return TopicState(
        name=name,
        topic_id=_str(raw["topic_id"], where, "topic_id"),
        created_ms=_int(raw["created_ms"], where, "created_ms"),
        config=dict(config),
        replication_factor=replication_factor,
        partitions=partitions,
        deleting=deleting,
    )


def _partition_in(where: str, raw: Any, version: int) -> PartitionState:
    _require(isinstance(raw, Mapping), where, "is not an object")
    required = {"partition", "leader", "leader_epoch", "replicas"} | ({"isr"} if version >= 2 else set())
    _keys(raw, _PARTITION_KEYS, required, where)
    replicas_raw = raw["replicas"]
    _require(isinstance(replicas_raw, list), where, "replicas is not a list")
    replicas = tuple(_replica_in(f"{where} replica #{i}", r) for i, r in enumerate(replicas_raw))
    ids = [r.replica_id for r in replicas]
    _require(len(set(ids)) == len(ids), where, "has a replica id twice")
    leader = raw["leader"]
    _require(leader is None or isinstance(leader, str), where, "leader is not a string or null")
    if "isr" in raw:
        isr = raw["isr"]
        _require(isinstance(isr, list) and all(isinstance(r, str) for r in isr), where, "isr is not a list")
    else:  # version 1: one replica per partition, in sync by definition
        isr = list(ids)
    return PartitionState(
        partition=_int(raw["partition"], where, "partition"),
        replicas=replicas,
        leader=leader,
        leader_epoch=_int(raw["leader_epoch"], where, "leader_epoch"),
        isr=tuple(isr),
    )


def _replica_in(where: str, raw: Any) -> Replica:
    _require(isinstance(raw, Mapping), where, "is not an object")
    _keys(raw, _REPLICA_KEYS, {"replica_id", "node_id"}, where)
    storage = raw.get("storage_id")
    _require(storage is None or isinstance(storage, str), where, "storage_id is not a string")
    return Replica(
        replica_id=_str(raw["replica_id"], where, "replica_id"),
        node_id=_str(raw["node_id"], where, "node_id"),
        storage_id=storage,
        generation=_int(raw.get("generation", 0), where, "generation"),
    )


def _keys(raw: Mapping[str, Any], allowed: set[str], required: set[str], where: str) -> None:
    unknown = set(raw) - allowed
    _require(not unknown, where, f"has unknown keys {sorted(unknown)}")
    missing = required - set(raw)
    _require(not missing, where, f"lacks keys {sorted(missing)}")


def _int(value: Any, where: str, key: str) -> int:
    _require(isinstance(value, int) and not isinstance(value, bool), where, f"{key} is not an integer")
    return value


def _str(value: Any, where: str, key: str) -> str:
    _require(isinstance(value, str), where, f"{key} is not a string")
    return value


def _require(condition: bool, where: str, problem: str) -> None:
    if not condition:
        raise ValueError(f"{where} {problem}")
