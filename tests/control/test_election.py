"""Election: first live in-sync replica, epoch above everything seen, the failed leader out of the ISR."""

from __future__ import annotations

from raykafka.control import DOWN, GONE, ReplicaReport
from raykafka.control.election import choose_leader, elect, next_epoch

from .builders import follower, nodes, partition, unknown

LIVE = nodes("n1", "n2", "n3")


def test_the_first_live_in_sync_replica_leads_under_the_next_epoch():
    part = partition(epoch=4, isr=("a", "b", "c"))
    new = elect(part, {"a": DOWN, "b": follower(4), "c": follower(4)}, LIVE)
    assert (new.leader, new.leader_epoch, new.isr) == ("b", 5, ("b", "c"))


def test_never_outside_the_isr_and_never_a_replica_that_cannot_lead():
    part = partition(epoch=1, isr=("a", "b"))
    failed_disk = ReplicaReport("follower", 1, log_dir_ok=False)
    assert elect(part, {"a": DOWN, "b": failed_disk, "c": follower(1)}, LIVE) is None  # c is not in sync
    assert elect(part, {"a": DOWN, "b": GONE, "c": follower(1)}, LIVE) is None
    assert elect(part, {"a": DOWN, "c": follower(1)}, LIVE) is None  # no news of b: not live
    assert elect(part, {"a": DOWN, "b": follower(1)}, nodes("n1", "n3")) is None  # b's node is gone


def test_a_replica_that_kept_its_role_is_preferred_to_one_that_restarted():
    part = partition(epoch=3, isr=("a", "b", "c"))
    seen = {"a": DOWN, "b": unknown(3), "c": follower(3)}
    assert choose_leader(part, seen, LIVE, exclude="a") == "c"
    assert elect(part, {"a": DOWN, "b": unknown(3)}, LIVE).leader == "b"  # the only one: it leads


def test_the_new_epoch_is_above_any_a_replica_reports():
    part = partition(epoch=2)
    assert next_epoch(part, {"a": DOWN, "b": follower(7), "c": unknown(1)}) == 8
    assert elect(part, {"a": DOWN, "b": follower(7)}, LIVE).leader_epoch == 8
