"""Is a partition able to take a write? Only its own leader, at the recorded epoch, can say so.

A partition is *healthy* only when its recorded leader reports that it leads at the recorded
epoch with a usable log directory -- never because an actor answers at all (a replica whose
``become_leader`` failed, or that still follows an old epoch, takes no write). Otherwise it
is *recovering* while some in-sync replica could lead (reconciliation is on it), and
*offline* when none can.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum

from raykafka.control.election import is_live
from raykafka.control.metadata import PartitionState
from raykafka.control.nodes import Node
from raykafka.control.observations import Observation, ReplicaReport


class Health(str, Enum):
    HEALTHY = "healthy"
    RECOVERING = "recovering"
    OFFLINE = "offline"


def leads(part: PartitionState, obs: Observation | None) -> bool:
    """``obs`` (of ``part``'s leader) shows it leading at the recorded epoch with a usable log directory."""
    return (
        isinstance(obs, ReplicaReport)
        and obs.log_dir_ok
        and obs.role == "leader"
        and obs.epoch == part.leader_epoch
    )


def partition_health(
    part: PartitionState, observations: Mapping[str, Observation], nodes: Mapping[str, Node]
) -> Health:
    if part.leader is not None and leads(part, observations.get(part.leader)):
        return Health.HEALTHY
    if any(is_live(part, r, observations, nodes) for r in part.isr):
        return Health.RECOVERING
    return Health.OFFLINE
