"""Topic decisions: each validates as the TopicManager does and returns new metadata to persist."""

from __future__ import annotations

import pytest

from raykafka.control import (
    ClusterMetadata,
    Persist,
    UpdateConfig,
    alter_topic_config,
    create_partitions,
    create_topic,
    delete_topic,
    lookup,
)
from raykafka.control.topics import DeletionPending
from raykafka.errors import InvalidConfig, InvalidTopicName, TopicAlreadyExists, UnknownTopic

from .builders import ids, nodes

LIVE = nodes("n1", "n2", "n3")


def create(metadata=None, name="t", partitions=2, rf=3, config=None):
    return create_topic(
        metadata or ClusterMetadata(),
        name,
        partitions,
        rf,
        config,
        LIVE,
        now_ms=42,
        topic_id="ab" * 16,
        new_replica_id=ids(),
    )


def test_create_records_everything_and_only_persists():
    decision = create(config={"min.insync.replicas": 2})
    assert decision.actions == (Persist("create topic 't': 2 partition(s), replication factor 3"),)
    topic = decision.metadata.topics["t"]
    assert (topic.topic_id, topic.created_ms, topic.replication_factor) == ("ab" * 16, 42, 3)
    assert topic.config == {"min.insync.replicas": "2"}  # explicit keys only, as strings
    for part in topic.partitions:
        assert part.leader == part.replicas[0].replica_id and part.leader_epoch == 0
        assert part.isr == part.replica_ids  # all empty: all in sync
    assert [p.partition for p in topic.partitions] == [0, 1]


def test_create_refuses_what_today_refuses():
    with pytest.raises(InvalidTopicName):
        create(name="a/b")
    with pytest.raises(ValueError, match=r"partitions must be in \[1, 10000\]"):
        create(partitions=0)
    with pytest.raises(InvalidConfig, match="exceeds replication_factor=1"):
        create(rf=1, config={"min.insync.replicas": 2})
    with pytest.raises(InvalidConfig, match="unknown topic config"):
        create(config={"nope": 1})
    existing = create().metadata
    with pytest.raises(TopicAlreadyExists, match="already exists"):
        create(existing)
    deleting = delete_topic(existing, "t").metadata
    with pytest.raises(DeletionPending):
        create(deleting)


def test_partitions_only_grow_and_new_ones_are_placed():
    metadata = create(partitions=1).metadata
    decision = create_partitions(metadata, "t", 3, LIVE, ids("x"))
    topic = decision.metadata.topics["t"]
    assert [p.partition for p in topic.partitions] == [0, 1, 2]
    assert topic.partitions[0] == metadata.topics["t"].partitions[0]
    assert decision.persist is not None
    assert create_partitions(decision.metadata, "t", 3, LIVE).actions == ()
    with pytest.raises(ValueError, match="partitions only grow"):
        create_partitions(decision.metadata, "t", 2, LIVE)
    with pytest.raises(UnknownTopic):
        create_partitions(decision.metadata, "nope", 4, LIVE)


def test_config_changes_are_persisted_then_sent_to_every_replica():
    metadata = create().metadata
    decision = alter_topic_config(metadata, "t", {"retention.ms": 1000})
    assert decision.metadata.topics["t"].config == {"retention.ms": "1000"}
    updates = decision.effects
    assert len(updates) == 6 and all(isinstance(u, UpdateConfig) for u in updates)
    assert updates[0].config == {"retention.ms": "1000"}
    assert alter_topic_config(decision.metadata, "t", {"retention.ms": "1000"}).actions == ()
    with pytest.raises(InvalidConfig, match="exceeds the replication factor 3"):
        alter_topic_config(metadata, "t", {"min.insync.replicas": 4})


def test_delete_marks_the_topic_and_hides_it():
    metadata = create().metadata
    decision = delete_topic(metadata, "t")
    assert decision.metadata.topics["t"].deleting is True
    assert decision.actions == (Persist("delete topic 't'"),)
    with pytest.raises(UnknownTopic):
        lookup(decision.metadata, "t")
    with pytest.raises(UnknownTopic):
        delete_topic(decision.metadata, "t")
    assert list(decision.metadata.partitions()) == []
