"""The pure partition assignors: Kafka's documented examples, and properties of every strategy.

No Ray: ``raykafka.groups.assignors`` is plain computation, so these run in well under
a few seconds.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raykafka.groups.assignors import STRATEGIES, assign, moved
from raykafka.types import TopicPartition

STICKY = "cooperative-sticky"
TOPICS = ["t0", "t1", "t2", "t3"]
MEMBER_IDS = [f"m{i}" for i in range(10)]

Assignment = Mapping[str, Collection[TopicPartition]]


def tp(topic: str, partition: int) -> TopicPartition:
    return TopicPartition(topic, partition)


def as_lists(assignment: Assignment) -> dict[str, list[tuple[str, int]]]:
    """Readable, order-independent form for exact comparisons."""
    return {m: sorted((p.topic, p.partition) for p in tps) for m, tps in assignment.items()}


def all_partitions(
    subscriptions: Mapping[str, Collection[str]], counts: Mapping[str, int]
) -> set[TopicPartition]:
    topics = {t for ts in subscriptions.values() for t in ts if t in counts}
    return {tp(t, p) for t in topics for p in range(counts[t])}


def check_valid(
    result: dict[str, set[TopicPartition]],
    subscriptions: Mapping[str, Collection[str]],
    counts: Mapping[str, int],
) -> None:
    """Every partition of a subscribed topic exactly once, to a subscriber; nothing else."""
    assert set(result) == set(subscriptions)
    seen: list[TopicPartition] = [p for tps in result.values() for p in tps]
    assert len(seen) == len(set(seen)), "a partition was assigned twice"
    assert set(seen) == all_partitions(subscriptions, counts)
    for member, tps in result.items():
        assert all(p.topic in subscriptions[member] for p in tps)
        assert all(p.offset is None for p in tps)


def loads(result: Assignment, members: Collection[str] | None = None) -> list[int]:
    return [len(result[m]) for m in (result if members is None else members)]


# --- generators -----------------------------------------------------------------------------

members_st = st.lists(st.sampled_from(MEMBER_IDS), min_size=1, max_size=7, unique=True)
# Topic -> count; some subscribed topics are left out (not created yet), some have 0 partitions.
counts_st = st.dictionaries(st.sampled_from(TOPICS), st.integers(0, 13), max_size=len(TOPICS))
topic_sets_st = st.lists(st.sampled_from(TOPICS), max_size=len(TOPICS), unique=True)


@st.composite
def homogeneous(draw: st.DrawFn) -> tuple[dict[str, list[str]], dict[str, int]]:
    topics = draw(topic_sets_st)
    return {m: list(topics) for m in draw(members_st)}, draw(counts_st)


@st.composite
def heterogeneous(draw: st.DrawFn) -> tuple[dict[str, list[str]], dict[str, int]]:
    members = draw(st.lists(st.sampled_from(MEMBER_IDS), max_size=7, unique=True))
    return {m: draw(topic_sets_st) for m in members}, draw(counts_st)


# Garbage an assignor must survive in `current`: gone members, gone or unsubscribed topics,
# out-of-range partitions, duplicates across members, offsets, and things that are not
# TopicPartitions at all.
garbage_tp_st = st.one_of(
    st.builds(TopicPartition, st.sampled_from([*TOPICS, "gone"]), st.integers(0, 16)),
    st.builds(TopicPartition, st.sampled_from(TOPICS), st.integers(0, 16), st.integers(0, 99)),
    st.sampled_from([None, ("t0", 0), "t0-0", 7]),
)
current_st = st.dictionaries(
    st.sampled_from([*MEMBER_IDS, "gone-member"]),
    st.one_of(st.lists(garbage_tp_st, max_size=12), st.none()),
    max_size=8,
)


# --- exact examples -------------------------------------------------------------------------


def test_range_kafka_doc_example():
    # RangeAssignor javadoc: C0, C1 both on t0, t1, three partitions each.
    result = assign("range", {"C0": ["t0", "t1"], "C1": ["t0", "t1"]}, {"t0": 3, "t1": 3})
    assert as_lists(result) == {
        "C0": [("t0", 0), ("t0", 1), ("t1", 0), ("t1", 1)],
        "C1": [("t0", 2), ("t1", 2)],
    }


def test_range_extras_go_to_lowest_ids_and_unsubscribed_members_are_skipped():
    subs = {"b": ["t"], "a": ["t"], "c": ["t", "u"], "d": ["u"]}
    result = assign("range", subs, {"t": 7, "u": 3})
    assert as_lists(result) == {
        "a": [("t", 0), ("t", 1), ("t", 2)],
        "b": [("t", 3), ("t", 4)],
        "c": [("t", 5), ("t", 6), ("u", 0), ("u", 1)],
        "d": [("u", 2)],
    }


def test_roundrobin_kafka_doc_example_homogeneous():
    # RoundRobinAssignor javadoc, first example.
    result = assign("roundrobin", {"C0": ["t0", "t1"], "C1": ["t0", "t1"]}, {"t0": 3, "t1": 3})
    assert as_lists(result) == {
        "C0": [("t0", 0), ("t0", 2), ("t1", 1)],
        "C1": [("t0", 1), ("t1", 0), ("t1", 2)],
    }


def test_roundrobin_kafka_doc_example_heterogeneous():
    # RoundRobinAssignor javadoc, second example: the dealer skips unsubscribed members
    # and carries on across topics rather than restarting at C0.
    subs = {"C0": ["t0"], "C1": ["t0", "t1"], "C2": ["t0", "t1", "t2"]}
    result = assign("roundrobin", subs, {"t0": 1, "t1": 2, "t2": 3})
    assert as_lists(result) == {
        "C0": [("t0", 0)],
        "C1": [("t1", 0)],
        "C2": [("t1", 1), ("t2", 0), ("t2", 1), ("t2", 2)],
    }


def test_sticky_fresh_join_and_leave():
    subs = {"C0": ["t0", "t1"], "C1": ["t0", "t1"]}
    counts = {"t0": 3, "t1": 3}
    first = assign(STICKY, subs, counts)
    assert loads(first) == [3, 3]

    joined = assign(STICKY, {**subs, "C2": ["t0", "t1"]}, counts, current=first)
    assert loads(joined) == [2, 2, 2]
    assert moved(first, joined) == joined["C2"]
    assert all(joined[m] <= first[m] for m in subs)

    left = assign(STICKY, {"C0": ["t0", "t1"], "C2": ["t0", "t1"]}, counts, current=joined)
    assert moved(joined, left) == joined["C1"]
    assert left["C0"] >= joined["C0"] and left["C2"] >= joined["C2"]


def test_sticky_garbage_current_is_ignored_and_duplicates_go_to_the_lowest_id():
    subs = {"a": ["t"], "b": ["t"], "c": ["t", "u"]}
    current = {
        "b": [tp("t", 0), tp("t", 1), tp("t", 9), tp("gone", 0), tp("u", 0), None],  # b is not on u
        "a": [TopicPartition("t", 1, offset=42), ("t", 2)],  # duplicate t1 with b; a tuple
        "c": "t-2",
        "gone-member": [tp("t", 2)],
    }
    result = assign(STICKY, subs, {"t": 3, "u": 1}, current=current)
    # Kept: a's t1 (lowest id wins the duplicate), b's t0. Free: u0 (only c can take it,
    # so it goes first), then t2 to the least loaded of a, b, c -- a tie broken by id.
    assert as_lists(result) == {"a": [("t", 1), ("t", 2)], "b": [("t", 0)], "c": [("u", 0)]}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_edge_inputs(strategy: str):
    assert assign(strategy, {}, {"t": 3}) == {}
    # Topics not created yet, or with no partitions, assign nothing; members still appear.
    assert assign(strategy, {"a": ["missing", "empty"], "b": []}, {"empty": 0}) == {"a": set(), "b": set()}
    # More members than partitions: someone gets nothing, the partition is still assigned once.
    result = assign(strategy, {"a": ["t"], "b": ["t"], "c": ["t"]}, {"t": 1})
    assert sorted(loads(result)) == [0, 0, 1]


def test_unknown_strategy_names_the_valid_ones():
    with pytest.raises(ValueError) as info:
        assign("sticky-ish", {"a": ["t"]}, {"t": 1})
    for name in STRATEGIES:
        assert name in str(info.value)


def test_bad_inputs_are_rejected():
    with pytest.raises(TypeError, match="not a str"):
        assign("range", {"a": "orders"}, {"orders": 1})
    with pytest.raises(ValueError, match="orders"):
        assign("range", {"a": ["orders"]}, {"orders": -1})


def test_moved():
    before = {"a": [tp("t", 0), tp("t", 1)], "b": [tp("t", 2)], "gone": [tp("t", 3)], "dup": [tp("t", 0)]}
    after = {"a": {tp("t", 1), tp("t", 2)}, "b": {tp("t", 0), tp("t", 4)}, "c": {tp("t", 3)}}
    # t0 left both of its (duplicate) owners; t2 changed owner; t3 went from a gone member
    # to c. t1 stayed; t4 is new (no previous owner) and is not a move.
    assert moved(before, after) == {tp("t", 0), tp("t", 2), tp("t", 3)}
    # One of several stale owners keeping the partition is not a move.
    assert moved({"a": [tp("t", 0)], "b": [tp("t", 0)]}, {"b": [tp("t", 0)]}) == set()
    assert moved(after, after) == set()


# --- properties of every strategy -----------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
@given(case=heterogeneous(), current=current_st)
def test_valid_whatever_the_input(strategy: str, case, current):
    subs, counts = case
    check_valid(assign(strategy, subs, counts, current=current), subs, counts)


@pytest.mark.parametrize("strategy", STRATEGIES)
@given(case=heterogeneous(), current=current_st, seed=st.randoms(use_true_random=False))
def test_deterministic_whatever_the_input_order(strategy: str, case, current, seed: random.Random):
    subs, counts = case

    def shuffled_dict(d: dict) -> dict:
        items = list(d.items())
        seed.shuffle(items)
        return dict(items)

    def shuffled_list(xs):
        xs = list(xs or [])
        seed.shuffle(xs)
        return xs

    expected = assign(strategy, subs, counts, current=current)
    again = assign(
        strategy,
        shuffled_dict({m: set(shuffled_list(ts)) for m, ts in subs.items()}),
        shuffled_dict(counts),
        current=shuffled_dict({m: shuffled_list(tps) for m, tps in current.items()}),
    )
    assert again == expected


@pytest.mark.parametrize("strategy", ["roundrobin", STICKY])
@given(case=homogeneous(), current=current_st)
def test_balanced_when_subscriptions_are_homogeneous(strategy: str, case, current):
    subs, counts = case
    result = assign(strategy, subs, counts, current=current)
    assert max(loads(result)) - min(loads(result)) <= 1


@given(case=homogeneous())
def test_range_is_balanced_per_topic_lowest_ids_first(case):
    subs, counts = case
    result = assign("range", subs, counts)
    members = sorted(subs)
    for topic in {t for ts in subs.values() for t in ts if t in counts}:
        per_topic = [sum(1 for p in result[m] if p.topic == topic) for m in members]
        assert per_topic == sorted(per_topic, reverse=True)
        assert per_topic[0] - per_topic[-1] <= 1


# --- cooperative-sticky: stickiness ---------------------------------------------------------


def valid_current(draw: st.DrawFn, subs: dict[str, list[str]], counts: dict[str, int]) -> dict[str, list]:
    """A clean previous assignment: each partition owned by at most one subscriber."""
    current: dict[str, list[TopicPartition]] = {m: [] for m in subs}
    for p in sorted(all_partitions(subs, counts), key=lambda p: (p.topic, p.partition)):
        owners = [m for m in sorted(subs) if p.topic in subs[m]]
        owner = draw(st.sampled_from([None, *owners]))
        if owner is not None:
            current[owner].append(p)
    return current


@st.composite
def homogeneous_with_current(draw: st.DrawFn):
    subs, counts = draw(homogeneous())
    return subs, counts, valid_current(draw, subs, counts)


@given(case=homogeneous_with_current())
def test_sticky_moves_the_minimum_any_balanced_assignment_needs(case):
    subs, counts, current = case
    result = assign(STICKY, subs, counts, current=current)
    n, m = len(all_partitions(subs, counts)), len(subs)
    quota, extras = divmod(n, m)
    held = [len(current[member]) for member in subs]
    # In any balanced result a member keeps at most quota + 1 of what it holds, and only
    # `extras` members can be above quota: everything else it holds must move.
    most_kept = sum(min(h, quota) for h in held) + min(extras, sum(h > quota for h in held))
    assert len(moved(current, result)) == sum(held) - most_kept


@given(case=homogeneous(), newcomer=st.sampled_from(["new", "a-new", "zz-new"]))
def test_sticky_join_moves_only_to_the_newcomer_just_enough(case, newcomer: str):
    subs, counts = case
    before = assign(STICKY, subs, counts)
    topics = next(iter(subs.values()))
    after = assign(STICKY, {**subs, newcomer: topics}, counts, current=before)
    n, m = len(all_partitions(subs, counts)), len(subs) + 1
    assert moved(before, after) == after[newcomer]
    assert n // m <= len(after[newcomer]) <= -(-n // m)
    assert all(after[member] <= before[member] for member in subs)
    assert max(loads(after)) - min(loads(after)) <= 1
    # Taken from the most loaded: every member that gave held at least as many as any that did not.
    donors = [member for member in subs if after[member] != before[member]]
    keepers = [member for member in subs if after[member] == before[member]]
    if donors and keepers:
        assert min(loads(before, donors)) >= max(loads(before, keepers))


@given(case=homogeneous(), data=st.data())
def test_sticky_leave_moves_only_the_leavers_partitions(case, data):
    subs, counts = case
    if len(subs) < 2:
        return
    before = assign(STICKY, subs, counts)
    leaver = data.draw(st.sampled_from(sorted(subs)))
    remaining = {m: ts for m, ts in subs.items() if m != leaver}
    after = assign(STICKY, remaining, counts, current=before)
    assert moved(before, after) == before[leaver]
    assert all(after[member] >= before[member] for member in remaining)


@given(case=heterogeneous(), current=current_st)
def test_sticky_is_idempotent(case, current):
    subs, counts = case
    first = assign(STICKY, subs, counts, current=current)
    assert assign(STICKY, subs, counts, current=first) == first


@given(case=heterogeneous(), current=current_st)
def test_sticky_heterogeneous_is_locally_balanced(case, current):
    subs, counts = case
    result = assign(STICKY, subs, counts, current=current)
    # Heterogeneous balance is best effort: no single partition can move to a subscriber
    # of its topic holding two or more fewer (Kafka's old sticky "isBalanced" criterion).
    for owner, tps in result.items():
        for p in tps:
            for other in subs:
                if p.topic in subs[other]:
                    assert len(result[other]) >= len(result[owner]) - 1


@settings(max_examples=50)
@given(case=heterogeneous())
def test_sticky_ignores_members_with_nothing_live_to_read(case):
    subs, counts = case
    base = assign(STICKY, subs, counts)
    # Adding members that subscribe to nothing live changes nothing.
    after = assign(STICKY, {**subs, "idle": ["not-created"]}, counts, current=base)
    assert after == {**base, "idle": set()}
