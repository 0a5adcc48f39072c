"""Placement of new partitions: the same choices as the TopicManager's ``_place`` has made since
replication, checked against a transcription of it on random clusters, plus its properties."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raykafka.control import ClusterMetadata, Node, place
from raykafka.control.topics import create_topic
from raykafka.errors import InvalidConfig

from .builders import ids, nodes


def old_place(topics: dict, alive: dict[str, dict], count: int, rf: int, new_id) -> list[list[dict]]:
    """``TopicManager._place`` and ``_broker_nodes`` (raykafka/actors/topic_manager.py), on its dicts."""

    def storage_id(node):
        return node.get("Labels", {}).get("raykafka-storage") or node["NodeManagerAddress"]

    labelled = {n: node for n, node in alive.items() if node.get("Labels", {}).get("raykafka-storage")}
    alive = labelled or alive
    if rf > len(alive):
        raise InvalidConfig("too few nodes")
    load, leads = Counter({n: 0 for n in alive}), Counter({n: 0 for n in alive})
    for topic in topics.values():
        for part in topic["partitions"]:
            for replica in part["replicas"]:
                if replica["node_id"] in load:
                    load[replica["node_id"]] += 1
                    if replica["replica_id"] == part["leader"]:
                        leads[replica["node_id"]] += 1
    placements = []
    for _ in range(count):
        leader = min(alive, key=lambda n: (leads[n], load[n], n))
        chosen = [leader]
        while len(chosen) < rf:
            disks = {storage_id(alive[n]) for n in chosen}
            rest = [n for n in alive if n not in chosen]
            chosen.append(min(rest, key=lambda n: (storage_id(alive[n]) in disks, load[n], n)))
        for n in chosen:
            load[n] += 1
        leads[leader] += 1
        placements.append(
            [{"replica_id": new_id(), "node_id": n, "storage_id": storage_id(alive[n])} for n in chosen]
        )
    return placements


ray_node = st.builds(
    lambda i, disk, labelled: {
        "NodeID": f"n{i}",
        "NodeManagerAddress": f"10.0.0.{disk}",
        "Labels": {"raykafka-storage": f"disk-{disk}"} if labelled else {},
        "Alive": True,
    },
    st.integers(0, 7),
    st.integers(0, 3),
    st.booleans(),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(ray_node, min_size=1, max_size=6, unique_by=lambda n: n["NodeID"]),
    st.lists(st.tuples(st.integers(1, 6), st.integers(1, 3)), min_size=1, max_size=4),
)
def test_the_same_placements_as_the_topic_manager_has_made(ray_nodes, requests):
    """Topics created one after another (each placement sees the replicas of the ones before)."""
    alive = {n["NodeID"]: n for n in ray_nodes}
    live = {n: Node.from_ray(entry) for n, entry in alive.items()}
    metadata, old_topics = ClusterMetadata(), {}
    new_ids, old_ids = ids(), ids()
    for i, (count, rf) in enumerate(requests):
        try:
            expected = old_place(old_topics, alive, count, rf, old_ids)
        except InvalidConfig:
            with pytest.raises(InvalidConfig):
                place(metadata, live, count, rf, new_ids)
            continue
        got = place(metadata, live, count, rf, new_ids)
        assert [[(r.replica_id, r.node_id, r.storage_id) for r in p] for p in got] == [
            [(r["replica_id"], r["node_id"], r["storage_id"]) for r in p] for p in expected
        ]
        decision = create_topic(
            metadata, f"t{i}", count, rf, None, live, now_ms=0, topic_id="x", new_replica_id=ids(f"t{i}-")
        )
        metadata = decision.metadata
        old_topics[f"t{i}"] = {
            "partitions": [
                {
                    "leader": p.leader,
                    "replicas": [{"replica_id": r.replica_id, "node_id": r.node_id} for r in p.replicas],
                }
                for p in metadata.topics[f"t{i}"].partitions
            ]
        }


def test_replicas_and_leaders_spread_over_distinct_disks():
    live = nodes("n1:disk-a", "n2:disk-a", "n3:disk-b", "n4:disk-c")
    placements = place(ClusterMetadata(), live, 4, 3, ids())
    for replicas in placements:
        assert len({r.node_id for r in replicas}) == 3
        assert len({r.storage_id for r in replicas}) == 3  # three disks exist: never two copies on one
    assert Counter(p[0].node_id for p in placements) == Counter({"n1": 1, "n2": 1, "n3": 1, "n4": 1})
    # every partition keeps a copy on each disk; disk-a's copies alternate between its two nodes
    assert Counter(r.node_id for p in placements for r in p) == Counter({"n1": 2, "n2": 2, "n3": 4, "n4": 4})


def test_two_copies_share_a_disk_only_when_there_are_fewer_disks_than_replicas():
    placements = place(ClusterMetadata(), nodes("n1:disk-a", "n2:disk-a", "n3:disk-b"), 1, 3, ids())
    assert sorted(r.storage_id for r in placements[0]) == ["disk-a", "disk-a", "disk-b"]


def test_labelled_broker_nodes_are_preferred_and_too_few_is_refused():
    live = {**nodes("n1", "n2"), **nodes("head", labelled=False)}
    placements = place(ClusterMetadata(), live, 3, 2, ids())
    assert all(r.node_id != "head" for p in placements for r in p)
    with pytest.raises(
        InvalidConfig, match="replication_factor=3 needs that many alive Ray nodes; 2 are alive"
    ):
        place(ClusterMetadata(), live, 1, 3, ids())
    with pytest.raises(InvalidConfig, match="at least 1"):
        place(ClusterMetadata(), live, 1, 0, ids())


def test_node_from_ray_takes_the_label_else_the_address():
    labelled = Node.from_ray(
        {"NodeID": "x", "NodeManagerAddress": "10.0.0.1", "Labels": {"raykafka-storage": "d"}}
    )
    plain = Node.from_ray({"NodeID": "y", "NodeManagerAddress": "10.0.0.2", "Labels": {}})
    assert labelled == Node("x", "d", True) and plain == Node("y", "10.0.0.2", False)
