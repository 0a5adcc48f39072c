"""What the control core asks the TopicManager to do: typed actions, and a ``Decision``.

Every decision of the core returns a ``Decision``: the new metadata and the actions
that carry it out. The shell (the TopicManager) follows three rules:

* If the first action is ``Persist``, write ``decision.metadata`` and adopt it in memory
  only once the write succeeded. If it fails, keep the old metadata and drop the rest of
  the decision (``Reconciler.abandon`` for reconciliation's actions): nothing is acted on
  that is not on disk. A decision holds at most one ``Persist``, always first; a decision
  without one leaves the metadata unchanged.
* A write that failed may still have reached the file (a failed fsync after the rename):
  until a write succeeds again, write the current metadata before carrying out any
  decision, with or without a ``Persist`` -- else a restart could read a state that memory
  moved away from (an ISR entry the leader dropped since). Memory and disk never disagree
  about anything that was acted on.
* Dispatch the other actions in order (each may complete asynchronously): a
  ``CreateReplica`` comes before a role command that names the replica it creates.
  An action may fail or be lost; reconciliation repeats whatever is still needed.

Role commands are idempotent at the replica (the same role at the same epoch is a no-op),
so a duplicate is harmless.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from raykafka.control.metadata import ClusterMetadata, FrozenMap, Replica


@dataclass(frozen=True)
class Persist:
    """Write the decision's metadata (atomically) before anything else; ``change`` says what
    changed, for the log."""

    change: str


@dataclass(frozen=True)
class CreateReplica:
    """Start ``replica``'s actor on ``replica.node_id`` (named by topic, partition, replica id and
    generation), with the topic's current config. Its data directory may exist already."""

    topic: str
    partition: int
    replica: Replica


@dataclass(frozen=True)
class StopReplica:
    """Kill the actor of this (old) replica record for good, keeping its data: the record moved to
    another node that sees the same disk."""

    topic: str
    partition: int
    replica: Replica


@dataclass(frozen=True)
class DestroyReplica:
    """Delete the replica's data (``destroy``), then kill its actor: the replica is no longer part of
    the topic (deletion, reassignment). Best effort: a replica on a node that is gone keeps its data."""

    topic: str
    partition: int
    replica: Replica


@dataclass(frozen=True)
class BecomeLeader:
    """Tell ``replica_id`` to lead from ``epoch`` on, replicating to ``followers`` with ``isr`` as its
    starting in-sync set."""

    topic: str
    partition: int
    replica_id: str
    epoch: int
    followers: tuple[str, ...]
    isr: tuple[str, ...]


@dataclass(frozen=True)
class BecomeFollower:
    """Tell ``replica_id`` to follow ``leader`` from ``epoch`` on (truncating what the leader lacks)."""

    topic: str
    partition: int
    replica_id: str
    epoch: int
    leader: str


@dataclass(frozen=True)
class UpdateConfig:
    """Give a running replica the topic's new config."""

    topic: str
    partition: int
    replica_id: str
    config: Mapping[str, str]

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", FrozenMap(self.config))


Action = Persist | CreateReplica | StopReplica | DestroyReplica | BecomeLeader | BecomeFollower | UpdateConfig
RoleCommand = BecomeLeader | BecomeFollower


@dataclass(frozen=True)
class Decision:
    """New metadata and the actions that carry it out (see the module docstring for the rules)."""

    metadata: ClusterMetadata
    actions: tuple[Action, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "actions", tuple(self.actions))
        persists = [i for i, a in enumerate(self.actions) if isinstance(a, Persist)]
        if persists not in ([], [0]):
            raise ValueError("a Decision holds at most one Persist, as its first action")

    @property
    def persist(self) -> Persist | None:
        """The ``Persist`` to carry out first, None when the metadata did not change."""
        return self.actions[0] if self.actions and isinstance(self.actions[0], Persist) else None

    @property
    def effects(self) -> tuple[Action, ...]:
        """The actions after the ``Persist`` (all of them when there is none)."""
        return self.actions[1:] if self.persist is not None else self.actions


def unchanged(metadata: ClusterMetadata) -> Decision:
    """Nothing to do."""
    return Decision(metadata, ())
