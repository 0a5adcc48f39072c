"""Re-placement: a replica whose node is gone moves to a live node with the same disk."""

from __future__ import annotations

from raykafka.control import Replica, StopReplica, replace_lost_replicas

from .builders import cluster, nodes, partition, topic


def test_a_lost_follower_moves_to_its_disk_with_a_new_generation_and_epoch():
    metadata = cluster(topic("t", partition(epoch=3)))
    live = {**nodes("n1", "n3"), **nodes("m2:disk-n2")}  # n2 came back as m2
    decision = replace_lost_replicas(metadata, live)
    part = decision.metadata.topics["t"].partitions[0]
    assert part.replica("b") == Replica("b", "m2", "disk-n2", 1)
    assert part.leader_epoch == 4  # the leader learns the new actor in a new term
    assert decision.effects == (StopReplica("t", 0, Replica("b", "n2", "disk-n2", 0)),)


def test_a_lost_leader_moves_without_a_new_epoch():
    metadata = cluster(topic("t", partition(epoch=3)))
    decision = replace_lost_replicas(metadata, {**nodes("n2", "n3"), **nodes("m1:disk-n1")})
    part = decision.metadata.topics["t"].partitions[0]
    assert part.replica("a").node_id == "m1" and part.leader_epoch == 3


def test_no_spare_disk_no_move_and_never_onto_a_node_holding_the_partition():
    metadata = cluster(
        topic("t", partition(placement=(("a", "n1"), ("b", "n2")), storage=lambda n: "shared"))
    )
    # n1 gone; the only other node with the disk already holds b
    assert replace_lost_replicas(metadata, nodes("n2:shared")).actions == ()
    assert replace_lost_replicas(metadata, nodes("n2:shared", "n4:other")).actions == ()
    moved = replace_lost_replicas(metadata, nodes("n2:shared", "n5:shared")).metadata
    assert moved.topics["t"].partitions[0].replica("a").node_id == "n5"


def test_topics_being_deleted_stay_put():
    metadata = cluster(topic("t", partition(), deleting=True))
    assert replace_lost_replicas(metadata, nodes("m1:disk-n1")).actions == ()
