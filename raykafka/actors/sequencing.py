"""Per-producer ordering and de-duplication of appends (Kafka's idempotent producer, in memory).

Ray may start an async actor's calls out of submission order (measured: 1,158 of
2,000 pipelined calls with mixed-size arguments), so every produce request
carries ``(producer_id, seq)`` and waits here until its predecessor was
appended. A retried ``seq`` that was already appended is answered from a small
cache instead of being appended twice.

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

#: Appends remembered per producer, so a retry is answered instead of appended again.
RECENT_APPENDS_PER_PRODUCER = 16

T = TypeVar("T")


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
        self, producer_id: str, seq: int, first_unacked: int, append: Callable[[], T], gap_timeout_ms: int
    ) -> T:
        """Run ``append`` when ``seq`` is this producer's next; answer a repeat from the cache.

        ``first_unacked`` also moves the gate: every lower seq was answered or given up by
        the producer, so none of them is worth waiting for. ``gap_timeout_ms`` bounds the
        wait for a predecessor that never comes (the request's own timeout).
        """
        while True:
            gate = self._gates.get(producer_id)
            if gate is None:  # first contact, or first since a restart
                gate = self._gates[producer_id] = _Gate(min(first_unacked, seq))
            if seq in gate.recent:
                return gate.recent[seq]
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
                return self._append_locked(gate, seq, append)

    @staticmethod
    def _append_locked(gate: _Gate, seq: int, append: Callable[[], T]) -> T:
        if seq in gate.recent:
            return gate.recent[seq]
        try:
            result = append()
        finally:
            # a rejected batch still consumes its sequence number, or its successors would wait
            gate.next_seq = max(gate.next_seq, seq + 1)
            gate.changed.notify_all()
        gate.recent[seq] = result
        while len(gate.recent) > RECENT_APPENDS_PER_PRODUCER:
            gate.recent.popitem(last=False)
        return result
