"""Fault scenarios on the cluster model, each one a rule of reconciliation that a plausible
simplification would break (the test fails without it -- noted for each)."""

from __future__ import annotations

import pytest

from raykafka.control import BecomeLeader

from .cluster_model import Cluster, Violation


def settled(**kw) -> Cluster:
    cluster = Cluster(partitions=1, **kw)
    cluster.settle(rounds=8)
    return cluster


def roles(cluster: Cluster):
    part = cluster.part(0)
    leader = cluster.current(0, part.leader)
    followers = [cluster.current(0, r) for r in part.followers]
    return part, leader, followers


def acknowledge(cluster: Cluster, records: int) -> None:
    cluster.produce(0, records)
    for _ in range(6):
        cluster.replicate()
    assert len(cluster.committed[0]) >= records


def test_a_leader_that_lost_its_unflushed_tail_hands_over_to_a_follower_that_kept_it():
    """Power loss of the leader: records every in-sync replica acknowledged are only in the
    followers' logs now. Leading again under a new epoch (today's rule) makes the followers
    truncate them away; reconciliation elects a follower that kept its role instead."""
    cluster = settled()
    part, leader, _ = roles(cluster)
    acknowledge(cluster, 4)
    leader.truncate(1)  # the page cache is gone, and the process restarts
    leader.start()
    cluster.manager_round()
    new = cluster.part(0)
    assert new.leader != part.leader and new.leader_epoch == part.leader_epoch + 1
    assert part.leader not in new.isr
    cluster.settle()
    cluster.assert_converged()
    assert (
        cluster.current(0, part.leader).log == cluster.committed[0] + cluster.current(0, new.leader).log[4:]
    )


def test_a_restarted_leader_leads_again_only_under_a_new_epoch():
    """A restarted leader's high watermark starts at 0; under its old epoch a lagging follower
    would rejoin the ISR at any log end past the old epoch's start (KAFKA-7128) and could be
    elected without acknowledged records. Under a new epoch it must reach the log end first."""
    cluster = settled()
    part, leader, (f1, f2) = roles(cluster)
    f2.frozen = True
    acknowledge(cluster, 4)  # f2 is taken out of the ISR; f1 and the leader hold 4 records
    assert f2.replica_id not in cluster.part(0).isr
    f2.frozen = False
    f1.frozen = True  # no other in-sync replica answers: the restarted leader must lead again
    leader.start()  # a process restart: its log is intact
    cluster.manager_round()
    assert cluster.part(0).leader == part.leader and cluster.part(0).leader_epoch == part.leader_epoch + 1
    cluster.replicate()  # f2 copies 2 of the 4 records; f1 (frozen) leaves the ISR
    assert cluster.part(0).isr == (part.leader,)
    cluster.lose_node(cluster.nodes[leader.node_id])
    for _ in range(4):
        cluster.manager_round()  # f2 lacks acknowledged records: it must not lead; offline instead
    assert cluster.part(0).leader == part.leader and cluster.part(0).isr == (part.leader,)
    cluster.return_node("s0")  # the leader's disk is back (a new node id): it leads again
    f1.frozen = False
    cluster.settle()
    cluster.assert_converged()
    assert cluster.part(0).leader == part.leader and set(cluster.part(0).isr) == set(part.replica_ids)


def test_a_follower_re_created_while_its_leader_was_unreachable_is_replicated_to():
    """The leader replicates to the actor handles it was given: a follower's new actor reaches it
    only in a new epoch, also when the leader could not be asked whether it leads."""
    cluster = settled()
    _, leader, (f1, _) = roles(cluster)
    leader.frozen = True  # one missed check: not down yet, but not known to lead either
    del cluster.actors[(f1.replica_id, f1.generation)]  # dead for good: re-created
    cluster.manager_round()
    assert (f1.replica_id, f1.generation) in cluster.actors
    leader.frozen = False
    cluster.settle()
    acknowledge(cluster, 2)
    cluster.assert_converged()
    assert f1.replica_id in cluster.part(0).isr


def test_an_election_whose_persist_failed_is_not_acted_on_and_happens_later():
    cluster = settled()
    part, leader, _ = roles(cluster)
    cluster.lose_node(cluster.nodes[leader.node_id])
    for _ in range(3):
        cluster.persist_fault = "clean"
        decision = cluster.manager_round()
        assert cluster.part(0) == part  # memory kept the old metadata, like the file
        assert not cluster.leaders_by_epoch.get((0, part.leader_epoch + 1))  # nobody was told
    assert decision.persist is not None
    decision = cluster.manager_round()
    assert cluster.part(0).leader != part.leader
    assert any(
        isinstance(a, BecomeLeader) for a in decision.effects
    )  # abandoned commands are not "in flight"


def test_a_deposed_leader_is_fenced_and_cannot_shrink_the_isr():
    cluster = settled()
    part, leader, _ = roles(cluster)
    leader.frozen = True
    for _ in range(4):
        cluster.manager_round()
    new = cluster.part(0)
    assert new.leader != part.leader
    leader.frozen = False  # it still believes it leads the old epoch
    assert leader.leading is not None
    cluster.replicate()
    assert leader.leading is None and leader.role == "unknown"  # fenced: deposed
    assert cluster.part(0).isr == new.isr or set(cluster.part(0).isr) <= set(new.isr)
    cluster.settle()
    cluster.assert_converged()


def test_the_model_catches_a_leader_without_acknowledged_records():
    """The property tests' data check is live: electing outside the ISR is caught."""
    cluster = settled()
    _, _, (f1, _) = roles(cluster)
    acknowledge(cluster, 2)
    f1.truncate(0)
    with pytest.raises(Violation, match="lacks acknowledged records"):
        cluster.apply(BecomeLeader("t", 0, f1.replica_id, 99, (), (f1.replica_id,)))


def test_a_write_that_failed_after_reaching_the_file_is_overwritten_before_anything_is_acted_on():
    """A write can fail after reaching the file. Until a write succeeds, the shell writes memory
    again before acting on any decision, even an unchanged one; else a restart could read an
    ISR holding a follower the leader has dropped since (found by the property test)."""
    cluster = settled()
    _, leader, (f1, f2) = roles(cluster)
    L = leader.replica_id
    cluster.persist_fault = "written"
    assert cluster.request_alter_isr(leader, [L, f1.replica_id]) == "failed"  # drop f2: in the file only
    cluster.start_manager()  # memory now drops f2 too; the leader still counts it (its request failed)
    cluster.persist_fault = "written"
    assert cluster.request_alter_isr(leader, [L, f2.replica_id]) == "failed"  # drop f1: in the file only
    # the leader retries dropping f2: nothing changes in memory, but the file must be rewritten
    assert cluster.request_alter_isr(leader, [L, f1.replica_id]) == "ok"
    leader.leading.tracker.remove(f2.replica_id)
    cluster.start_manager()
    assert cluster.part(0).isr == (L, f1.replica_id)
    cluster.check()  # the ISR the leader counts holds the recorded one
