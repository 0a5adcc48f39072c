"""FailureDetector: which processes are down, from probes that were answered or missed.

A process is *down* once it has missed ``misses`` probes in a row **and** nothing was heard
from it for ``timeout_ms`` -- both, so that neither a burst of quick probes nor one long
pause of the TopicManager itself (a stalled event loop sends no probes, then finds every
answer late) turns a busy process into a failover. The defaults (2 misses, 1 s) match what
the TopicManager does today: it elects after 2 failed checks 0.5 s apart, each waiting up
to 1 s. Kafka's anchor is a broker session timeout of 9 s; which values keep the
false-failover rate of a busy 2-vCPU node near zero is for the benchmark to measure -- the
detector only needs the numbers.

A process known dead for good (its actor died and will not restart) is *gone* at once.
One answer makes it up again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Status = Literal["up", "suspect", "down", "gone"]


@dataclass
class _Record:
    last_heard_ms: int
    misses: int = 0
    gone: bool = False


class FailureDetector:
    def __init__(self, *, timeout_ms: int = 1_000, misses: int = 2):
        if misses < 1 or timeout_ms < 0:
            raise ValueError("misses must be >= 1 and timeout_ms >= 0")
        self.timeout_ms = timeout_ms
        self.misses = misses
        self._records: dict[str, _Record] = {}

    def heard(self, process: str, now_ms: int) -> None:
        """``process`` answered a probe (or any call)."""
        self._records[process] = _Record(now_ms)

    def missed(self, process: str, now_ms: int) -> None:
        """A probe of ``process`` went unanswered (timed out or failed)."""
        record = self._records.setdefault(process, _Record(now_ms))  # first contact: the clock starts
        record.misses += 1

    def died(self, process: str) -> None:
        """``process`` is dead for good (its actor died and Ray will not restart it)."""
        record = self._records.setdefault(process, _Record(0))
        record.gone = True

    def forget(self, process: str) -> None:
        """``process`` is no longer of interest (its replicas moved or were deleted)."""
        self._records.pop(process, None)

    def status(self, process: str, now_ms: int) -> Status:
        record = self._records.get(process)
        if record is None:
            return "suspect"  # never probed: nothing known yet
        if record.gone:
            return "gone"
        if record.misses == 0:
            return "up"
        if record.misses >= self.misses and now_ms - record.last_heard_ms >= self.timeout_ms:
            return "down"
        return "suspect"

    def down(self, processes: Iterable[str], now_ms: int) -> list[str]:
        """Those of ``processes`` that are down."""
        return [p for p in processes if self.status(p, now_ms) == "down"]

    def gone(self, processes: Iterable[str]) -> list[str]:
        """Those of ``processes`` that are gone."""
        return [p for p in processes if (r := self._records.get(p)) is not None and r.gone]
