"""A chaos run's fault schedule, drawn from a seed: the same seed gives the same schedule.

Pure (no Ray, no clock). Each ``FaultSpec`` says what kind of fault a cycle injects, which
partition and which of the candidates it aims at (``pick``, taken modulo the candidates the
driver finds at that moment: followers, consumers, worker nodes), how long the fault lasts
(``duration_s``: a frozen node, a full disk, a crashed node's time away) and how long the
run goes on steadily before it (``pause_s``). Which actor or node that is depends on the
cluster at that moment (who leads changes with every failover); the schedule does not.

Kinds are dealt like cards: every kind once, in a seeded order, then reshuffled, so any
``len(kinds)`` consecutive cycles hold every kind (a short run of 9 cycles injects each).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

#: Every kind of fault the driver knows how to inject.
FAULT_KINDS: tuple[str, ...] = (
    "kill_leader",  # SIGKILL a partition leader's process
    "kill_follower",  # SIGKILL a follower's process
    "kill_topic_manager",  # SIGKILL the TopicManager
    "kill_coordinator",  # SIGKILL the group's coordinator
    "kill_consumer",  # SIGKILL a group member's process
    "node_crash",  # a storage node removed without grace, back later with the same label
    "node_freeze",  # SIGSTOP a storage node's raylet and workers for 3-10 s
    "disk_full",  # ENOSPC on every write of one replica for a while
    "power_loss",  # one replica killed and its files cut to what it fsynced
)

#: How long each kind lasts, in seconds (low, high); kinds not listed are instant.
DURATIONS_S: dict[str, tuple[float, float]] = {
    "node_crash": (1.0, 5.0),
    "node_freeze": (3.0, 10.0),
    "disk_full": (2.0, 6.0),
}


@dataclass(frozen=True)
class FaultSpec:
    cycle: int
    kind: str
    partition: int
    pick: int  # which candidate (follower, consumer, node, replica), modulo how many there are
    duration_s: float
    pause_s: float  # steady running before the fault

    def describe(self) -> str:
        lasting = f" for {self.duration_s:.1f} s" if self.duration_s else ""
        return f"cycle {self.cycle}: {self.kind} (partition {self.partition}, pick {self.pick}){lasting}"


def make_schedule(
    seed: int,
    cycles: int,
    *,
    partitions: int,
    kinds: tuple[str, ...] = FAULT_KINDS,
    pause_s: tuple[float, float] = (1.0, 4.0),
) -> list[FaultSpec]:
    """``cycles`` faults drawn from ``seed`` (see the module docstring)."""
    unknown = set(kinds) - set(FAULT_KINDS)
    if unknown or not kinds:
        raise ValueError(f"kinds must be a non-empty subset of {FAULT_KINDS}, got {kinds}")
    if cycles < 0 or partitions < 1:
        raise ValueError(f"cycles >= 0 and partitions >= 1, got {cycles} and {partitions}")
    rng = random.Random(seed)
    deck: list[str] = []
    schedule = []
    for cycle in range(cycles):
        if not deck:
            deck = list(kinds)
            rng.shuffle(deck)
        kind = deck.pop()
        low, high = DURATIONS_S.get(kind, (0.0, 0.0))
        schedule.append(
            FaultSpec(
                cycle=cycle,
                kind=kind,
                partition=rng.randrange(partitions),
                pick=rng.randrange(1 << 16),
                duration_s=round(rng.uniform(low, high), 2),
                pause_s=round(rng.uniform(*pause_s), 2),
            )
        )
    return schedule
