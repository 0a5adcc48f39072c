"""Partition assignors: who in a consumer group reads which partition.

This module owns the *pure* computation of a group's target assignment -- the group
coordinator calls :func:`assign` server-side, as Kafka's KIP-848 coordinator does, and
ships the result to members. It knows nothing of Ray, members' liveness or offsets.

Strategies (names as in Kafka's ``partition.assignment.strategy``):

* ``range`` -- Kafka's ``RangeAssignor``: per topic, the members subscribed to it, sorted
  by id, get contiguous ranges; the first ``n % m`` get one extra. Balanced per topic only
  (with many topics the lowest ids carry the extras of every topic), as in Kafka.
* ``roundrobin`` -- Kafka's ``RoundRobinAssignor``: every partition, sorted by (topic,
  partition), is dealt in turn to the sorted members, skipping members not subscribed to
  its topic; the dealer does not restart per topic.
* ``cooperative-sticky`` -- Kafka's ``CooperativeStickyAssignor`` / KIP-848 ``uniform``:
  balanced and sticky, see :func:`_sticky`.

Every strategy assigns each partition of each subscribed topic to exactly one member
subscribed to its topic, and nothing else. Results never depend on dict or set iteration
order: members and partitions are always sorted first.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Mapping

from raykafka.types import TopicPartition

__all__ = ["STRATEGIES", "assign", "moved"]

STRATEGIES: tuple[str, ...] = ("range", "roundrobin", "cooperative-sticky")

# Internally a partition is a plain (topic, partition) tuple: it sorts, hashes fast and
# never carries an offset a caller's TopicPartition might have had.
_TP = tuple[str, int]
_Subs = dict[str, frozenset[str]]


def assign(
    strategy: str,
    subscriptions: Mapping[str, Collection[str]],
    partition_counts: Mapping[str, int],
    current: Mapping[str, Collection[TopicPartition]] | None = None,
) -> dict[str, set[TopicPartition]]:
    """The target assignment of the group's partitions to its members.

    ``subscriptions`` maps member id -> subscribed topic names; ``partition_counts`` maps
    topic -> partition count (a subscribed topic missing from it does not exist yet and is
    skipped). ``current`` (what members hold now) only matters to ``cooperative-sticky``;
    entries naming unknown members, unsubscribed or unknown topics, out-of-range
    partitions or non-TopicPartition values are ignored, and a partition claimed by several
    members is kept by the lowest member id (Kafka breaks such ties by generation, which
    this pure function does not have). Every member of ``subscriptions`` is in the result,
    possibly with an empty set. Returned TopicPartitions carry no offset.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown assignment strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
    subs = _effective_subscriptions(subscriptions, partition_counts)
    counts = {t: int(partition_counts[t]) for ts in subs.values() for t in ts}
    if strategy == "range":
        result = _range(subs, counts)
    elif strategy == "roundrobin":
        result = _roundrobin(subs, counts)
    else:
        result = _sticky(subs, counts, _valid_current(subs, counts, current))
    return {m: {TopicPartition(t, p) for t, p in tps} for m, tps in result.items()}


def moved(
    before: Mapping[str, Collection[TopicPartition]], after: Mapping[str, Collection[TopicPartition]]
) -> set[TopicPartition]:
    """Partitions owned both before and after whose new owner is not one of the old ones.

    A partition newly assigned that had no owner before, or revoked and not reassigned,
    has not *moved*. If ``before`` names several owners of a partition (stale input), it
    moved only if it ends with someone other than all of them.
    """
    old, new = _owners(before), _owners(after)
    return {TopicPartition(t, p) for (t, p), owners in new.items() if (t, p) in old and owners - old[(t, p)]}


# --- input hygiene -------------------------------------------------------------------------


def _effective_subscriptions(
    subscriptions: Mapping[str, Collection[str]], counts: Mapping[str, int]
) -> _Subs:
    """Member -> the subscribed topics that exist and have partitions."""
    subs: _Subs = {}
    for member, topics in subscriptions.items():
        # A bare str is a Collection[str] of characters: almost surely a caller bug.
        if isinstance(topics, str):
            raise TypeError(f"subscription of member {member!r} must be a collection of topics, not a str")
        subs[member] = frozenset(t for t in topics if _count(counts, t) > 0)
    return subs


def _count(counts: Mapping[str, int], topic: str) -> int:
    n = counts.get(topic, 0)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"partition count of topic {topic!r} must be an int >= 0, got {n!r}")
    return n


def _valid_current(
    subs: _Subs, counts: Mapping[str, int], current: Mapping[str, Collection[TopicPartition]] | None
) -> dict[str, list[_TP]]:
    """Member -> its sorted, still-valid current partitions, each partition kept by one member."""
    owned: dict[str, list[_TP]] = {m: [] for m in subs}
    if not current:
        return owned
    taken: set[_TP] = set()
    # Sorted member order makes "lowest id wins a duplicate claim" fall out of first-come.
    for member in sorted(subs):
        held = current.get(member)
        if not isinstance(held, Collection) or isinstance(held, str):
            continue
        claims = {
            (tp.topic, tp.partition)
            for tp in held
            if isinstance(tp, TopicPartition) and tp.topic in subs[member] and tp.partition < counts[tp.topic]
        }
        owned[member] = sorted(claims - taken)
        taken |= claims
    return owned


def _owners(assignment: Mapping[str, Collection[TopicPartition]]) -> dict[_TP, set[str]]:
    owners: dict[_TP, set[str]] = {}
    for member, tps in assignment.items():
        for tp in tps or ():
            if isinstance(tp, TopicPartition):
                owners.setdefault((tp.topic, tp.partition), set()).add(member)
    return owners


def _topics(subs: _Subs) -> list[str]:
    return sorted(set().union(*subs.values())) if subs else []


# --- range and roundrobin -------------------------------------------------------------------


def _range(subs: _Subs, counts: Mapping[str, int]) -> dict[str, list[_TP]]:
    result: dict[str, list[_TP]] = {m: [] for m in subs}
    for topic in _topics(subs):
        members = sorted(m for m in subs if topic in subs[m])
        per_member, extra = divmod(counts[topic], len(members))
        start = 0
        for i, member in enumerate(members):
            length = per_member + (1 if i < extra else 0)
            result[member].extend((topic, p) for p in range(start, start + length))
            start += length
    return result


def _roundrobin(subs: _Subs, counts: Mapping[str, int]) -> dict[str, list[_TP]]:
    result: dict[str, list[_TP]] = {m: [] for m in subs}
    members = sorted(subs)
    turn = 0
    for topic in _topics(subs):
        for p in range(counts[topic]):
            # Terminates: the topic is in _topics only because some member subscribes to it.
            while topic not in subs[members[turn]]:
                turn = (turn + 1) % len(members)
            result[members[turn]].append((topic, p))
            turn = (turn + 1) % len(members)
    return result


# --- cooperative-sticky ---------------------------------------------------------------------


def _sticky(subs: _Subs, counts: Mapping[str, int], owned: dict[str, list[_TP]]) -> dict[str, list[_TP]]:
    """Balanced first, then as sticky as balance allows.

    Homogeneous groups (every member with any live topic subscribes to the same live
    topics) get Kafka's ``UniformHomogeneousAssignmentBuilder`` scheme: with ``n``
    partitions over ``m`` members each member ends with ``q = n // m`` or ``q + 1``, exactly
    ``n % m`` of them with ``q + 1``; each keeps as many of its current partitions as that
    quota allows, so the number of moves is the minimum any balanced assignment needs.

    Heterogeneous groups are best effort, like Kafka's general builder but simpler: keep
    every valid current partition, give each unowned one (most constrained topic first) to
    its least-loaded subscriber, then move partitions one at a time from a member to a
    subscriber of that topic holding at least two fewer, until no such move exists. Each
    move strictly lowers the sum of squared loads, so this ends; the result is "locally"
    balanced (no single move evens it further) but, where balance needs a chain of moves
    through members with different subscriptions, not necessarily globally balanced.
    """
    result: dict[str, list[_TP]] = {m: [] for m in subs}
    active = sorted(m for m in subs if subs[m])
    if not active:
        return result
    if len({subs[m] for m in active}) == 1:
        result.update(_sticky_homogeneous(active, subs[active[0]], counts, owned))
    else:
        result.update(_sticky_general(active, subs, counts, owned))
    return result


def _sticky_homogeneous(
    members: list[str], topics: frozenset[str], counts: Mapping[str, int], owned: dict[str, list[_TP]]
) -> dict[str, list[_TP]]:
    n = sum(counts[t] for t in topics)
    quota, extras = divmod(n, len(members))
    # Only `extras` members may end with quota + 1. Which of the over-quota members keep
    # their extra does not change the number of moves; the most loaded first, then by id,
    # is deterministic and takes the least from those already carrying the most.
    over = sorted((m for m in members if len(owned[m]) > quota), key=lambda m: (-len(owned[m]), m))
    keeps_extra = set(over[:extras])
    kept = {m: owned[m][: quota + (1 if m in keeps_extra else 0)] for m in members}
    assigned = {tp for tps in kept.values() for tp in tps}
    free = sorted((t, p) for t in topics for p in range(counts[t]) if (t, p) not in assigned)
    # Least loaded first. No member can be pushed past quota + 1, and none left under quota:
    # kept loads are <= quota + 1 with at most `extras` above quota, and a member at
    # quota + 1 is only the least loaded once everyone is, i.e. once n is exceeded.
    heap = [(len(tps), m) for m, tps in kept.items()]
    heapq.heapify(heap)
    for tp in free:
        load, member = heapq.heappop(heap)
        kept[member].append(tp)
        heapq.heappush(heap, (load + 1, member))
    return kept


def _sticky_general(
    members: list[str], subs: _Subs, counts: Mapping[str, int], owned: dict[str, list[_TP]]
) -> dict[str, list[_TP]]:
    subscribers = {t: sorted(m for m in members if t in subs[m]) for t in _topics(subs)}
    # member -> topic -> partitions held; loads kept alongside for O(1) comparisons.
    held: dict[str, dict[str, set[int]]] = {m: {} for m in members}
    load = dict.fromkeys(members, 0)
    for m in members:
        for t, p in owned[m]:
            held[m].setdefault(t, set()).add(p)
            load[m] += 1
    assigned = {tp for m in members for tp in owned[m]}
    # Most constrained topics first, as Kafka's sticky assignor does: a partition few
    # members can take should get first pick of them.
    free = sorted(
        ((t, p) for t in subscribers for p in range(counts[t]) if (t, p) not in assigned),
        key=lambda tp: (len(subscribers[tp[0]]), tp),
    )
    for t, p in free:
        member = min(subscribers[t], key=lambda m: (load[m], m))
        held[member].setdefault(t, set()).add(p)
        load[member] += 1

    while (move := _balancing_move(members, subscribers, held, load)) is not None:
        donor, receiver, t = move
        p = max(held[donor][t])  # deterministic; the lowest-numbered partitions stay put
        held[donor][t].discard(p)
        if not held[donor][t]:
            del held[donor][t]
        held[receiver].setdefault(t, set()).add(p)
        load[donor] -= 1
        load[receiver] += 1
    return {m: sorted((t, p) for t, ps in held[m].items() for p in ps) for m in members}


def _balancing_move(
    members: list[str],
    subscribers: dict[str, list[str]],
    held: dict[str, dict[str, set[int]]],
    load: dict[str, int],
) -> tuple[str, str, str] | None:
    """(donor, receiver, topic): the most loaded member that can shed a partition to a
    subscriber of its topic holding at least two fewer, and the least loaded such subscriber."""
    if max(load.values()) - min(load.values()) <= 1:
        return None  # already as balanced as counts can be: the common, cheap exit
    for donor in sorted(members, key=lambda m: (-load[m], m)):
        best: tuple[int, str, str] | None = None
        for t in sorted(held[donor]):
            for receiver in subscribers[t]:
                candidate = (load[receiver], receiver, t)
                if load[receiver] < load[donor] - 1 and (best is None or candidate < best):
                    best = candidate
        if best is not None:
            return donor, best[1], best[2]
    return None
