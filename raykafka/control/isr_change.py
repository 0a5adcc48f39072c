"""A leader's ``alter_isr``: the recorded ISR follows the leader's, fenced by the leader epoch.

The leader shrinks its in-sync set only after the new set is recorded here (so a replica
that missed acknowledged records is never electable) and grows it at once, reporting after
(the safe direction). The recorded ISR is therefore never larger than the set the leader
computes its high watermark from. Rules:

* A request carrying another epoch than the recorded one comes from a deposed leader (or one
  that has not learned its new term yet): ``FencedLeader``, nothing changes.
* The new set must hold the leader and only replicas of the partition (ValueError).
* It is recorded in placement order (the order elections try it in). The same set again
  changes nothing and persists nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from raykafka.control.actions import Decision, Persist, unchanged
from raykafka.control.metadata import ClusterMetadata
from raykafka.control.topics import lookup
from raykafka.errors import FencedLeader


def alter_isr(
    metadata: ClusterMetadata, topic: str, partition: int, epoch: int, isr: Iterable[str]
) -> Decision:
    """Record ``isr`` as ``topic``-``partition``'s in-sync replicas, asked by its leader of ``epoch``."""
    part = lookup(metadata, topic).partition(partition)
    if epoch != part.leader_epoch:
        raise FencedLeader(f"{topic}-{partition}: epoch {epoch} is not the current {part.leader_epoch}")
    wanted = list(isr)
    strangers = sorted(set(wanted) - set(part.replica_ids))
    if strangers:
        raise ValueError(f"{topic}-{partition}: {strangers} are not replicas of the partition")
    if part.leader not in wanted:
        raise ValueError(f"{topic}-{partition}: the ISR must hold the leader {part.leader}")
    ordered = part.in_replica_order(wanted)
    if set(ordered) == set(part.isr):
        return unchanged(metadata)
    changed = replace(part, isr=ordered)
    return Decision(
        metadata.with_partitions({(topic, partition): changed}),
        (Persist(f"{topic}-{partition}: ISR {list(part.isr)} -> {list(ordered)} (epoch {epoch})"),),
    )
