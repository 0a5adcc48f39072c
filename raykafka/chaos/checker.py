"""The chaos run's verdict: reads a whole ``History`` and counts every broken promise.

Pure (no Ray, no I/O). The invariants, each of which must be 0:

* **lost** -- an acknowledged record that the final read of its partition (``served``) does
  not hold at all;
* **moved** -- an acknowledged record served at another offset than its acknowledgement said;
* **conflicting offsets** -- an offset handed out with two different payloads, by any two reads
  (the group's members during the run, and the final read): the log changed under a reader;
* **duplicates** -- a payload stored at two offsets of the final read (every payload the run
  sends is unique, and idempotent producers store each batch once);
* **holes** -- an offset missing between the first and the last offset the final read served;
* **commits backwards** -- a group's committed offset for a partition that went down: a value
  committed (or observed) entirely before another commit or observation began is larger than
  it. Intervals that overlap are not ordered, so concurrent commits never count.

Also reported, never an invariant: how many records were acknowledged, failed, served; the
acknowledged records no group member was handed (a group drained at the end has none); the
longest time any partition acknowledged no write while the producers ran; and every fault.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from raykafka.chaos.history import Commit, Fault, History

#: How many examples of each violation a report keeps (the counts are exact).
MAX_EXAMPLES = 20


@dataclass(frozen=True)
class WriteGap:
    seconds: float
    topic: str
    partition: int
    from_s: float  # since the history's start


@dataclass(frozen=True)
class Report:
    """Counts of each invariant's violations (with up to ``MAX_EXAMPLES`` examples each)."""

    seed: int
    acknowledged: int
    failed_sends: int
    served: int
    consumed: int
    lost: int
    moved: int
    conflicting_offsets: int
    duplicates: int
    holes: int
    commits_backwards: int
    commits: int
    undelivered_to_group: int
    longest_write_gap: WriteGap | None
    faults: tuple[Fault, ...]
    faults_by_kind: dict[str, int]
    examples: dict[str, list[str]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    started_s: float = 0.0

    @property
    def violations(self) -> dict[str, int]:
        """Each invariant's count of violations (all must be 0)."""
        return {
            "lost": self.lost,
            "moved": self.moved,
            "conflicting_offsets": self.conflicting_offsets,
            "duplicates": self.duplicates,
            "holes": self.holes,
            "commits_backwards": self.commits_backwards,
        }

    @property
    def ok(self) -> bool:
        return not any(self.violations.values())

    def render(self) -> str:
        """The report as text, for a terminal and for docs/RELIABILITY.md."""
        lines = [
            f"chaos report, seed {self.seed}: {'OK' if self.ok else 'INVARIANTS VIOLATED'}",
            f"  acknowledged records        {self.acknowledged}",
            f"  failed sends (not acked)    {self.failed_sends}",
            f"  served by the final read    {self.served}",
            f"  handed to group members     {self.consumed}",
            f"  commits and observations    {self.commits}",
        ]
        lines += [f"  {name:<28}{count}" for name, count in self.violations.items()]
        lines.append(f"  undelivered to the group    {self.undelivered_to_group}")
        gap = self.longest_write_gap
        if gap is not None:
            lines.append(
                f"  longest write gap           {gap.seconds:.1f} s ({gap.topic}-{gap.partition}, "
                f"from t={gap.from_s:.1f} s)"
            )
        by_kind = ", ".join(f"{k} {n}" for k, n in sorted(self.faults_by_kind.items()))
        lines.append(f"  faults                      {len(self.faults)} ({by_kind})")
        for fault in self.faults:
            start, end = fault.start_s - self.started_s, fault.end_s - self.started_s
            span = f"t={start:7.1f} s" + (f" .. {end:7.1f} s" if end > start else "")
            detail = f" -- {fault.detail}" if fault.detail else ""
            lines.append(f"    {span}  {fault.kind:<18} {fault.target}{detail}")
        for name, examples in self.examples.items():
            if examples:
                lines.append(f"  {name} (first {len(examples)}):")
                lines += [f"    {e}" for e in examples]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def check(history: History) -> Report:
    """Read ``history`` whole and count what broke (see the module docstring)."""
    examples: dict[str, list[str]] = defaultdict(list)

    def example(kind: str, text: str) -> None:
        if len(examples[kind]) < MAX_EXAMPLES:
            examples[kind].append(text)

    # The final read: where each payload is, and what each offset holds.
    served_at: dict[tuple[str, int, bytes], list[int]] = defaultdict(list)
    for r in history.served:
        served_at[(r.topic, r.partition, r.payload)].append(r.offset)

    lost = moved = 0
    for a in history.acked:
        offsets = served_at.get((a.topic, a.partition, a.payload))
        if not offsets:
            lost += 1
            example(
                "lost", f"{a.topic}-{a.partition} offset {a.offset} {a.payload!r} (acked by {a.producer})"
            )
        elif a.offset not in offsets:
            moved += 1
            example(
                "moved", f"{a.topic}-{a.partition} {a.payload!r} acked at {a.offset}, served at {offsets}"
            )

    duplicates = 0
    for (topic, partition, payload), offsets in served_at.items():
        if len(offsets) > 1:
            duplicates += len(offsets) - 1
            example("duplicates", f"{topic}-{partition} {payload!r} at offsets {sorted(offsets)}")

    conflicting = 0
    seen: dict[tuple[str, int, int], bytes] = {}
    flagged: set[tuple[str, int, int]] = set()
    for r in [*history.consumed, *history.served]:
        key = (r.topic, r.partition, r.offset)
        first = seen.setdefault(key, r.payload)
        if first != r.payload and key not in flagged:
            flagged.add(key)
            conflicting += 1
            example(
                "conflicting_offsets",
                f"{r.topic}-{r.partition} offset {r.offset}: {first!r} and {r.payload!r}",
            )

    holes = 0
    by_partition: dict[tuple[str, int], set[int]] = defaultdict(set)
    for r in history.served:
        by_partition[(r.topic, r.partition)].add(r.offset)
    for (topic, partition), offsets in sorted(by_partition.items()):
        missing = (max(offsets) - min(offsets) + 1) - len(offsets)
        if missing:
            holes += missing
            gaps = sorted(set(range(min(offsets), max(offsets) + 1)) - offsets)
            example("holes", f"{topic}-{partition}: {missing} offsets missing, first {gaps[:5]}")

    backwards = _commits_backwards(history.commits, example)

    delivered = {(r.topic, r.partition, r.offset, r.payload) for r in history.consumed}
    undelivered = sum(
        1 for a in history.acked if (a.topic, a.partition, a.offset, a.payload) not in delivered
    )

    return Report(
        seed=history.seed,
        acknowledged=len(history.acked),
        failed_sends=len(history.failed),
        served=len(history.served),
        consumed=len(history.consumed),
        lost=lost,
        moved=moved,
        conflicting_offsets=conflicting,
        duplicates=duplicates,
        holes=holes,
        commits_backwards=backwards,
        commits=len(history.commits),
        undelivered_to_group=undelivered,
        longest_write_gap=longest_write_gap(history),
        faults=tuple(sorted(history.faults, key=lambda f: f.start_s)),
        faults_by_kind=dict(Counter(f.kind for f in history.faults)),
        examples={k: v for k, v in examples.items() if v},
        notes=tuple(history.notes),
        started_s=history.started_s,
    )


def _commits_backwards(commits: list[Commit], example) -> int:
    """Per group and partition: commits/observations Y whose offset is below that of some X that
    ended before Y started (a sweep over both orders: n log n)."""
    by_key: dict[tuple[str, str, int], list[Commit]] = defaultdict(list)
    for c in commits:
        by_key[(c.group, c.topic, c.partition)].append(c)
    count = 0
    for (group, topic, partition), events in sorted(by_key.items()):
        by_end = sorted(events, key=lambda c: c.end_s)
        best: Commit | None = None
        i = 0
        for y in sorted(events, key=lambda c: c.start_s):
            while i < len(by_end) and by_end[i].end_s < y.start_s:
                if best is None or by_end[i].offset > best.offset:
                    best = by_end[i]
                i += 1
            if best is not None and y.offset < best.offset:
                count += 1
                example(
                    "commits_backwards",
                    f"group {group} {topic}-{partition}: {best.offset} ({best.source}, done "
                    f"t={best.end_s:.2f}) then {y.offset} ({y.source}, from t={y.start_s:.2f})",
                )
    return count


def longest_write_gap(history: History) -> WriteGap | None:
    """The longest time between two acknowledgements of one partition (or from its last one to
    when the producers stopped), over every partition that had one."""
    times: dict[tuple[str, int], list[float]] = defaultdict(list)
    for a in history.acked:
        times[(a.topic, a.partition)].append(a.time_s)
    best: WriteGap | None = None
    for (topic, partition), ts in sorted(times.items()):
        ts.sort()
        if history.produce_stopped_s > ts[-1]:
            ts.append(history.produce_stopped_s)
        for before, after in itertools.pairwise(ts):
            if best is None or after - before > best.seconds:
                best = WriteGap(after - before, topic, partition, before - history.started_s)
    return best
