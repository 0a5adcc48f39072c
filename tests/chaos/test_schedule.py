"""The fault schedule: the same seed replays the same schedule; every kind comes in each round."""

from __future__ import annotations

import pytest

from raykafka.chaos.schedule import DURATIONS_S, FAULT_KINDS, make_schedule


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another():
    one = make_schedule(1234, 120, partitions=3)
    assert one == make_schedule(1234, 120, partitions=3)
    assert one != make_schedule(1235, 120, partitions=3)
    assert make_schedule(1234, 9, partitions=3) == one[:9]  # a short run is the long one's start


def test_every_kind_comes_once_in_each_round_of_the_deck():
    schedule = make_schedule(99, 3 * len(FAULT_KINDS), partitions=2)
    for start in range(0, len(schedule), len(FAULT_KINDS)):
        assert sorted(f.kind for f in schedule[start : start + len(FAULT_KINDS)]) == sorted(FAULT_KINDS)


def test_durations_pauses_and_targets_are_in_range():
    for spec in make_schedule(5, 200, partitions=3, pause_s=(0.5, 2.0)):
        low, high = DURATIONS_S.get(spec.kind, (0.0, 0.0))
        assert low <= spec.duration_s <= high
        assert 0.5 <= spec.pause_s <= 2.0
        assert 0 <= spec.partition < 3 and spec.pick >= 0
    assert all(
        3.0 <= f.duration_s <= 10.0 for f in make_schedule(5, 200, partitions=3) if f.kind == "node_freeze"
    )


def test_a_subset_of_kinds_and_bad_arguments():
    only = make_schedule(3, 10, partitions=1, kinds=("kill_leader", "kill_follower"))
    assert {f.kind for f in only} == {"kill_leader", "kill_follower"}
    with pytest.raises(ValueError):
        make_schedule(3, 10, partitions=1, kinds=("meteor",))
    with pytest.raises(ValueError):
        make_schedule(3, 10, partitions=0)
