"""Leader election: who may lead a partition next, and under which epoch.

* Only an in-sync replica is elected (no unclean election), and it must be *live*: it answered
  with a usable log directory and its node is in the cluster. The ISR is tried in its order
  (placement order, so the preferred replica comes first), the failed leader excluded.
* A replica that restarted since it last had a role in the current epoch (it reports
  "unknown" while its epoch checkpoint already holds that epoch) may have lost an unflushed
  tail, so live replicas that kept their role are preferred to it -- Kafka moves leadership
  away from a restarted broker for the same reason.
* The new epoch is one above the recorded one and above any epoch a replica reports, so an
  epoch is never given to two leaders even if the metadata a manager restarted from were
  behind what replicas saw. Epochs only grow.
* The failed leader leaves the ISR (Kafka removes a fenced broker from every ISR); the new
  leader starts its in-sync set from what remains, so the high watermark is computed from no
  fewer replicas than the recorded ISR.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from raykafka.control.metadata import PartitionState
from raykafka.control.nodes import Node
from raykafka.control.observations import Observation, ReplicaReport


def is_live(
    part: PartitionState, replica_id: str, observations: Mapping[str, Observation], nodes: Mapping[str, Node]
) -> bool:
    """``replica_id`` answered with a usable log directory, and its node is in the cluster."""
    obs = observations.get(replica_id)
    replica = part.replica(replica_id)
    return (
        isinstance(obs, ReplicaReport) and obs.log_dir_ok and replica is not None and replica.node_id in nodes
    )


def restarted(part: PartitionState, obs: Observation | None) -> bool:
    """The replica lost its role after the current epoch began (a restart): it may have lost an
    unflushed tail of what it held in that epoch."""
    return isinstance(obs, ReplicaReport) and obs.role == "unknown" and obs.epoch >= part.leader_epoch


def next_epoch(part: PartitionState, observations: Mapping[str, Observation]) -> int:
    """One above the recorded epoch and every epoch a replica of ``part`` reports."""
    reported = [obs.epoch for r in part.replica_ids if isinstance(obs := observations.get(r), ReplicaReport)]
    return max([part.leader_epoch, *reported]) + 1


def choose_leader(
    part: PartitionState,
    observations: Mapping[str, Observation],
    nodes: Mapping[str, Node],
    *,
    exclude: str | None,
) -> str | None:
    """The live in-sync replica to lead next (not ``exclude``), None when there is none."""
    candidates = [r for r in part.isr if r != exclude and is_live(part, r, observations, nodes)]
    # stable: ISR order within each class, replicas that kept their role first
    candidates.sort(key=lambda r: restarted(part, observations.get(r)))
    return candidates[0] if candidates else None


def elect(
    part: PartitionState, observations: Mapping[str, Observation], nodes: Mapping[str, Node]
) -> PartitionState | None:
    """``part`` led by a live in-sync replica other than its current leader, under a new epoch,
    the old leader out of the ISR; None when no such replica answers."""
    candidate = choose_leader(part, observations, nodes, exclude=part.leader)
    if candidate is None:
        return None
    return replace(
        part,
        leader=candidate,
        leader_epoch=next_epoch(part, observations),
        isr=tuple(r for r in part.isr if r != part.leader),
    )


def new_term(part: PartitionState, observations: Mapping[str, Observation]) -> PartitionState:
    """The same leader under a new epoch (it restarted, or its followers changed)."""
    return replace(part, leader_epoch=next_epoch(part, observations))
