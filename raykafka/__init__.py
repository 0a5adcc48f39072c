"""raykafka: Kafka's model -- topics, partitions, append-only logs, offsets -- built on Ray.

Map of the package (docs/ARCHITECTURE.md has the whole picture):

* ``raykafka.storage``  -- the storage engine: segment files, batch frames, indexes,
  recovery, retention, flush policy. Pure Python + pyarrow; never imports ray.
* ``raykafka.actors``   -- the Ray actors: ``PartitionActor`` (one per partition
  replica, owns its segments) and ``TopicManager`` (topics, placement).
* ``raykafka.api``      -- the clients users call: ``Producer``, ``Consumer``,
  ``Admin``, ``connect``; messages and futures.
* ``raykafka.topic_config`` -- topic names and Kafka topic configs, validated.
* ``raykafka.errors``, ``raykafka.types`` -- typed errors and value types.

Quick start::

    import raykafka
    from raykafka import Admin, Producer, Consumer, Message, MessageSet, TopicPartition

    raykafka.connect()                       # optional; starts a local Ray if none runs
    Admin().create_topic("topic1", partitions=1)
    with Producer() as producer:
        producer.send("topic1", MessageSet(Message(b"test message str")))
    consumer = Consumer(group_id=None, auto_offset_reset="earliest")
    consumer.assign([TopicPartition("topic1", 0)])
    print(consumer.poll(timeout_s=5).payload())
"""

from __future__ import annotations

import importlib

# Lazy exports: ``import raykafka.storage`` must not pull in Ray (the storage engine stands alone).
_EXPORTS = {
    "Admin": "raykafka.api.admin",
    "Consumer": "raykafka.api.consumer",
    "MessageStream": "raykafka.api.stream",
    "connect": "raykafka.api.connection",
    "Message": "raykafka.api.message",
    "MessageSet": "raykafka.api.message",
    "Producer": "raykafka.api.producer",
    "SendFuture": "raykafka.api.producer",
    "GroupDescription": "raykafka.types",
    "MemberDescription": "raykafka.types",
    "PartitionDescription": "raykafka.types",
    "RecordMetadata": "raykafka.types",
    "TopicDescription": "raykafka.types",
    "TopicPartition": "raykafka.types",
    "consume_in_ray": "raykafka.api.ray_helpers",
    "ConsumeJob": "raykafka.api.ray_helpers",
    "errors": None,
}


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'raykafka' has no attribute {name!r}")
    module = _EXPORTS[name]
    value = (
        importlib.import_module(f"raykafka.{name}")
        if module is None
        else getattr(importlib.import_module(module), name)
    )
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))


__version__ = "0.1.0"

__all__ = [
    "Admin",
    "ConsumeJob",
    "Consumer",
    "GroupDescription",
    "MemberDescription",
    "Message",
    "MessageSet",
    "MessageStream",
    "PartitionDescription",
    "Producer",
    "RecordMetadata",
    "SendFuture",
    "TopicDescription",
    "TopicPartition",
    "connect",
    "consume_in_ray",
    "errors",
]
