"""What the TopicManager sees of its replicas: each one's report, or that it cannot be reached.

Liveness is a property of a *process*: one probe answers for every replica a process hosts
(today one replica per actor process; with denser packing, many), and one process found
down takes all of its replicas with it. ``replica_observations`` turns per-process results
(and the failure detector's verdicts, ``liveness.py``) into the per-replica view that
reconciliation reads. A replica with no observation is undecided -- nothing is done about
it until one arrives.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

#: The roles a replica reports; "unknown" until the TopicManager told it one since it started.
Role = Literal["leader", "follower", "unknown"]


@dataclass(frozen=True)
class ReplicaReport:
    """A replica answered: its role and epoch (for "unknown": the newest epoch in its
    ``leader-epoch.checkpoint``, -1 for none), its log end if known, and whether its log
    directory is usable."""

    role: Role
    epoch: int
    log_end: int | None = None
    log_dir_ok: bool = True

    @classmethod
    def from_health(cls, role: str, epoch: int, log_end: int | None = None) -> ReplicaReport:
        """From ``PartitionActor.health()``'s ``(role, epoch)``: "failed" is a failed log directory,
        and so is "deleted" (its data is gone: it can neither lead nor follow)."""
        if role in ("failed", "deleted"):
            return cls("unknown", epoch, log_end, log_dir_ok=False)
        if role not in ("leader", "follower", "unknown"):
            raise ValueError(f"unexpected replica role {role!r}")
        return cls(role, epoch, log_end)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Unreachable:
    """The replica's process does not answer and is considered dead (``gone``: its actor no longer
    exists -- it died for good or was never created -- so waiting will not bring it back)."""

    gone: bool = False


#: Its process stopped answering (it may come back: Ray restarts it, a frozen node resumes).
DOWN = Unreachable(gone=False)
#: It has no actor: never created, or died for good. Only creating it brings it back.
GONE = Unreachable(gone=True)

Observation = ReplicaReport | Unreachable


@dataclass(frozen=True)
class ProcessReport:
    """One probe's answer from one process: a report for each replica it hosts."""

    process_id: str
    replicas: Mapping[str, ReplicaReport]


def replica_observations(
    hosted: Mapping[str, Iterable[str]],
    reports: Iterable[ProcessReport],
    down: Iterable[str] = (),
    gone: Iterable[str] = (),
) -> dict[str, Observation]:
    """Per replica: its report from a process that answered; ``GONE`` when that process answered
    without it (it is not loaded there) or the process is ``gone``; ``DOWN`` for every replica of
    a process the failure detector declared ``down``. ``hosted`` maps each process to the
    replicas it should host; processes neither answering nor declared are left out (undecided)."""
    out: dict[str, Observation] = {}
    for process in down:
        for replica_id in hosted.get(process, ()):
            out[replica_id] = DOWN
    for process in gone:
        for replica_id in hosted.get(process, ()):
            out[replica_id] = GONE
    for report in reports:
        for replica_id in hosted.get(report.process_id, ()):
            out[replica_id] = report.replicas.get(replica_id, GONE)
    return out
