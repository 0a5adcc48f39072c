"""Per-producer ordering and de-duplication of appends (Kafka's idempotent producer, in memory).

Ray may start an async actor's calls out of submission order (measured: 1,158 of
2,000 pipelined calls with mixed-size arguments), so every produce request
carries ``(producer_id, seq)`` and waits here until its predecessor was
appended. A request may carry several batches: they hold the consecutive numbers
``seq, seq + 1, ...`` and are appended one after the other in one turn. A retried
``seq`` that was already appended is answered from a small cache instead of being
appended twice, batch by batch, so a retry may group its batches differently.

The state is memory only. After a restart (or on a new leader) the producer's
``first_unacked`` -- the lowest sequence number it has not had an answer for --
becomes the baseline, so batches retried after the restart are still appended
in send order. A batch that was appended but whose answer was lost is appended
again (at-least-once).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import TypeVar

logger = logging.getLogger(__name__)

#: Appends remembered per producer, so a retry is answered instead of appended again: at least
#: as many as a producer has in flight (it sizes its requests so; the default 5 requests of up
#: to MAX_BATCHES_PER_REQUEST batches are 80).
RECENT_APPENDS_PER_PRODUCER = 128
#: The most batches one produce request carries (the producer groups at most this many).
MAX_BATCHES_PER_REQUEST = 16

T = TypeVar("T")


def attempt(append: Callable[[], T]) -> T | Exception:
    """``append()``'s result, or the exception that rejected it: one batch of a request
    failing (too large, malformed) does not fail the others."""
    try:
        return append()
    except Exception as exc:
        return exc


class _Gate:
    __slots__ = ("changed", "next_seq", "recent", "retired")

    def __init__(self, first_seq: int):
        self.next_seq = first_seq
        self.recent: collections.OrderedDict[int, object] = collections.OrderedDict()
        self.changed = asyncio.Condition()
        self.retired = False  # replaced by reset(): its waiters start over on the new gate


class Sequencer:
    def __init__(self, name: str):
        self.name = name
        self._gates: dict[str, _Gate] = {}

    async def reset(self) -> None:
        """Forget every producer (a new leadership term starts a new baseline; the cached
        answers may name offsets another leader truncated). Appends waiting on the old
        state are woken and start over on the new one."""
        gates, self._gates = self._gates, {}
        for gate in gates.values():
            async with gate.changed:
                gate.retired = True
                gate.changed.notify_all()

    async def run(
        self,
        producer_id: str,
        seq: int,
        first_unacked: int,
        appends: list[Callable[[], T]],
        gap_timeout_ms: int,
    ) -> list[T | Exception]:
        """Run ``appends`` (the batches ``seq, seq + 1, ...``) in order when ``seq`` is this
        producer's next; answer each repeat from the cache. Each batch's result or the
        exception that rejected it (see ``attempt``).

        ``first_unacked`` also moves the gate: every lower seq was answered or given up by
        the producer, so none of them is worth waiting for. ``gap_timeout_ms`` bounds the
        wait for a predecessor that never comes (the request's own timeout).
        """
        while True:
            gate = self._gates.get(producer_id)
            if gate is None:  # first contact, or first since a restart
                gate = self._gates[producer_id] = _Gate(min(first_unacked, seq))
            if all(seq + i in gate.recent for i in range(len(appends))):
                return [gate.recent[seq + i] for i in range(len(appends))]
            async with gate.changed:
                if first_unacked > gate.next_seq:
                    gate.next_seq = first_unacked
                    gate.changed.notify_all()
                if seq > gate.next_seq:
                    try:
                        await asyncio.wait_for(
                            gate.changed.wait_for(lambda g=gate: g.retired or g.next_seq >= seq),
                            gap_timeout_ms / 1000,
                        )
                    except TimeoutError:
                        logger.warning(
                            "%s: producer %s seq %d waited %d ms for seq %d; appending anyway",
                            self.name,
                            producer_id,
                            seq,
                            gap_timeout_ms,
                            gate.next_seq,
                        )
                if gate.retired:
                    continue  # a new leadership term began meanwhile: wait in the new one
                return self._append_locked(gate, seq, appends)

    @staticmethod
    def _append_locked(gate: _Gate, seq: int, appends: list[Callable[[], T]]) -> list[T | Exception]:
        results = []
        try:
            for number, append in enumerate(appends, start=seq):
                if number in gate.recent:
                    results.append(gate.recent[number])
                    continue
                result = attempt(append)
                # a rejected batch still consumes its sequence number, or its successors would wait
                gate.next_seq = max(gate.next_seq, number + 1)
                if not isinstance(result, Exception):
                    gate.recent[number] = result
                results.append(result)
        finally:
            gate.changed.notify_all()
            while len(gate.recent) > RECENT_APPENDS_PER_PRODUCER:
                gate.recent.popitem(last=False)
        return results
