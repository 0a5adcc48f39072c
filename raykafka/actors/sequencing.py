"""Per-producer order and de-duplication of appends (Kafka's idempotent producer, KIP-98).

Ray may start an async actor's calls out of submission order (measured: 1,158 of
2,000 pipelined calls with mixed-size arguments), so every produce request
carries ``(producer_id, seq)`` and waits here until its predecessor was
appended. A request may carry several batches: they hold the consecutive numbers
``seq, seq + 1, ...`` and are appended one after the other in one turn.

Which batches were stored is the log's to say. An idempotent producer's batches carry
``(producer_id, producer_epoch, seq)`` in their frame headers, and the log's
``ProducerStateTable`` (``raykafka.storage.producer_state``) -- rebuilt on open, replicated
with the log -- answers a retry of a stored batch with the offsets it was stored at, on
this leader or on any later one, after restarts and failovers: each batch is stored once.
A producer without idempotence (``producer_epoch`` None) is only ordered; a retry of its
batch is answered from this leader's memory (``_Gate.recent``) while it leads, and stored
again after a restart or a leader change (at-least-once).

What stays in memory is the gate of each producer: the next sequence number it may append
(``next_seq``), and the waiters for it. A new leadership term starts every gate over:
from the producer's last stored sequence number + 1, or from its ``first_unacked`` -- the
lowest number it has no answer for, which every request carries -- whichever is higher.
A batch whose number is not the next one after the gate's wait (``gap_timeout_ms``) is
answered ``OutOfOrderSequence`` (Kafka's OUT_OF_ORDER_SEQUENCE_NUMBER), never appended out
of order.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import TypeVar

from raykafka.errors import LogDirFailed, NotLeader, OutOfOrderSequence, StorageFull
from raykafka.storage.producer_state import RETAINED_BATCHES, ProducerStateTable

logger = logging.getLogger(__name__)

#: Batches a partition remembers per producer to answer a retry instead of appending it again.
#: The producer keeps no more in flight per partition (it sizes its requests so; the default 5
#: requests of up to MAX_BATCHES_PER_REQUEST batches are 80).
RECENT_APPENDS_PER_PRODUCER = RETAINED_BATCHES
#: The most batches one produce request carries (the producer groups at most this many).
MAX_BATCHES_PER_REQUEST = 16
#: Rejections after which nothing of the batch was stored and the producer sends it again: the
#: batch keeps its place (the gate does not move past it), and the rest of its request, which
#: must not overtake it, gets the same answer.
RESENT = (StorageFull, LogDirFailed, NotLeader)

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
        self.recent: collections.OrderedDict[int, object] = collections.OrderedDict()  # not idempotent
        self.changed = asyncio.Condition()
        self.retired = False  # replaced by reset(): its waiters start over on the new gate


class Sequencer:
    """``producer_state()`` is the log's ProducerStateTable (a callable: a replica that starts
    its log over gets a new one)."""

    def __init__(self, name: str, producer_state: Callable[[], ProducerStateTable]):
        self.name = name
        self._state = producer_state
        self._gates: dict[tuple, _Gate] = {}

    async def reset(self) -> None:
        """Forget every gate (a new leadership term: the producers' state is the log's, and
        the answers of a producer without idempotence may name offsets another leader
        truncated). Appends waiting on the old gates are woken and start over on new ones."""
        gates, self._gates = self._gates, {}
        for gate in gates.values():
            async with gate.changed:
                gate.retired = True
                gate.changed.notify_all()

    async def run(
        self,
        producer_id,
        producer_epoch: int | None,
        seq: int,
        first_unacked: int,
        appends: list[Callable[[int], T]],
        gap_timeout_ms: int,
    ) -> list[T | Exception]:
        """Run ``appends`` (the batches ``seq, seq + 1, ...``; each is called with its sequence
        number) in order once ``seq`` is this producer's next; answer each batch stored already
        instead. Returns each batch's result -- ``(base_offset, log_append_time, next_offset)``
        -- or the exception that rejected it (see ``attempt``).

        ``producer_epoch`` None: a producer without idempotence (ordered, not persisted).
        ``first_unacked`` also moves the gate: every lower number was answered or given up by
        the producer, so none of them is worth waiting for. ``gap_timeout_ms`` bounds the wait
        for a predecessor that never comes (the request's own timeout).
        """
        n = len(appends)
        if producer_epoch is not None:
            known = self._state().epoch(producer_id)
            if known is not None and producer_epoch < known:
                return [
                    OutOfOrderSequence(
                        f"{self.name}: producer {producer_id} sent epoch {producer_epoch}, but the partition "
                        f"stored its epoch {known}: a newer instance of this producer exists"
                    )
                ] * n
        key = (producer_id, producer_epoch)
        while True:
            gate = self._gates.get(key)
            if gate is None:  # first contact in this leadership term
                gate = self._gates[key] = _Gate(
                    self._baseline(producer_id, producer_epoch, seq, first_unacked)
                )
            answers = [self._stored(gate, producer_id, producer_epoch, seq + i) for i in range(n)]
            if all(a is not None for a in answers):
                return answers
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
                            "%s: producer %s seq %d waited %d ms for seq %d; answering OutOfOrderSequence",
                            self.name,
                            producer_id,
                            seq,
                            gap_timeout_ms,
                            gate.next_seq,
                        )
                if gate.retired:
                    continue  # a new leadership term began meanwhile: wait in the new one
                return self._append_locked(gate, producer_id, producer_epoch, seq, appends)

    def _baseline(self, producer_id, producer_epoch: int | None, seq: int, first_unacked: int) -> int:
        """The first sequence number a new gate waits for: after the producer's last stored
        batch, or its first unanswered one, whichever is later."""
        first = min(first_unacked, seq)
        if producer_epoch is None:
            return first
        last = self._state().last_sequence(producer_id, producer_epoch)
        return first if last is None else max(last + 1, first)

    def _stored(self, gate: _Gate, producer_id, producer_epoch: int | None, number: int):
        """The answer for batch ``number`` if it was stored (and is remembered), else None."""
        if producer_epoch is None:
            return gate.recent.get(number)
        batch = self._state().find(producer_id, producer_epoch, number)
        return None if batch is None else (batch.base_offset, batch.append_time_ms, batch.next_offset)

    def _out_of_order(self, gate: _Gate, producer_id, producer_epoch: int | None, number: int):
        """The answer for batch ``number`` that is not the producer's next and not remembered."""
        if producer_epoch is not None:
            entry = self._state().entry(producer_id)
            if entry is not None and entry.epoch == producer_epoch and number < next(iter(entry.batches)):
                # Older than every batch remembered: stored, long ago (Kafka's DUPLICATE_SEQUENCE_NUMBER,
                # which its producer takes as success without an offset). Not stored again. (A
                # number missing between remembered ones was never stored: out of order below.)
                logger.warning(
                    "%s: producer %s resent batch %d, stored before its last %d batches; offset unknown",
                    self.name,
                    producer_id,
                    number,
                    len(entry.batches),
                )
                return (-1, -1, entry.last_batch.next_offset)
        return OutOfOrderSequence(
            f"{self.name}: batch {number} of producer {producer_id} is out of order (the partition "
            f"expected {gate.next_seq}): a batch before it never arrived, or this one was given up "
            f"by its producer; nothing of it was written"
        )

    def _append_locked(
        self,
        gate: _Gate,
        producer_id,
        producer_epoch: int | None,
        seq: int,
        appends: list[Callable[[int], T]],
    ) -> list[T | Exception]:
        results: list = []
        try:
            for number, append in enumerate(appends, start=seq):
                stored = self._stored(gate, producer_id, producer_epoch, number)
                if stored is not None:
                    results.append(stored)
                    continue
                if number != gate.next_seq:
                    results.append(self._out_of_order(gate, producer_id, producer_epoch, number))
                    continue
                result = attempt(lambda a=append, s=number: a(s))
                if isinstance(result, RESENT):  # not stored; the producer sends it again, in order
                    results.extend([result] * (len(appends) - len(results)))
                    break
                # any other rejection consumes its number too: the producer does not resend it
                gate.next_seq = number + 1
                if producer_epoch is None and not isinstance(result, Exception):
                    gate.recent[number] = result
                results.append(result)
        finally:
            gate.changed.notify_all()
            while len(gate.recent) > RECENT_APPENDS_PER_PRODUCER:
                gate.recent.popitem(last=False)
        return results
