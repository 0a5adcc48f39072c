"""Ctrl-C in a notebook: a KeyboardInterrupt that lands anywhere in a send loop (often inside
the producer, which ships batches on the calling thread) loses no message whose future the
caller got, stores nothing twice, and leaves the producer usable: flush() returns. One that
lands in a poll loop never makes the consumer repeat or reorder records."""

from __future__ import annotations

import dis
import inspect
import itertools
import random
import signal
import sys
import threading

import pyarrow as pa
import pytest

from raykafka import Admin, Consumer, Message, MessageSet, Producer, TopicPartition
from raykafka.api import batching, fetch, record_builder
from raykafka.api import consumer as consumer_module
from raykafka.api import producer as producer_module
from tests.test_faults import read_all

TIMEOUT_S = 60


class InterruptInjector:
    """Raises KeyboardInterrupt in this thread exactly where CPython may raise one for a
    signal -- at a function's start and right after a call returns (3.11's eval breaker) --
    at randomly chosen such points inside the code of ``files``. Many more, and denser, than
    real SIGINTs reach: those land mostly where the time goes, this anywhere. A trace
    function that raises is switched off by Python: ``arm()`` again after each interrupt."""

    def __init__(self, rng: random.Random, files: list[str], probability: float):
        self.rng = rng
        self.files = set(files)
        self.probability = probability
        self._points: dict[object, frozenset[int]] = {}
        self.raised = 0

    def _after_calls(self, code) -> frozenset[int]:
        points = self._points.get(code)
        if points is None:
            instructions = list(dis.get_instructions(code))
            points = frozenset(b.offset for a, b in itertools.pairwise(instructions) if a.opname == "CALL")
            self._points[code] = points
        return points

    def _maybe_raise(self) -> None:
        if self.rng.random() < self.probability:
            self.raised += 1
            raise KeyboardInterrupt

    def _on_call(self, frame, event, arg):
        if frame.f_code.co_filename not in self.files:
            return None
        if not frame.f_code.co_flags & inspect.CO_GENERATOR:
            # At a function's start. Not when a generator is resumed: any() closing one early
            # would swallow the interrupt ("Exception ignored") and switch the tracing off.
            self._maybe_raise()
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        return self._on_opcode

    def _on_opcode(self, frame, event, arg):
        if event == "opcode" and frame.f_lasti in self._after_calls(frame.f_code):
            self._maybe_raise()
        return self._on_opcode

    def arm(self) -> None:
        sys.settrace(self._on_call)

    def disarm(self) -> None:
        sys.settrace(None)


class Interrupter:
    """Ctrl-C for the main thread: SIGINT after ``delay_s``, and again every 0.5 s until
    ``stop()`` -- Python drops a KeyboardInterrupt raised while it runs a finalizer or a GC
    callback ("Exception ignored"), as it would a real Ctrl-C; the user presses it again.
    Its handler raises only until ``stop()``, so a late signal never escapes the test."""

    def __init__(self, delay_s: float):
        self._armed = True
        self._previous = signal.signal(signal.SIGINT, self._handler)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(delay_s,), daemon=True)
        self._thread.start()

    def _handler(self, signum, frame):
        if self._armed:
            raise KeyboardInterrupt

    def _run(self, delay_s: float) -> None:
        if self._stopped.wait(delay_s):
            return
        main = threading.main_thread().ident
        while True:
            signal.pthread_kill(main, signal.SIGINT)
            if self._stopped.wait(0.5):
                return

    def stop(self) -> None:
        self._armed = False
        self._stopped.set()
        self._thread.join()
        signal.signal(signal.SIGINT, self._previous)


def send_until_interrupted(
    producer: Producer, topic: str, first: int, futures: dict, rng: random.Random | None = None
) -> int:
    """Send numbered values until a KeyboardInterrupt arrives; returns the next number. A value
    is recorded in ``futures`` (value -> (future, index in its result)) only when send()
    returned its future. With ``rng``, each send takes one of the producer's paths at random:
    a bare value, a keyed one, one with headers, or a MessageSet of three."""
    n = first
    try:
        while True:
            kind = rng.randrange(4) if rng is not None else 0
            if kind == 3:
                values = [b"%08d" % i for i in range(n, n + 3)]
                n += 3
                future = producer.send(topic, MessageSet([Message(v) for v in values]))
                for i, value in enumerate(values):
                    futures[value] = (future, i)
                continue
            value = b"%08d" % n
            n += 1
            if kind == 0:
                futures[value] = (producer.send(topic, value), 0)
            elif kind == 1:
                futures[value] = (producer.send(topic, value, key=b"k", partition=0), 0)
            else:
                futures[value] = (producer.send(topic, value, headers={"h": b"x"}), 0)
    except KeyboardInterrupt:
        return n


# Where the interrupts land (counted with tracebacks, 200 interrupts each): with linger_ms=0 and
# tiny batches mostly in the drain that forms requests; with linger_ms=5 and 16 KiB batches a
# third in shipping (encoding, Ray's serialization and submission), the rest in appending.
@pytest.mark.parametrize(("linger_ms", "batch_size"), [(0, 2048), (5, 16384)])
def test_ctrl_c_during_send_loops_loses_nothing_and_flush_returns(rk, topic_name, linger_ms, batch_size):
    assert threading.current_thread() is threading.main_thread()  # signals go to the main thread
    topic = topic_name()
    Admin().create_topic(topic)
    rng = random.Random(20261126)
    futures: dict[bytes, tuple] = {}
    producer = Producer(linger_ms=linger_ms, batch_size=batch_size)
    try:
        n = 0
        for _ in range(40):
            interrupter = Interrupter(rng.uniform(0.002, 0.03))
            try:
                n = send_until_interrupted(producer, topic, n, futures)
            finally:
                interrupter.stop()
        after = [producer.send(topic, b"after-%d" % i) for i in range(100)]
        producer.flush(timeout=TIMEOUT_S)  # hung forever when an interrupted request was lost
    finally:
        producer.close(timeout=TIMEOUT_S)

    check_sent(topic, futures, after, interrupts=40)


def check_sent(topic: str, futures: dict, after: list, interrupts: int) -> None:
    """Every value whose future the caller got is stored once, in order, at its future's
    offset; at most three more values per interrupt (a MessageSet stored, but interrupted
    before send returned its future); then the 100 ``after`` values."""
    acked = {value: future.result(timeout=0)[i].offset for value, (future, i) in futures.items()}
    after_offsets = [future.result(timeout=0)[0].offset for future in after]
    table = read_all(topic)
    values = table.column("value").to_pylist()
    offsets = table.column("offset").to_pylist()
    assert offsets == list(range(len(values)))
    numbered = [v for v in values if not v.startswith(b"after-")]
    assert numbered == sorted(set(numbered))  # in send order, nothing stored twice
    assert {v: offsets[i] for i, v in enumerate(values) if v in acked} == acked
    assert len(numbered) - len(acked) <= 3 * interrupts
    assert values[-100:] == [b"after-%d" % i for i in range(100)]
    assert after_offsets == offsets[-100:]


def numbered_table(first: int, n: int) -> pa.Table:
    return pa.table({"value": pa.array([b"%08d" % i for i in range(first, first + n)], pa.binary())})


def rows(table: pa.Table) -> list[tuple[int, bytes]]:
    return list(zip(table.column("offset").to_pylist(), table.column("value").to_pylist(), strict=True))


def poll_until_interrupted(
    consumer: Consumer, rng: random.Random, taken: list[tuple[int, bytes]], max_messages: int = 3000
) -> None:
    """poll_batch / poll until a KeyboardInterrupt arrives; what the calls returned goes to ``taken``."""
    try:
        while True:
            if rng.random() < 0.5:
                table = consumer.poll_batch(max_messages=rng.randint(1, max_messages), timeout_s=1.0)
                taken.extend(rows(table))
            else:
                message = consumer.poll(timeout_s=1.0)
                if message is not None:
                    taken.append((message.offset, message.value))
    except KeyboardInterrupt:
        return


def drain(consumer: Consumer, taken: list[tuple[int, bytes]]) -> None:
    """Poll (without interrupts) until nothing more comes. (Not until the position is the log
    end: after an interrupted call the position stays at what the caller got, see API.md.)"""
    while True:
        table = consumer.poll_batch(max_messages=10_000, timeout_s=2.0)
        if not table.num_rows:
            return
        taken.extend(rows(table))


def check_taken(taken: list[tuple[int, bytes]], n: int, per_call: int, interrupts: int) -> None:
    """Records came in offset order, none twice, each with its own value, up to the log end.
    What an interrupted call had taken is lost with it (Python raises the interrupt where the
    call returns, too): at most one call's worth (``per_call``) per interrupt, never more."""
    offsets = [offset for offset, _ in taken]
    assert all(value == b"%08d" % offset for offset, value in taken)
    assert all(a < b for a, b in itertools.pairwise(offsets)), "a record came twice or out of order"
    assert n - len(offsets) <= per_call * interrupts
    assert offsets[-1] >= n - 1 - per_call, "the consumer stopped before the log end"


def test_ctrl_c_during_poll_loops_never_repeats_or_reorders(rk, topic_name):
    assert threading.current_thread() is threading.main_thread()
    topic = topic_name()
    Admin().create_topic(topic)
    n = 200_000
    with Producer() as producer:
        for first in range(0, n, 10_000):
            producer.send_batch(topic, numbered_table(first, 10_000))
    rng = random.Random(1126)
    taken: list[tuple[int, bytes]] = []
    consumer = Consumer(group_id=None, auto_offset_reset="earliest", fetch_max_bytes=256 << 10)
    try:
        consumer.assign([TopicPartition(topic, 0)])
        for _ in range(40):
            interrupter = Interrupter(rng.uniform(0.002, 0.03))
            try:
                poll_until_interrupted(consumer, rng, taken)
            finally:
                interrupter.stop()
        drain(consumer, taken)
    finally:
        consumer.close()
    check_taken(taken, n, per_call=3000, interrupts=40)


@pytest.mark.parametrize("linger_ms", [0, 5])
def test_an_interrupt_after_any_call_in_the_producer_loses_nothing(rk, topic_name, linger_ms):
    """The same checks with interrupts injected at random points after calls in the producer's
    own code (every send path, the drain, closing and shipping batches, the record builder)."""
    topic = topic_name()
    Admin().create_topic(topic)
    futures: dict[bytes, tuple] = {}
    rng = random.Random(7)
    injector = InterruptInjector(
        rng,
        [producer_module.__file__, record_builder.__file__, batching.__file__],
        probability=0.002,
    )
    producer = Producer(linger_ms=linger_ms, batch_size=600)
    try:
        n = 0
        while injector.raised < 300:
            injector.arm()
            try:
                n = send_until_interrupted(producer, topic, n, futures, rng)
            finally:
                injector.disarm()
        after = [producer.send(topic, b"after-%d" % i) for i in range(100)]
        producer.flush(timeout=TIMEOUT_S)
    finally:
        producer.close(timeout=TIMEOUT_S)
    check_sent(topic, futures, after, interrupts=injector.raised)


def test_an_interrupt_after_any_call_in_the_consumer_never_repeats_or_reorders(rk, topic_name):
    """Interrupts injected at random points after calls in the consumer's own code (filling,
    decoding fetches, poll, poll_batch)."""
    topic = topic_name()
    Admin().create_topic(topic)
    n = 100_000
    with Producer() as producer:
        for first in range(0, n, 500):  # small stored batches: many chunks to finish and drop
            producer.send_batch(topic, numbered_table(first, 500))
    rng = random.Random(11)
    injector = InterruptInjector(rng, [consumer_module.__file__, fetch.__file__], probability=0.03)
    taken: list[tuple[int, bytes]] = []
    consumer = Consumer(group_id=None, auto_offset_reset="earliest", fetch_max_bytes=64 << 10)
    try:
        consumer.assign([TopicPartition(topic, 0)])
        while injector.raised < 200:  # (interrupts keep coming at the log end too)
            injector.arm()
            try:
                poll_until_interrupted(consumer, rng, taken, max_messages=300)
            finally:
                injector.disarm()
        drain(consumer, taken)
    finally:
        consumer.close()
    check_taken(taken, n, per_call=300, interrupts=injector.raised)


def test_a_batch_opened_but_never_appended_to_is_not_sent(rk, topic_name):
    """An interrupt between opening a partition's batch and appending the record leaves an empty
    open batch; closing it (flush, linger, the next batch) must not send it -- a partition
    refuses an empty batch, and that error reached flush() -- nor leave flush() waiting."""
    topic = topic_name()
    Admin().create_topic(topic)
    with Producer(linger_ms=60_000) as producer:
        state = producer._topic(topic)
        with producer._lock:
            producer._reserve_locked(producer.batch_size // 4)
            producer._open_locked(state, 0, (topic, 0))  # the interrupt comes right after this
        producer.flush(timeout=TIMEOUT_S)
        future = producer.send(topic, b"next", partition=0)
        producer.flush(timeout=TIMEOUT_S)
        assert future.result(TIMEOUT_S)[0].offset == 0
