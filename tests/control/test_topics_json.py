"""topics.json <-> ClusterMetadata: byte-exact on files today's TopicManager wrote, strict on others.

The files under ``topics_json/`` are real ``metadata/topics.json`` files left by earlier runs
of the test suite on this machine (multi-node replication tests, a restarted Ray, the demo).
"""

from __future__ import annotations

import json
import pickle
import re
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from raykafka.control import ClusterMetadata, PartitionState, Replica, from_topics_json, to_topics_json
from raykafka.control.topics_json import FORMAT_VERSION

REAL = sorted((Path(__file__).parent / "topics_json").glob("*.json"))

# docs/FORMAT.md section 0's example, with its placeholders filled in
FORMAT_MD_EXAMPLE = {
    "version": 2,
    "topics": {
        "events": {
            "topic_id": "0" * 32,
            "created_ms": 0,
            "config": {"retention.ms": "60000"},
            "replication_factor": 1,
            "deleting": True,
            "partitions": [
                {
                    "partition": 0,
                    "leader": "0123456789ab",
                    "leader_epoch": 0,
                    "isr": ["0123456789ab"],
                    "replicas": [
                        {
                            "replica_id": "0123456789ab",
                            "node_id": "n" * 56,
                            "storage_id": "disk-0",
                            "generation": 0,
                        }
                    ],
                }
            ],
        }
    },
}


def dumps(document) -> str:
    return json.dumps(document, sort_keys=True, indent=1)  # as write_json_atomic writes it


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.stem)
def test_real_files_round_trip_byte_for_byte(path: Path):
    text = path.read_text()
    metadata = from_topics_json(json.loads(text))
    assert dumps(to_topics_json(metadata)) == text
    assert from_topics_json(json.loads(dumps(to_topics_json(metadata)))) == metadata


def test_real_files_are_typed_as_recorded():
    text = (Path(__file__).parent / "topics_json" / "rf3_after_failover_and_replacement.json").read_text()
    metadata = from_topics_json(json.loads(text))
    part = metadata.topics["orders"].partitions[0]
    assert metadata.topics["orders"].config == {"min.insync.replicas": "2"}
    assert metadata.topics["orders"].replication_factor == 3
    assert part.leader == "bc956a2f3cf7" and part.leader_epoch == 2
    assert part.isr == ("bc956a2f3cf7", "cc6bd1cadfe4")
    rehomed = part.replica("34dd52fb7cb2")
    assert rehomed is not None and rehomed.generation == 1 and rehomed.storage_id == "disk-0"
    assert part.replica("bc956a2f3cf7").generation == 0  # no "generation" key: never moved


def test_the_documented_example_reads_and_writes_back_equivalently():
    metadata = from_topics_json(FORMAT_MD_EXAMPLE)
    topic = metadata.topics["events"]
    assert topic.deleting is True
    assert topic.partitions[0].replicas[0] == Replica("0123456789ab", "n" * 56, "disk-0", 0)
    written = to_topics_json(metadata)
    # generation 0 is written as today's placement writes it: not at all
    assert "generation" not in written["topics"]["events"]["partitions"][0]["replicas"][0]
    assert written["topics"]["events"]["deleting"] is True
    assert from_topics_json(written) == metadata


def test_no_file_yet_is_an_empty_cluster():
    assert from_topics_json({"topics": {}}) == ClusterMetadata()
    assert to_topics_json(ClusterMetadata()) == {"version": FORMAT_VERSION, "topics": {}}


def test_version_1_is_upgraded_on_read():
    v1 = {
        "version": 1,
        "topics": {
            "old": {
                "topic_id": "a" * 32,
                "created_ms": 5,
                "config": {},
                "partitions": [
                    {
                        "partition": 0,
                        "leader": "r0",
                        "leader_epoch": 0,
                        "replicas": [{"replica_id": "r0", "node_id": "n1"}],
                    }
                ],
            }
        },
    }
    topic = from_topics_json(v1).topics["old"]
    assert topic.replication_factor == 1
    assert topic.partitions[0].isr == ("r0",)
    assert topic.partitions[0].replicas[0].storage_id is None
    written = to_topics_json(from_topics_json(v1))
    assert written["version"] == 2 and written["topics"]["old"]["partitions"][0]["isr"] == ["r0"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(version=3), "version 3"),
        (lambda d: d["topics"]["events"].update(owner="x"), "unknown keys ['owner']"),
        (lambda d: d["topics"]["events"]["partitions"][0].pop("isr"), "lacks keys ['isr']"),
        (lambda d: d["topics"]["events"]["partitions"][0].update(leader_epoch="1"), "leader_epoch"),
        (lambda d: d["topics"]["events"]["partitions"][0].update(partition=1), "numbered"),
        (
            lambda d: d["topics"]["events"]["partitions"][0]["replicas"][0].update(generation=True),
            "generation",
        ),
        (lambda d: d["topics"]["events"].pop("replication_factor"), "replication_factor"),
        (lambda d: d["topics"]["events"]["config"].update({"retention.ms": 5}), "config"),
    ],
)
def test_anything_else_is_refused_with_where_it_is(mutate, message):
    document = json.loads(json.dumps(FORMAT_MD_EXAMPLE))
    mutate(document)
    with pytest.raises(ValueError, match=re.escape(message)):
        from_topics_json(document)


def test_values_are_immutable_hashable_and_picklable():
    metadata = from_topics_json(json.loads((REAL[0]).read_text()))
    topic = next(iter(metadata.topics.values()))
    with pytest.raises(FrozenInstanceError):
        topic.partitions[0].leader_epoch = 9  # type: ignore[misc]
    with pytest.raises(TypeError):
        topic.config["x"] = "y"  # type: ignore[index]
    with pytest.raises(TypeError):
        metadata.topics["x"] = topic  # type: ignore[index]
    assert hash(metadata) == hash(pickle.loads(pickle.dumps(metadata)))
    assert pickle.loads(pickle.dumps(metadata)) == metadata


def test_lists_given_to_constructors_are_frozen_into_tuples():
    replicas = [Replica("a", "n1")]
    isr = ["a"]
    part = PartitionState(0, replicas, "a", 0, isr)  # type: ignore[arg-type]
    replicas.append(Replica("b", "n2"))
    isr.append("b")
    assert part.replicas == (Replica("a", "n1"),) and part.isr == ("a",)
