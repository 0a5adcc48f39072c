"""Faults on real processes and real files: SIGKILLed partition actors and TopicManager, torn and
corrupted segment tails. What was acknowledged survives, at its offset, byte for byte."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest
import ray

import raykafka
from raykafka import Admin, Consumer, Message, MessageSet, Producer, TopicPartition
from raykafka.actors.naming import TOPIC_MANAGER_NAME
from raykafka.errors import MessageTooLarge, RayNotConnected, RequestTimedOut
from raykafka.storage.framing import HEADER_SIZE, unpack_header

TIMEOUT_S = 60


def manager(rk):
    return ray.get_actor(TOPIC_MANAGER_NAME, namespace=rk.namespace)


def leader(rk, topic: str, partition: int = 0):
    return ray.get(manager(rk).topic_metadata.remote(topic), timeout=TIMEOUT_S)["leaders"][partition]


def wait_for(predicate, timeout_s: float = TIMEOUT_S, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def read_all(topic: str, partition: int = 0) -> pa.Table:
    """Every record from the log start to the log end (as the partition reports it)."""
    admin = Admin()
    start = admin.list_offsets(topic, partition, "earliest")
    end = admin.list_offsets(topic, partition, "latest")
    consumer = Consumer(group_id=None, auto_offset_reset="none")
    consumer.assign([TopicPartition(topic, partition, offset=start)])
    tables, got = [], 0
    deadline = time.monotonic() + TIMEOUT_S
    while got < end - start and time.monotonic() < deadline:
        table = consumer.poll_batch(max_messages=end - start - got, timeout_s=1.0)
        tables.append(table)
        got += table.num_rows
    consumer.close()
    assert got == end - start
    table = pa.concat_tables(tables) if tables else pa.table({"offset": pa.array([], pa.int64())})
    assert table.column("offset").to_pylist() == list(range(start, end))  # contiguous, in order
    return table


# -- (a) a partition actor SIGKILLed while a producer keeps sending -----------------------------


def test_sigkill_partition_actor_while_producing(rk, topic_name):
    topic = topic_name()
    Admin().create_topic(topic)
    handle = leader(rk, topic)
    old_pid = ray.get(handle.info.remote(), timeout=TIMEOUT_S)["pid"]

    producer = Producer(linger_ms=2, request_timeout_ms=20_000)
    sent: list[tuple[bytes, object]] = []
    stop = threading.Event()

    def produce():
        i = 0
        while not stop.is_set() and i < 3_000:
            value = b"msg-%06d-" % i + bytes([i % 251]) * (i % 50)
            sent.append((value, producer.send(topic, value)))
            i += 1
            time.sleep(0.005)

    def acked_after(index: int) -> int:
        return sum(1 for _, f in sent[index:] if f.done() and f.exception(0) is None)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    wait_for(lambda: acked_after(0) >= 50, what="acks before the kill")
    os.kill(old_pid, signal.SIGKILL)
    killed_at = len(sent)
    # keep sending through the restart until messages sent after the kill are acknowledged
    wait_for(lambda: acked_after(killed_at) >= 50, timeout_s=120, what="acks after the restart")
    stop.set()
    thread.join()
    with contextlib.suppress(Exception):  # failures are on the futures; only acks are promised
        producer.close(120)

    new_pid = ray.get(handle.info.remote(), timeout=TIMEOUT_S)["pid"]
    assert new_pid != old_pid  # it really restarted

    acked: dict[int, bytes] = {}
    acked_in_send_order = []
    failed = 0
    for value, future in sent:
        error = future.exception(TIMEOUT_S)
        if error is not None:
            assert isinstance(error, RequestTimedOut), repr(error)
            failed += 1
            continue
        [md] = future.result()
        assert md.offset not in acked, "two acknowledged messages share an offset"
        acked[md.offset] = value
        acked_in_send_order.append(md.offset)
    assert len(acked) >= 100

    table = read_all(topic)
    stored = dict(zip(table.column("offset").to_pylist(), table.column("value").to_pylist(), strict=True))
    for offset, value in acked.items():
        assert stored[offset] == value  # at its acknowledged offset, byte for byte
    # nothing corrupt or foreign: every stored record is one we sent
    sent_values = {value for value, _ in sent}
    assert set(stored.values()) <= sent_values
    # Order and completeness: the restarted actor takes the producer's lowest unanswered sequence
    # number as its baseline and the producer resends in order, so nothing is reordered or lost.
    reordered = sum(1 for x, y in itertools.pairwise(acked_in_send_order) if y < x)
    assert reordered == 0, f"{reordered} acknowledged message(s) reordered across the restart"
    assert failed == 0, f"{failed} of {len(sent)} sends failed although the actor came back"


# -- (b) torn tail and a flipped byte in the last batch of the active segment ---------------------


def _segment_frames(path: Path) -> list[tuple[int, object]]:
    data = path.read_bytes()
    frames, pos = [], 0
    while pos < len(data):
        header = unpack_header(data, pos)
        frames.append((pos, header))
        pos += header.frame_length
    assert pos == len(data)
    return frames


DAMAGES = ["torn-payload", "torn-header", "flipped-byte", "flipped-header"]


def _damage(segment: Path, damage: str) -> None:
    """Damage the last batch of ``segment`` in place: cut it short, or flip one bit of it."""
    last_pos, last = _segment_frames(segment)[-1]
    with open(segment, "r+b") as f:
        if damage == "torn-payload":
            f.truncate(last_pos + HEADER_SIZE + last.payload_length // 2)
        elif damage == "torn-header":
            f.truncate(last_pos + HEADER_SIZE // 2)
        else:  # a payload byte, or one inside the header's CRC-covered offsets
            at = last_pos + (HEADER_SIZE + last.payload_length // 2 if damage == "flipped-byte" else 20)
            f.seek(at)
            byte = f.read(1)
            f.seek(at)
            f.write(bytes([byte[0] ^ 0x40]))


def test_damaged_tails_are_cut_and_appends_continue(rk, topic_name):
    """Each partition gets one kind of damage to the last batch of its active segment."""
    topic = topic_name()
    admin = Admin()
    admin.create_topic(topic, partitions=len(DAMAGES))

    def value(p, batch, i):
        return b"p%d-b%d-m%d" % (p, batch, i) * 20

    with Producer() as producer:
        for p in range(len(DAMAGES)):
            for batch in range(3):  # three batches of three: offsets 0-2, 3-5, 6-8
                messages = MessageSet(Message(value(p, batch, i)) for i in range(3))
                mds = producer.send(topic, messages, partition=p).result(TIMEOUT_S)
                assert [md.offset for md in mds] == [3 * batch, 3 * batch + 1, 3 * batch + 2]
    handles = [leader(rk, topic, p) for p in range(len(DAMAGES))]
    segments = []
    for handle in handles:
        directory = Path(ray.get(handle.info.remote(), timeout=TIMEOUT_S)["directory"])
        [segment] = sorted(directory.glob("*.log"))
        segments.append(segment)

    # Stop everything that could touch the files: the manager (it would recreate the actors), then
    # the partition actors, for good. Damage the files while nothing runs.
    ray.kill(manager(rk), no_restart=True)
    for handle in handles:
        ray.kill(handle, no_restart=True)
    for handle in handles:
        wait_for(lambda h=handle: _is_dead(h), what="a partition actor to die")
    for segment, damage in zip(segments, DAMAGES, strict=True):
        assert [h.base_offset for _, h in _segment_frames(segment)] == [0, 3, 6]
        _damage(segment, damage)

    # A new manager (same name: get_if_exists) replays its metadata and recreates the missing
    # actors, which recover their logs from disk.
    raykafka.connect(namespace=rk.namespace, data_dir=rk.data_dir)
    admin = Admin()
    assert admin.list_topics() == [topic]
    for p, damage in enumerate(DAMAGES):
        wait_for(lambda p=p: admin.list_offsets(topic, p, "latest") == 6, what=f"log end 6 after {damage}")
        assert admin.list_offsets(topic, p, "earliest") == 0
        table = read_all(topic, p)  # the clean prefix, exactly
        assert table.column("value").to_pylist() == [value(p, b, i) for b in range(2) for i in range(3)]

    # new appends continue right after the clean prefix, and are read back
    with Producer() as producer:
        for p in range(len(DAMAGES)):
            mds = producer.send(topic, MessageSet([Message(b"new-0"), Message(b"new-1")]), partition=p)
            assert [md.offset for md in mds.result(TIMEOUT_S)] == [6, 7]
    for p, segment in enumerate(segments):
        assert read_all(topic, p).column("value").to_pylist()[5:] == [value(p, 1, 2), b"new-0", b"new-1"]
        assert [h.base_offset for _, h in _segment_frames(segment)] == [0, 3, 6]


def _is_dead(handle) -> bool:
    try:
        ray.get(handle.info.remote(), timeout=5)
    except ray.exceptions.RayActorError:
        return True
    except ray.exceptions.GetTimeoutError:
        return False
    return False


# -- (c) the TopicManager SIGKILLed -------------------------------------------------------------------


def test_sigkill_topic_manager(rk, topic_name):
    admin = Admin()
    a, b = topic_name("a"), topic_name("b")
    admin.create_topic(a, partitions=3, config={"retention.ms": "3600000", "max.message.bytes": "5000"})
    admin.create_topic(b, config={"message.timestamp.type": "LogAppendTime"})
    producer = Producer()
    for p in range(3):
        producer.send(a, MessageSet(Message(b"a%d-%d" % (p, i)) for i in range(p + 1)), partition=p).result(
            TIMEOUT_S
        )
    producer.send(b, b"b0").result(TIMEOUT_S)
    before = {name: admin.describe_topic(name) for name in (a, b)}
    before_pids = {
        (name, p): ray.get(leader(rk, name, p).info.remote(), timeout=TIMEOUT_S)["pid"]
        for name, n in ((a, 3), (b, 1))
        for p in range(n)
    }

    old_pid = ray.get(manager(rk).ping.remote(), timeout=TIMEOUT_S)["pid"]
    os.kill(old_pid, signal.SIGKILL)
    new_pid = wait_for(
        lambda: (pid := ray.get(manager(rk).ping.remote(), timeout=5)["pid"]) != old_pid and pid,
        what="the TopicManager to restart",
    )
    assert new_pid != old_pid

    # the same Admin object keeps working (its calls retry across the restart)
    assert admin.list_topics() == sorted([a, b])
    for name in (a, b):
        after = admin.describe_topic(name)
        assert after == before[name]  # configs, partitions, placement and offsets
    # the partition actors were re-attached, not recreated
    for (name, p), pid in before_pids.items():
        assert ray.get(leader(rk, name, p).info.remote(), timeout=TIMEOUT_S)["pid"] == pid

    # produce and consume still work, with the old producer and with new clients
    assert producer.send(a, b"a0-late", partition=0).result(TIMEOUT_S)[0].offset == 1
    producer.close()
    with Producer() as fresh:
        assert fresh.send(b, b"b1").result(TIMEOUT_S)[0].offset == 1
        with pytest.raises(MessageTooLarge):  # the config survived
            fresh.send(a, b"x" * 5001, partition=2)
    assert read_all(a, 0).column("value").to_pylist() == [b"a0-0", b"a0-late"]
    assert read_all(a, 2).column("value").to_pylist() == [b"a2-0", b"a2-1", b"a2-2"]
    assert read_all(b).column("value").to_pylist() == [b"b0", b"b1"]
    # and the manager takes new work
    c = topic_name("c")
    admin.create_topic(c, partitions=2)
    assert admin.list_topics() == sorted([a, b, c])
    admin.delete_topic(b)
    assert admin.list_topics() == sorted([a, c])


def test_ray_shutdown_under_open_clients_starts_no_new_ray(rk, topic_name):
    """``ray.shutdown()`` while a producer holds a lingering batch and a group consumer
    heartbeats. Neither may start a new Ray behind the user's back -- Ray's auto-init would, on
    their next call, from their background threads too, racing the user's own next ``ray.init``
    (seen in CI: "Maybe you called ray.init twice"). Calls fail with RayNotConnected instead."""
    from tests.conftest import ensure_local_ray, raykafka_threads

    topic = topic_name()
    Admin().create_topic(topic, partitions=1)
    producer = Producer(linger_ms=300)
    assert producer.send(topic, b"before").result(timeout=TIMEOUT_S)[0].offset == 0
    consumer = Consumer(group_id=f"g-{topic}", auto_offset_reset="earliest", heartbeat_interval_ms=50)
    consumer.subscribe([topic])
    first = consumer.poll(timeout_s=TIMEOUT_S)
    assert (first.value, first.offset) == (b"before", 0)
    lingering = producer.send(topic, b"after")  # shipped by the sender thread, after the shutdown
    try:
        ray.shutdown()
        with pytest.raises(RayNotConnected):
            lingering.result(timeout=TIMEOUT_S)
        with pytest.raises(RayNotConnected):
            producer.send(topic, b"later").result(timeout=TIMEOUT_S)
        with pytest.raises(RayNotConnected):
            consumer.poll(timeout_s=1.0)
        consumer.close()  # nothing to commit to, nothing to tell: quiet
        with pytest.raises(RayNotConnected):
            producer.close()  # flush reports the batches that could not go
        time.sleep(0.5)  # the heartbeat thread had ~10 turns
        assert not ray.is_initialized()
        assert raykafka_threads() == {}
    finally:
        ensure_local_ray()


def test_a_shutdown_between_the_senders_connected_check_and_its_call_starts_no_new_ray(
    rk, topic_name, monkeypatch
):
    """The race above, made to happen every time: the producer's sender thread checks that Ray
    is connected and is held right after the check until the main thread's ``ray.shutdown()``
    has disconnected (at most HOLD_S). A call made after a stale check starts a new Ray
    through Ray's auto-init; the sender must make its check and its call as one step
    (``connection.submit``, under the lock ``ray.shutdown()`` itself takes), so the shutdown
    waits for the call instead, and no Ray is left running afterwards."""
    from tests.conftest import ensure_local_ray, raykafka_threads

    hold_s = 3.0
    # Should the sender auto-init (the bug), a private Ray: not another Ray running on this machine
    monkeypatch.setenv("RAY_ADDRESS", "local")
    topic = topic_name()
    Admin().create_topic(topic, partitions=1)
    real_is_initialized = ray.is_initialized
    armed, in_window = threading.Event(), threading.Event()

    def is_initialized() -> bool:
        answer = real_is_initialized()
        if answer and armed.is_set() and threading.current_thread().name == "raykafka-producer-sender":
            armed.clear()  # the sender's next connected check: held until the shutdown disconnected
            in_window.set()
            deadline = time.monotonic() + hold_s
            while real_is_initialized() and time.monotonic() < deadline:
                time.sleep(0.005)
        return answer

    producer = Producer(linger_ms=50, request_timeout_ms=5_000)
    try:
        assert producer.send(topic, b"before").result(timeout=TIMEOUT_S)[0].offset == 0
        ray.is_initialized = is_initialized  # the module attribute every caller looks up
        armed.set()
        lingering = producer.send(topic, b"after")  # shipped by the sender thread
        assert in_window.wait(TIMEOUT_S), "the sender never checked the connection"
        ray.shutdown()
        ray.is_initialized = real_is_initialized
        # Sent just before the shutdown (stored or not), or refused after it: never a new Ray.
        try:
            assert lingering.result(timeout=TIMEOUT_S)[0].offset == 1
        except (RayNotConnected, RequestTimedOut):
            pass
        with contextlib.suppress(RayNotConnected, RequestTimedOut):
            producer.close(timeout=TIMEOUT_S)
        assert raykafka_threads() == {}
        assert not ray.is_initialized(), "the sender thread started a new Ray"
    finally:
        ray.is_initialized = real_is_initialized
        armed.clear()
        with contextlib.suppress(Exception):
            producer.close(timeout=10)
        if ray.is_initialized():  # the old code's stray Ray: not the session's, stop it
            ray.shutdown()
        ensure_local_ray()
