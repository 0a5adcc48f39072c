"""Ctrl-C in a notebook: a KeyboardInterrupt that lands anywhere in a send loop (often inside
the producer, which ships batches on the calling thread) loses no message whose future the
caller got, stores nothing twice, and leaves the producer usable: flush() returns."""

from __future__ import annotations

import random
import signal
import threading

import pytest

from raykafka import Admin, Producer
from tests.test_faults import read_all

TIMEOUT_S = 60


def interrupt_main_thread_after(delay_s: float) -> threading.Thread:
    """SIGINT to this process's main thread after ``delay_s``: Python raises KeyboardInterrupt
    there at the next bytecode, as when a notebook user interrupts the kernel."""
    main = threading.main_thread().ident
    timer = threading.Timer(delay_s, signal.pthread_kill, (main, signal.SIGINT))
    timer.start()
    return timer


def send_until_interrupted(producer: Producer, topic: str, first: int, futures: dict) -> int:
    """Send numbered values until a KeyboardInterrupt arrives; returns the next number. A value
    is recorded in ``futures`` only when send() returned its future."""
    n = first
    try:
        while True:
            value = b"%08d" % n
            n += 1
            futures[value] = producer.send(topic, value)
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
    futures: dict[bytes, object] = {}
    producer = Producer(linger_ms=linger_ms, batch_size=batch_size)
    try:
        n = 0
        for _ in range(40):
            timer = interrupt_main_thread_after(rng.uniform(0.002, 0.03))
            n = send_until_interrupted(producer, topic, n, futures)
            timer.join()
        after = [producer.send(topic, b"after-%d" % i) for i in range(100)]
        producer.flush(timeout=TIMEOUT_S)  # hung forever when an interrupted request was lost
    finally:
        producer.close(timeout=TIMEOUT_S)

    acked = {value: future.result(timeout=0)[0].offset for value, future in futures.items()}
    after_offsets = [future.result(timeout=0)[0].offset for future in after]
    table = read_all(topic)
    values = table.column("value").to_pylist()
    offsets = table.column("offset").to_pylist()
    assert offsets == list(range(len(values)))
    numbered = [v for v in values if not v.startswith(b"after-")]
    assert numbered == sorted(set(numbered))  # in send order, nothing stored twice
    # Every value whose future the caller got is there, at the offset its future says; at most
    # one value per interrupt is stored without the caller having its future (interrupted
    # after the append, before send returned).
    assert {v: offsets[i] for i, v in enumerate(values) if v in acked} == acked
    assert len(numbered) - len(acked) <= 40
    assert values[-100:] == [b"after-%d" % i for i in range(100)]
    assert after_offsets == offsets[-100:]
