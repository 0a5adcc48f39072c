"""TopicManager: the one named, detached actor that knows every topic.

It owns topic metadata -- names, ids, configs, partitions and where each
partition's replicas live -- persisted as an atomic JSON snapshot in
``<data_dir>/metadata/topics.json`` on its node. It creates, places, alters and
deletes PartitionActors, and hands out their handles; it is never on the data
path (producers and consumers call partition actors directly).

Every mutation is persisted *before* it is acted on (create: record, then start
actors; delete: mark ``deleting``, then destroy, then forget), so a manager
killed at any point converges when its constructor replays the snapshot:
it re-attaches to partition actors that still live (by name) and recreates
those that do not, on the node the metadata names.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from raykafka.actors.naming import group_actor_name, partition_actor_name
from raykafka.actors.partition import PartitionActor, resolve_data_dir
from raykafka.errors import InvalidConfig, TopicAlreadyExists, UnknownTopic
from raykafka.storage.snapshot import read_json, write_json_atomic
from raykafka.topic_config import effective_config, validate_topic_config, validate_topic_name
from raykafka.types import PartitionDescription, TopicDescription

logger = logging.getLogger(__name__)

#: How long describe_topic waits for one partition actor before reporting it unavailable.
DESCRIBE_TIMEOUT_S = 5.0
#: Upper bounds on what one request may ask for (named limits, not accidents).
MAX_PARTITIONS_PER_TOPIC = 10_000

_PartitionActor = ray.remote(PartitionActor)


class TopicManager:
    def __init__(self, data_dir: str | None, namespace: str, maintenance_interval_ms: int = 1000):
        self.data_dir = data_dir  # as given: resolved on each partition's own node
        self.namespace = namespace
        self.maintenance_interval_ms = maintenance_interval_ms
        self.meta_path = resolve_data_dir(data_dir) / "metadata" / "topics.json"
        self.topics: dict[str, dict] = read_json(self.meta_path, {"topics": {}})["topics"]
        self.handles: dict[str, ray.actor.ActorHandle] = {}
        self.lock = asyncio.Lock()
        for name, topic in list(self.topics.items()):
            if topic.get("deleting"):
                continue  # finished by the first call (needs the event loop)
            for part in topic["partitions"]:
                for replica in part["replicas"]:
                    self.handles[replica["replica_id"]] = self._attach(name, part["partition"], replica, topic)
        logger.info("TopicManager up with %d topics from %s", len(self.topics), self.meta_path)

    # -- persistence and actors --------------------------------------------------

    def _persist(self) -> None:
        write_json_atomic(self.meta_path, {"version": 1, "topics": self.topics})

    def _attach(self, topic: str, partition: int, replica: dict, meta: dict):
        name = partition_actor_name(topic, partition, replica["replica_id"])
        try:
            return ray.get_actor(name, namespace=self.namespace)
        except ValueError:
            pass
        return _PartitionActor.options(
            name=name,
            namespace=self.namespace,
            lifetime="detached",
            num_cpus=0,
            max_restarts=-1,
            max_task_retries=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(replica["node_id"], soft=False),
        ).remote(
            topic, partition, replica["replica_id"], self.data_dir, meta["config"], self.maintenance_interval_ms
        )

    def _place(self, count: int) -> list[str]:
        """Node ids for ``count`` new partitions: alive nodes, least-loaded first (spread)."""
        alive = sorted(n["NodeID"] for n in ray.nodes() if n.get("Alive"))
        if not alive:
            raise RuntimeError("no alive Ray node to place partitions on")
        load = Counter({node: 0 for node in alive})
        for topic in self.topics.values():
            for part in topic["partitions"]:
                for replica in part["replicas"]:
                    if replica["node_id"] in load:
                        load[replica["node_id"]] += 1
        chosen = []
        for _ in range(count):
            node = min(alive, key=lambda n: (load[n], n))
            load[node] += 1
            chosen.append(node)
        return chosen

    def _new_partitions(self, first: int, count: int) -> list[dict]:
        nodes = self._place(count)
        parts = []
        for i, node in enumerate(nodes):
            replica_id = uuid.uuid4().hex[:12]
            parts.append(
                {
                    "partition": first + i,
                    "leader": replica_id,
                    "leader_epoch": 0,
                    "replicas": [{"replica_id": replica_id, "node_id": node}],
                }
            )
        return parts

    def _start(self, name: str, parts: list[dict]) -> None:
        meta = self.topics[name]
        for part in parts:
            for replica in part["replicas"]:
                self.handles[replica["replica_id"]] = self._attach(name, part["partition"], replica, meta)

    def _topic(self, name: str) -> dict:
        topic = self.topics.get(name)
        if topic is None or topic.get("deleting"):
            raise UnknownTopic(
                f"topic {name!r} does not exist; create it with Admin().create_topic({name!r}, partitions=N) "
                f"or `raykafka topics create {name}`"
            )
        return topic

    async def _finish_deletions(self) -> None:
        for name in [n for n, t in self.topics.items() if t.get("deleting")]:
            await self._destroy(name)

    async def _destroy(self, name: str) -> None:
        topic = self.topics[name]
        for part in topic["partitions"]:
            for replica in part["replicas"]:
                handle = self.handles.pop(replica["replica_id"], None)
                if handle is None:
                    try:
                        handle = ray.get_actor(
                            partition_actor_name(name, part["partition"], replica["replica_id"]),
                            namespace=self.namespace,
                        )
                    except ValueError:
                        continue
                try:
                    await asyncio.wait_for(handle.destroy.remote(), DESCRIBE_TIMEOUT_S)
                except Exception as exc:  # its node may be gone: the data stays there, the topic goes
                    logger.warning("could not delete data of %s-%d: %s", name, part["partition"], exc)
                ray.kill(handle, no_restart=True)
        del self.topics[name]
        self._persist()

    # -- the API ---------------------------------------------------------------

    async def create_topic(
        self, name: str, partitions: int, replication_factor: int, config: dict | None
    ) -> TopicDescription:
        validate_topic_name(name)
        explicit = validate_topic_config(config)
        if not 1 <= partitions <= MAX_PARTITIONS_PER_TOPIC:
            raise ValueError(f"partitions must be in [1, {MAX_PARTITIONS_PER_TOPIC}], got {partitions}")
        if replication_factor != 1:
            raise InvalidConfig(
                f"replication_factor={replication_factor} is not supported yet (replication is planned); "
                f"use replication_factor=1"
            )
        async with self.lock:
            await self._finish_deletions()
            if name in self.topics:
                raise TopicAlreadyExists(
                    f"topic {name!r} already exists; use describe_topic, or delete_topic first"
                )
            self.topics[name] = {
                "topic_id": uuid.uuid4().hex,
                "created_ms": int(time.time() * 1000),
                "config": explicit,
                "partitions": [],
            }
            parts = self._new_partitions(0, partitions)
            self.topics[name]["partitions"] = parts
            self._persist()
            self._start(name, parts)
        return await self.describe_topic(name)

    async def delete_topic(self, name: str) -> None:
        async with self.lock:
            self._topic(name)
            self.topics[name]["deleting"] = True
            self._persist()
            await self._destroy(name)

    async def list_topics(self) -> list[str]:
        return sorted(n for n, t in self.topics.items() if not t.get("deleting"))

    async def create_partitions(self, name: str, total: int) -> TopicDescription:
        async with self.lock:
            topic = self._topic(name)
            current = len(topic["partitions"])
            if total < current:
                raise ValueError(f"topic {name!r} has {current} partitions; partitions only grow (asked {total})")
            if total > MAX_PARTITIONS_PER_TOPIC:
                raise ValueError(f"at most {MAX_PARTITIONS_PER_TOPIC} partitions per topic")
            parts = self._new_partitions(current, total - current)
            topic["partitions"].extend(parts)
            self._persist()
            self._start(name, parts)
        return await self.describe_topic(name)

    async def alter_topic_config(self, name: str, config: dict) -> TopicDescription:
        changes = validate_topic_config(config)
        async with self.lock:
            topic = self._topic(name)
            topic["config"] = {**topic["config"], **changes}
            self._persist()
            replicas = [self.handles[r["replica_id"]] for p in topic["partitions"] for r in p["replicas"]]
            await asyncio.gather(*(h.update_config.remote(topic["config"]) for h in replicas))
        return await self.describe_topic(name)

    async def topic_metadata(self, name: str) -> dict:
        """What clients cache: ``{"name", "topic_id", "config", "leaders": [handle per partition]}``."""
        topic = self._topic(name)
        return {
            "name": name,
            "topic_id": topic["topic_id"],
            "config": effective_config(topic["config"]),
            "leaders": [self.handles[p["leader"]] for p in topic["partitions"]],
        }

    async def describe_topic(self, name: str) -> TopicDescription:
        topic = self._topic(name)
        parts = topic["partitions"]

        async def offsets(part: dict) -> tuple[int, int]:
            try:
                return await asyncio.wait_for(self.handles[part["leader"]].offsets.remote(), DESCRIBE_TIMEOUT_S)
            except Exception:
                return -1, -1  # unavailable right now

        found = await asyncio.gather(*(offsets(p) for p in parts))
        descriptions = []
        for part, (start, end) in zip(parts, found, strict=True):
            node_of = {r["replica_id"]: r["node_id"] for r in part["replicas"]}
            descriptions.append(
                PartitionDescription(
                    partition=part["partition"],
                    leader_node_id=node_of[part["leader"]],
                    replica_node_ids=[r["node_id"] for r in part["replicas"]],
                    log_start_offset=start,
                    high_watermark=end,
                )
            )
        return TopicDescription(name=name, partitions=descriptions, config=effective_config(topic["config"]))

    async def list_groups(self) -> list[str]:
        """Groups with stored offsets (on this head node's disk) or a live coordinator."""
        groups_dir = resolve_data_dir(self.data_dir) / "groups"
        names = {p.name for p in groups_dir.iterdir() if p.is_dir()} if groups_dir.is_dir() else set()
        prefix = group_actor_name("")
        for entry in ray.util.list_named_actors(all_namespaces=True):
            if entry["namespace"] == self.namespace and entry["name"].startswith(prefix):
                names.add(entry["name"][len(prefix) :])
        return sorted(names)

    async def ping(self) -> dict:
        """Liveness and identity: data_dir, topic count, and this process's pid (for operators and tests)."""
        import os

        return {"data_dir": self.data_dir, "topics": len(self.topics), "pid": os.getpid()}
