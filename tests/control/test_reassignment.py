"""Reassignment: add, wait until in sync, drop -- never leaving no in-sync replica unless allowed."""

from __future__ import annotations

import pytest

from raykafka.control import DestroyReplica, Replica, alter_isr, finish_reassignment, start_reassignment
from raykafka.errors import InvalidReplicaAssignment

from .builders import cluster, ids, nodes, partition, topic

LIVE = nodes("n1", "n2", "n3", "n4", "n5")


def meta(config=None, **kw):
    return cluster(topic("t", partition(**kw), config=config))


def part_of(metadata):
    return metadata.topics["t"].partitions[0]


def test_add_wait_drop():
    metadata = meta(epoch=2)
    decision, move = start_reassignment(metadata, "t", 0, ["n1", "n4", "n5"], LIVE, ids("new"))
    part = part_of(decision.metadata)
    assert move.added == ("new0", "new1")
    assert part.replica("new1") == Replica("new1", "n5", "disk-n5")
    assert part.leader_epoch == 3 and part.isr == ("a", "b", "c")  # new replicas are not in sync yet
    assert not move.in_sync(decision.metadata)
    caught_up = alter_isr(decision.metadata, "t", 0, 3, ["a", "b", "c", "new0", "new1"]).metadata
    assert move.in_sync(caught_up)
    done = finish_reassignment(caught_up, move)
    part = part_of(done.metadata)
    assert part.replica_ids == ("a", "new0", "new1")
    assert (part.leader, part.leader_epoch, part.isr) == ("a", 4, ("a", "new0", "new1"))
    assert [a.replica.replica_id for a in done.effects if isinstance(a, DestroyReplica)] == ["b", "c"]


def test_a_dropped_leader_hands_over_to_the_first_remaining_in_sync_replica():
    metadata = meta(epoch=0)
    decision, move = start_reassignment(metadata, "t", 0, ["n2", "n3"], LIVE)
    assert decision.actions == ()  # nothing to add
    part = part_of(finish_reassignment(metadata, move).metadata)
    assert (part.leader, part.leader_epoch, part.isr) == ("b", 1, ("b", "c"))


def test_bad_targets_are_refused_and_nothing_changes():
    metadata = meta()
    with pytest.raises(InvalidReplicaAssignment, match="distinct node ids"):
        start_reassignment(metadata, "t", 0, ["n1", "n1"], LIVE)
    with pytest.raises(InvalidReplicaAssignment, match=r"nodes \['n9'\] are not alive"):
        start_reassignment(metadata, "t", 0, ["n9"], LIVE)


def test_leaving_no_in_sync_replica_is_refused_unless_unclean_election_is_enabled():
    metadata = meta(isr=("a",))  # only a is in sync; b and c lag
    with pytest.raises(InvalidReplicaAssignment, match="no in-sync replica is on nodes"):
        start_reassignment(metadata, "t", 0, ["n2", "n3"], LIVE)  # nothing to add that could copy a
    # replicas to add copy the leader first: allowed to start, and checked again at the end
    decision, move = start_reassignment(metadata, "t", 0, ["n4", "n5"], LIVE)
    with pytest.raises(InvalidReplicaAssignment):
        finish_reassignment(decision.metadata, move)  # they never caught up
    # no leader to copy from: new replicas would copy nothing
    with pytest.raises(InvalidReplicaAssignment):
        start_reassignment(meta(isr=("a",), leader=None), "t", 0, ["n4"], LIVE)
    unclean = meta(isr=("a",), config={"unclean.leader.election.enable": "true"})
    _, move = start_reassignment(unclean, "t", 0, ["n2", "n3"], LIVE)
    part = part_of(finish_reassignment(unclean, move).metadata)
    assert (part.leader, part.isr) == ("b", ("b",))  # the unclean leader is the whole ISR, never outside it
