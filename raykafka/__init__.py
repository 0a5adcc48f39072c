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

from raykafka import errors
from raykafka.api.admin import Admin
from raykafka.api.connection import connect
from raykafka.api.consumer import Consumer
from raykafka.api.message import Message, MessageSet
from raykafka.api.producer import Producer, SendFuture
from raykafka.types import (
    GroupDescription,
    MemberDescription,
    PartitionDescription,
    RecordMetadata,
    TopicDescription,
    TopicPartition,
)

__version__ = "0.1.0"

__all__ = [
    "Admin",
    "Consumer",
    "GroupDescription",
    "MemberDescription",
    "Message",
    "MessageSet",
    "PartitionDescription",
    "Producer",
    "RecordMetadata",
    "SendFuture",
    "TopicDescription",
    "TopicPartition",
    "connect",
    "errors",
]
