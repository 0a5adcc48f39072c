"""Reconciliation, scenario by scenario: each difference between the metadata and what replicas
report is repaired, and nothing is done on the strength of silence.

Each scenario fails on today's TopicManager where the issue says so: it never re-sends a
become_leader that failed or a become_follower that was missed, counts any answer as a
working leader, and changes a leader in memory when persisting it failed.
"""

from __future__ import annotations

import time

from raykafka.control import (
    DOWN,
    GONE,
    BecomeFollower,
    BecomeLeader,
    CreateReplica,
    DestroyReplica,
    Health,
    Persist,
    Reconciler,
    Replica,
    ReplicaReport,
    StopReplica,
    delete_topic,
    partition_health,
)

from .builders import cluster, follower, leader, nodes, partition, topic, unknown

LIVE = nodes("n1", "n2", "n3")


def meta(**kw):
    return cluster(topic("t", partition(**kw)))


def part_of(metadata):
    return metadata.topics["t"].partitions[0]


def kinds(decision):
    return [type(a).__name__ for a in decision.actions]


def test_a_healthy_partition_needs_nothing():
    seen = {"a": leader(3), "b": follower(3), "c": follower(3)}
    decision = Reconciler().reconcile(meta(epoch=3), LIVE, seen, 0)
    assert decision.actions == ()
    assert partition_health(part_of(decision.metadata), seen, LIVE) is Health.HEALTHY


def test_a_failed_become_leader_is_sent_again_until_acknowledged():
    metadata, rec = meta(epoch=3), Reconciler()
    seen = {"a": follower(2), "b": follower(2), "c": follower(2)}  # a missed its promotion
    assert (
        partition_health(part_of(metadata), seen, LIVE) is Health.RECOVERING
    )  # it answers, but leads nothing
    first = rec.reconcile(metadata, LIVE, seen, 0)
    assert first.actions == (BecomeLeader("t", 0, "a", 3, ("b", "c"), ("a", "b", "c")),)
    assert rec.reconcile(metadata, LIVE, seen, 100).actions == ()  # in flight: not repeated
    rec.on_result(first.actions[0], ok=False)
    assert rec.reconcile(metadata, LIVE, seen, 200).actions == first.actions  # failed: sent again
    assert (
        rec.reconcile(metadata, LIVE, seen, 200 + 20_000).actions == first.actions
    )  # lost: after the timeout
    # acknowledged: now the followers are told
    seen["a"] = leader(3)
    followers = rec.reconcile(metadata, LIVE, seen, 30_000)
    assert followers.actions == (BecomeFollower("t", 0, "b", 3, "a"), BecomeFollower("t", 0, "c", 3, "a"))


def test_a_missed_become_follower_is_sent_again():
    metadata, rec = meta(epoch=3), Reconciler()
    seen = {"a": leader(3), "b": follower(3), "c": follower(2)}
    decision = rec.reconcile(metadata, LIVE, seen, 0)
    assert decision.actions == (BecomeFollower("t", 0, "c", 3, "a"),)
    rec.on_result(decision.actions[0], ok=True)  # the call returned, but c restarted right after
    seen["c"] = unknown(3)
    assert rec.reconcile(metadata, LIVE, seen, 500).actions == decision.actions


def test_nothing_is_sent_to_replicas_that_do_not_answer_or_cannot_store():
    metadata = meta(epoch=3)
    failed = ReplicaReport("follower", 2, log_dir_ok=False)
    seen = {"a": leader(3), "b": DOWN, "c": failed}
    assert Reconciler().reconcile(metadata, LIVE, seen, 0).actions == ()
    assert Reconciler().reconcile(metadata, LIVE, {}, 0).actions == ()  # no news at all: undecided


def test_a_leader_whose_log_directory_failed_is_replaced():
    metadata = meta(epoch=3)
    seen = {"a": ReplicaReport("leader", 3, log_dir_ok=False), "b": follower(3), "c": follower(3)}
    assert (
        partition_health(part_of(metadata), seen, LIVE) is Health.RECOVERING
    )  # it answers, but takes no write
    decision = Reconciler().reconcile(metadata, LIVE, seen, 0)
    part = part_of(decision.metadata)
    assert (part.leader, part.leader_epoch, part.isr) == ("b", 4, ("b", "c"))
    assert decision.actions[0] == Persist("t-0: leader a -> b, epoch 4")
    assert decision.effects == (BecomeLeader("t", 0, "b", 4, ("a", "c"), ("b", "c")),)


def test_a_down_leader_is_replaced_and_with_no_live_in_sync_replica_the_partition_waits():
    decision = Reconciler().reconcile(meta(epoch=3), LIVE, {"a": DOWN, "b": follower(3), "c": follower(3)}, 0)
    assert part_of(decision.metadata).leader == "b"
    lonely = meta(epoch=3, isr=("a",))
    seen = {"a": DOWN, "b": follower(3), "c": follower(3)}
    assert Reconciler().reconcile(lonely, LIVE, seen, 0).actions == ()  # never outside the ISR
    assert partition_health(part_of(lonely), seen, LIVE) is Health.OFFLINE


def test_a_restarted_leader_hands_over_to_a_replica_that_kept_its_role():
    """It may have lost an unflushed tail that its followers acknowledged (a power loss)."""
    decision = Reconciler().reconcile(
        meta(epoch=3), LIVE, {"a": unknown(3), "b": follower(3), "c": follower(3)}, 0
    )
    part = part_of(decision.metadata)
    assert (part.leader, part.leader_epoch, part.isr) == ("b", 4, ("b", "c"))


def test_a_restarted_leader_alone_leads_again_under_a_new_epoch():
    decision = Reconciler().reconcile(meta(epoch=3), LIVE, {"a": unknown(3), "b": DOWN, "c": unknown(3)}, 0)
    part = part_of(decision.metadata)
    assert (part.leader, part.leader_epoch) == ("a", 4)
    assert decision.effects == (BecomeLeader("t", 0, "a", 4, ("b", "c"), ("a", "b", "c")),)


def test_a_new_leader_that_never_led_this_epoch_is_told_without_a_new_one():
    """A new topic's replicas report no role and no epoch: epoch 0 is theirs to start."""
    decision = Reconciler().reconcile(
        meta(epoch=0), LIVE, {"a": unknown(-1), "b": unknown(-1), "c": unknown(-1)}, 0
    )
    assert decision.actions == (BecomeLeader("t", 0, "a", 0, ("b", "c"), ("a", "b", "c")),)


def test_metadata_behind_a_replica_moves_to_a_newer_epoch():
    decision = Reconciler().reconcile(meta(epoch=3), LIVE, {"a": leader(3), "b": follower(5)}, 0)
    assert part_of(decision.metadata).leader_epoch == 6


def test_replicas_without_an_actor_are_created_and_starting_ones_are_not_failed():
    rec = Reconciler(start_grace_ms=10_000)
    metadata = meta(epoch=0)
    first = rec.reconcile(metadata, LIVE, {"a": GONE, "b": GONE, "c": GONE}, 0)
    assert first.actions == tuple(
        CreateReplica("t", 0, r) for r in part_of(metadata).replicas
    )  # no new epoch
    # starting: silence is not a failure, no election, no second creation
    assert rec.reconcile(metadata, LIVE, {"a": DOWN, "b": DOWN, "c": DOWN}, 1_000).actions == ()
    # a reports; b and c are still starting
    assert kinds(rec.reconcile(metadata, LIVE, {"a": unknown(), "b": DOWN, "c": DOWN}, 2_000)) == [
        "BecomeLeader"
    ]
    # past the grace, b's silence counts again -- but it is a follower: nothing to do
    assert rec.reconcile(metadata, LIVE, {"a": leader(0), "b": DOWN, "c": DOWN}, 20_000).actions == ()


def test_a_replica_that_dies_starting_is_created_again_backing_off():
    rec = Reconciler(recreate_backoff_min_ms=500)
    metadata = meta(epoch=2)
    seen = {"a": leader(2), "b": follower(2), "c": GONE}
    creates = [t for t in range(0, 4_000, 100) if rec.reconcile(metadata, LIVE, seen, t).actions]
    assert creates[:3] == [0, 500, 1_500]  # 0.5 s, then 1 s between attempts
    seen["c"] = unknown()
    rec.reconcile(metadata, LIVE, seen, 4_000)  # it reports: the back-off starts over
    seen["c"] = GONE
    assert kinds(rec.reconcile(metadata, LIVE, seen, 4_100))[-1] == "CreateReplica"


def test_a_re_created_follower_gets_the_partition_a_new_epoch():
    metadata = meta(epoch=2)
    decision = Reconciler().reconcile(metadata, LIVE, {"a": leader(2), "b": follower(2), "c": GONE}, 0)
    assert part_of(decision.metadata).leader_epoch == 3
    assert kinds(decision) == [
        "Persist",
        "CreateReplica",
        "BecomeLeader",
    ]  # created before the leader learns it


def test_a_lost_node_s_replica_moves_to_its_disk_and_the_leader_is_replaced_first():
    metadata = meta(epoch=2)
    live = {**nodes("n2", "n3"), **nodes("m1:disk-n1")}  # n1 came back as m1
    decision = Reconciler().reconcile(metadata, live, {"a": DOWN, "b": follower(2), "c": follower(2)}, 0)
    part = part_of(decision.metadata)
    assert part.replica("a") == Replica("a", "m1", "disk-n1", 1)
    assert (part.leader, part.leader_epoch) == ("b", 3)
    assert kinds(decision) == ["Persist", "StopReplica", "CreateReplica", "BecomeLeader"]
    assert decision.actions[1] == StopReplica("t", 0, Replica("a", "n1", "disk-n1", 0))


def test_a_failed_persist_leaves_nothing_half_done():
    rec = Reconciler()
    metadata = meta(epoch=3)
    seen = {"a": DOWN, "b": follower(3), "c": follower(3)}
    decision = rec.reconcile(metadata, LIVE, seen, 0)
    assert decision.persist is not None
    rec.abandon(decision)  # the write failed: the shell keeps `metadata` and sends nothing
    assert rec.reconcile(metadata, LIVE, seen, 1).actions == decision.actions


def test_a_deleted_topic_s_replicas_are_destroyed_then_it_is_forgotten():
    rec = Reconciler()
    metadata = delete_topic(meta(), "t").metadata
    first = rec.reconcile(metadata, LIVE, {}, 0)
    assert first.actions == tuple(DestroyReplica("t", 0, r) for r in part_of(metadata).replicas)
    assert rec.reconcile(metadata, LIVE, {}, 1).actions == ()  # in flight
    for action in first.actions:
        rec.on_result(action, ok=action.replica.replica_id != "c")  # c's node is gone: best effort
    last = rec.reconcile(metadata, LIVE, {}, 2)
    assert last.actions == (Persist("topic 't' deleted"),)
    assert "t" not in last.metadata.topics


def test_thousands_of_healthy_partitions_reconcile_to_nothing_quickly():
    parts, seen = [], {}
    for p in range(10_000):
        a, b, c = f"a{p}", f"b{p}", f"c{p}"
        parts.append(partition(p, ((a, "n1"), (b, "n2"), (c, "n3")), leader=a, epoch=1))
        seen.update({a: leader(1), b: follower(1), c: follower(1)})
    metadata = cluster(topic("big", *parts))
    started = time.perf_counter()
    decision = Reconciler().reconcile(metadata, LIVE, seen, 0)
    elapsed = time.perf_counter() - started
    assert decision.actions == () and decision.metadata is metadata
    print(f"10,000 partitions x 3 replicas reconciled in {elapsed * 1000:.0f} ms")
