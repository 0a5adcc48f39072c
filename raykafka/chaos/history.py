"""The history of a chaos run: what was acknowledged, read, committed, and which faults ran when.

Pure data, no Ray: the driver appends to a ``History`` while the run goes on, the checker
(``checker.py``) reads it at the end, and ``to_json``/``from_json`` keep it in a file so a
run's verdict can be checked again later. Times are seconds on the driver's monotonic clock
(every process of a local chaos run is on one machine, so they share it).

Payloads are bytes; in JSON each is a latin-1 string (lossless for any byte string). Records
are stored as short lists, not dicts: a long run holds hundreds of thousands of them.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Acked:
    """A record a producer's future reported as stored (``acks="all"``) at ``offset``."""

    topic: str
    partition: int
    offset: int
    payload: bytes
    producer: str
    time_s: float  # when the future completed


@dataclass(frozen=True)
class FailedSend:
    """A record whose send failed (never acknowledged): it may or may not be in the log."""

    topic: str
    partition: int
    payload: bytes
    producer: str
    time_s: float
    error: str


@dataclass(frozen=True)
class Read:
    """A record a reader was handed at ``offset``: a group member during the run, or the final
    read of every partition from its start (``reader == "served"``)."""

    topic: str
    partition: int
    offset: int
    payload: bytes
    reader: str


@dataclass(frozen=True)
class Commit:
    """A committed offset: a member's commit acknowledged in ``[start_s, end_s]``, or the group's
    committed offset as an observer read it during that interval (``source == "observer"``)."""

    group: str
    topic: str
    partition: int
    offset: int
    start_s: float
    end_s: float
    source: str


@dataclass(frozen=True)
class Fault:
    """One injected fault: ``kind`` (see ``schedule.FAULT_KINDS``), what it hit, when it started
    and when it was healed (``end_s == start_s`` for an instant fault such as a SIGKILL)."""

    kind: str
    target: str
    start_s: float
    end_s: float
    detail: str = ""


@dataclass
class History:
    """Everything a chaos run observed. ``served`` is the final read of every partition."""

    seed: int
    topics: dict[str, int] = field(default_factory=dict)  # topic -> partition count
    acked: list[Acked] = field(default_factory=list)
    failed: list[FailedSend] = field(default_factory=list)
    consumed: list[Read] = field(default_factory=list)
    served: list[Read] = field(default_factory=list)
    commits: list[Commit] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    started_s: float = 0.0
    produce_stopped_s: float = 0.0  # when the producers stopped sending
    notes: list[str] = field(default_factory=list)  # what the driver wants in the report

    # -- JSON ---------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "seed": self.seed,
            "topics": self.topics,
            "started_s": self.started_s,
            "produce_stopped_s": self.produce_stopped_s,
            "notes": self.notes,
            "acked": [
                [a.topic, a.partition, a.offset, _text(a.payload), a.producer, a.time_s] for a in self.acked
            ],
            "failed": [
                [f.topic, f.partition, _text(f.payload), f.producer, f.time_s, f.error] for f in self.failed
            ],
            "consumed": [[r.topic, r.partition, r.offset, _text(r.payload), r.reader] for r in self.consumed],
            "served": [[r.topic, r.partition, r.offset, _text(r.payload), r.reader] for r in self.served],
            "commits": [
                [c.group, c.topic, c.partition, c.offset, c.start_s, c.end_s, c.source] for c in self.commits
            ],
            "faults": [asdict(f) for f in self.faults],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> History:
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"history format {data.get('version')!r}, expected {FORMAT_VERSION}")
        return cls(
            seed=data["seed"],
            topics=dict(data["topics"]),
            started_s=data["started_s"],
            produce_stopped_s=data["produce_stopped_s"],
            notes=list(data["notes"]),
            acked=[Acked(t, p, o, _bytes(v), who, at) for t, p, o, v, who, at in data["acked"]],
            failed=[FailedSend(t, p, _bytes(v), who, at, e) for t, p, v, who, at, e in data["failed"]],
            consumed=[Read(t, p, o, _bytes(v), who) for t, p, o, v, who in data["consumed"]],
            served=[Read(t, p, o, _bytes(v), who) for t, p, o, v, who in data["served"]],
            commits=[Commit(*c) for c in data["commits"]],
            faults=[Fault(**f) for f in data["faults"]],
        )

    def write(self, path: str | os.PathLike) -> None:
        """Write the history as JSON (atomically: a temporary file renamed over ``path``)."""
        tmp = f"{os.fspath(path)}.tmp"
        with open(tmp, "w") as f:
            json.dump(self.to_json(), f)
        os.replace(tmp, path)

    @classmethod
    def read(cls, path: str | os.PathLike) -> History:
        with open(path) as f:
            return cls.from_json(json.load(f))


def _text(payload: bytes) -> str:
    return payload.decode("latin-1")


def _bytes(text: str) -> bytes:
    return text.encode("latin-1")


def read_lines(path: str | os.PathLike) -> list[list[Any]]:
    """The JSON lines a process appended to ``path`` (a group member's log of what it read and
    committed); a last line cut short by a SIGKILL is skipped."""
    rows = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    continue
    except FileNotFoundError:
        pass
    return rows
