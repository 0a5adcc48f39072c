"""Single node: throughput against a no-op actor ceiling, latency, restart and memory.

200-byte messages, one partition, one producer and one consumer in this driver.
Every throughput figure is given with its ratio to *the ceiling*: a no-op async Ray
actor (``num_cpus=0``) fed the same pre-built 10,000-message Arrow RecordBatches with
the same pipelining (at most ``--in-flight`` calls in flight, like the producer's
``max_in_flight_requests_per_partition``), measured in the same process, interleaved
with the other paths. Absolute numbers drift on a small shared machine; the ratios are
what to compare.

Paths (each run measures them in this order; medians over runs are reported):

* ceiling          -- no-op actor, pipelined RecordBatch arguments
* ceiling (IPC)    -- the same, but the argument is the batch's IPC bytes
                      (``RecordBatch.serialize()``), which is what the producer ships
* ceiling + write  -- the IPC-bytes no-op actor that also ``os.writev``s each payload to
                      a growing file: the fairer ceiling for anything that stores data
* append direct    -- the real PartitionActor's ``append`` fed the same batches, already
                      encoded as the producer ships them, with the same pipelining: what
                      the partition actor can take one batch per call
* grouped (info)   -- the IPC-bytes no-op actor and the PartitionActor fed 4 batches per
                      call (a producer with a backlog groups batches into one request):
                      what fewer, larger calls buy each of them
* queue put/get    -- ``ray.util.queue.Queue`` put_nowait_batch / get_nowait_batch of
                      10,000 Python ``bytes``, the Ray-native peer
* send_batch       -- ``Producer.send_batch`` of 10,000-row tables, then ``flush``
* send             -- ``Producer.send(topic, value)`` per message, then ``flush``
* poll_batch       -- ``Consumer.poll_batch`` until everything sent was read
* iterator         -- ``for m in consumer`` until everything sent was read
* latency          -- ``linger_ms=0`` producer at a steady rate, consumer thread polling;
                      send-to-receive time of each message
* latency floor    -- the same pacing through ``LatencyPipe``, a bare async actor with a
                      long-polling fetch: what Ray itself costs on this machine right now
* restart          -- a partition actor holding a large log is SIGKILLed; time until
                      ``offsets()`` and a ``fetch`` answer again, and ``info()["open_seconds"]``
                      (only when the partition actor runs on this machine)
* memory           -- RSS and USS of an idle partition actor (and of a bare no-op actor)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import struct
import tempfile
import threading
import time
from itertools import islice

import ray

from raykafka.actors.partition import DEFAULT_APPEND_REQUEST
from raykafka.api.batching import normalize_table
from raykafka.bench.common import (
    BATCH_MESSAGES,
    MESSAGE_BYTES,
    batch_count,
    build_batches,
    median,
    percentile,
    produce_tables,
)
from raykafka.bench.report import throughput_row, timing_row
from raykafka.storage.records import encode_record_batch

TARGETS = {  # from the issue: ratio to the ceiling
    "send_batch": 0.8,
    "send": 0.4,
    "poll_batch": 0.8,
    "iterator": 0.4,
}
LATENCY_TARGETS_MS = {"p50": 3.0, "p99": 15.0}
RESTART_TARGET_S = 3.0  # for a 1 GB log


def sizes(quick: bool, messages: int | None = None) -> dict:
    n_messages = batch_count(messages or (200_000 if quick else 1_000_000)) * BATCH_MESSAGES
    return {
        "messages": n_messages,
        "restart_mb": 200 if quick else 1000,
        "latency_messages": 2000 if quick else 5000,
    }


# -- the ceiling -----------------------------------------------------------------------


@ray.remote(num_cpus=0, max_restarts=-1)
class NoOpSink:
    """Receives a batch and does nothing with it; answers like PartitionActor.append.
    ``append_write`` also writes the payload to a file, as a log would (page cache only)."""

    def __init__(self):
        self._fd = None
        self._path = None

    async def append(self, payload, producer_id=None, seq=0, sync=False):
        return 0, -1

    async def append_write(self, payload, producer_id=None, seq=0, sync=False):
        os.writev(self._fd, [payload])
        return 0, -1

    async def new_file(self):
        """Start a new, empty file (the partition log extends its file too)."""
        await self.close_file()
        fd, self._path = tempfile.mkstemp(prefix="raykafka-bench-sink-")
        self._fd = fd

    async def close_file(self):
        if self._fd is not None:
            os.close(self._fd)
            os.unlink(self._path)
            self._fd = None

    async def pid(self):
        return os.getpid()


def _call_append(append, payload_or_payloads):
    """A partition actor's ``append`` as a benchmark path calls it: no producer id."""
    return append.remote(payload_or_payloads, DEFAULT_APPEND_REQUEST)


#: Batches per call in the grouped (info) rows.
GROUPED_BATCHES = 4


def bench_grouped(call, payloads, n_batches, in_flight, on_done=None) -> float:
    """``bench_ceiling`` with GROUPED_BATCHES payloads per call (a list), as the producer
    groups a backlog into one request."""
    groups = [
        [payloads[j % len(payloads)] for j in range(i, min(i + GROUPED_BATCHES, n_batches))]
        for i in range(0, n_batches, GROUPED_BATCHES)
    ]
    progress = None if on_done is None else (lambda n: on_done(n * GROUPED_BATCHES))
    return bench_ceiling(call, groups, len(groups), in_flight, progress)


def pipelined(call, args, in_flight: int, on_done=None) -> None:
    """Submit ``call(arg)`` for every arg with at most ``in_flight`` unanswered; wait for all."""
    pending = []
    for arg in args:
        if len(pending) >= in_flight:
            done, pending = ray.wait(pending, num_returns=1)
            ray.get(done)
            if on_done is not None:
                on_done(BATCH_MESSAGES)
        pending.append(call(arg))
    ray.get(pending)
    if on_done is not None:
        on_done(BATCH_MESSAGES * len(pending))


def bench_ceiling(call, payloads, n_batches, in_flight, on_done=None) -> float:
    args = [payloads[i % len(payloads)] for i in range(n_batches)]
    start = time.perf_counter()
    pipelined(call, args, in_flight, on_done)
    return time.perf_counter() - start


# -- ray.util.queue ----------------------------------------------------------------------


def bench_queue(value_lists, n_batches, on_done=None) -> tuple[float, float]:
    from ray.util.queue import Queue

    queue = Queue(actor_options={"num_cpus": 0})
    try:
        ray.get(queue.actor.qsize.remote())  # started
        start = time.perf_counter()
        for i in range(n_batches):
            queue.put_nowait_batch(value_lists[i % len(value_lists)])
            if on_done is not None:
                on_done(BATCH_MESSAGES)
        put_s = time.perf_counter() - start
        start = time.perf_counter()
        got = 0
        for _ in range(n_batches):
            got += len(queue.get_nowait_batch(BATCH_MESSAGES))
            if on_done is not None:
                on_done(BATCH_MESSAGES)
        get_s = time.perf_counter() - start
        assert got == n_batches * BATCH_MESSAGES, got
    finally:
        queue.shutdown()
    return put_s, get_s


# -- raykafka ------------------------------------------------------------------------------


def bench_send(topic, value_chunks, on_done=None) -> float:
    from raykafka import Producer

    producer = Producer()
    try:
        producer.partitions_for(topic)
        send = producer.send
        start = time.perf_counter()
        for chunk in value_chunks:
            for value in chunk:
                send(topic, value)
            if on_done is not None:
                on_done(len(chunk))
        producer.flush()
        return time.perf_counter() - start
    finally:
        producer.close()


def assigned_consumer(topic, partition: int = 0):
    from raykafka import Consumer, TopicPartition

    consumer = Consumer(group_id=None, auto_offset_reset="earliest")
    consumer.assign([TopicPartition(topic, partition)])
    return consumer


def bench_poll_batch(topic, n_messages, on_done=None) -> float:
    consumer = assigned_consumer(topic)
    try:
        start = time.perf_counter()
        got = 0
        deadline = time.monotonic() + 120
        while got < n_messages and time.monotonic() < deadline:
            rows = consumer.poll_batch(max_messages=BATCH_MESSAGES, timeout_s=5.0).num_rows
            got += rows
            if on_done is not None:
                on_done(rows)
        elapsed = time.perf_counter() - start
        assert got == n_messages, f"poll_batch read {got} of {n_messages}"
        return elapsed
    finally:
        consumer.close()


def bench_iterator(topic, n_messages, on_done=None) -> float:
    """``for m in consumer`` (the user loop body counts), in slices of BATCH_MESSAGES."""
    consumer = assigned_consumer(topic)
    try:
        messages = iter(consumer)
        got = 0
        message = None
        start = time.perf_counter()
        while got < n_messages:
            for message in islice(messages, min(BATCH_MESSAGES, n_messages - got)):  # noqa: B007
                got += 1
            if on_done is not None:
                on_done(BATCH_MESSAGES)
        elapsed = time.perf_counter() - start
        assert message is not None and message.offset == n_messages - 1, f"iterator ended at {message}"
        return elapsed
    finally:
        consumer.close()


@ray.remote(num_cpus=0)
class LatencyPipe:
    """The latency floor: an async actor that keeps appended payloads in a list and answers a
    long-polling ``fetch`` as soon as one arrives -- what any Ray actor-based log pays."""

    def __init__(self):
        self._payloads: list[bytes] = []
        self._arrived = asyncio.Event()

    async def append(self, payload):
        self._payloads.append(payload)
        arrived, self._arrived = self._arrived, asyncio.Event()
        arrived.set()
        return len(self._payloads) - 1

    async def fetch(self, offset, max_wait_ms):
        if offset >= len(self._payloads):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), max_wait_ms / 1000)
        return self._payloads[offset:]


def _paced_latency(n_messages, rate_per_s, warmup, send, receive_loop, on_done=None) -> list[float]:
    """Call ``send(payload)`` ``n_messages`` times at ``rate_per_s`` while ``receive_loop(record)``
    runs in a thread and calls ``record(payload)`` per arrival. Each payload starts with its send
    time (perf_counter_ns, same process). Returns latencies in ms, the first ``warmup`` dropped."""
    pad = b"\0" * (MESSAGE_BYTES - 8)
    latencies_ns: list[int] = []
    ready = threading.Event()
    failure: list[BaseException] = []

    def record(payload) -> None:
        latencies_ns.append(time.perf_counter_ns() - struct.unpack_from("<q", payload)[0])

    def consume():
        try:
            receive_loop(record, ready, lambda: len(latencies_ns) >= n_messages)
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=consume, name="bench-latency-consumer", daemon=True)
    thread.start()
    ready.wait(30)
    interval = 1.0 / rate_per_s
    start = time.perf_counter()
    for i in range(n_messages):
        delay = start + i * interval - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        send(struct.pack("<q", time.perf_counter_ns()) + pad)
        if on_done is not None and i % 100 == 99:
            on_done(100)
    thread.join(n_messages / rate_per_s + 60)
    if failure:
        raise failure[0]
    assert len(latencies_ns) == n_messages, f"latency consumer got {len(latencies_ns)} of {n_messages}"
    return [ns / 1e6 for ns in latencies_ns[warmup:]]


def bench_latency(topic, n_messages, rate_per_s, warmup, on_done=None) -> list[float]:
    """``linger_ms=0`` producer at ``rate_per_s``; a consumer thread polls and measures arrival."""
    from raykafka import Producer

    def receive_loop(record, ready, done):
        consumer = assigned_consumer(topic)
        try:
            consumer.poll(timeout_s=0.05)  # resolve the position; the first long poll is parked
            ready.set()
            deadline = time.monotonic() + n_messages / rate_per_s + 30
            while not done() and time.monotonic() < deadline:
                m = consumer.poll(timeout_s=0.5)
                if m is not None:
                    record(m.value)
        finally:
            consumer.close()

    producer = Producer(linger_ms=0)
    try:
        producer.partitions_for(topic)
        return _paced_latency(
            n_messages,
            rate_per_s,
            warmup,
            lambda payload: producer.send(topic, payload, partition=0),
            receive_loop,
            on_done,
        )
    finally:
        producer.close()


def bench_latency_floor(n_messages, rate_per_s, warmup, in_flight: int) -> list[float]:
    """The same measurement through a ``LatencyPipe`` actor: the producer side keeps at most
    ``in_flight`` appends unanswered (like the producer), the consumer thread long-polls."""
    pipe = LatencyPipe.remote()
    pending: list = []

    def send(payload):
        if len(pending) >= in_flight:
            ray.get(pending.pop(0))
        pending.append(pipe.append.remote(payload))

    def receive_loop(record, ready, done):
        offset = 0
        ray.get(pipe.fetch.remote(0, 0))
        ready.set()
        deadline = time.monotonic() + n_messages / rate_per_s + 30
        while not done() and time.monotonic() < deadline:
            payloads = ray.get(pipe.fetch.remote(offset, 500))
            offset += len(payloads)
            for payload in payloads:
                record(payload)

    try:
        return _paced_latency(n_messages, rate_per_s, warmup, send, receive_loop)
    finally:
        ray.kill(pipe)


# -- restart and memory ----------------------------------------------------------------------


def _wait_answer(call, deadline_s: float = 120) -> float:
    """Seconds until ``call()`` (a ray.get) answers, retrying while the actor is down."""
    from raykafka.api.rpc import ACTOR_GONE

    start = time.perf_counter()
    while time.perf_counter() < start + deadline_s:
        try:
            call()
        except (ray.exceptions.GetTimeoutError, *ACTOR_GONE):
            time.sleep(0.01)
            continue
        return time.perf_counter() - start
    raise RuntimeError(f"actor did not come back within {deadline_s:.0f} s")


def bench_restart(handle, expected_end) -> dict:
    """SIGKILL the actor's process; time until offsets() and then a fetch answer again."""
    before = ray.get(handle.info.remote())
    end_offset = []
    os.kill(before["pid"], signal.SIGKILL)
    killed = time.perf_counter()
    offsets_s = _wait_answer(lambda: end_offset.append(ray.get(handle.offsets.remote(), timeout=2)[1]))
    frames, _, _ = ray.get(handle.fetch.remote(0, 1 << 20, 0), timeout=30)
    fetch_s = time.perf_counter() - killed
    after = ray.get(handle.info.remote())
    assert after["pid"] != before["pid"], "the actor process was not replaced"
    assert end_offset[-1] == expected_end, (end_offset[-1], expected_end)
    assert frames, "fetch after restart returned nothing"
    return {
        "offsets_s": offsets_s,
        "fetch_s": fetch_s,
        "open_s": after["open_seconds"],
        "size_bytes": after["size_bytes"],
        "segments": after["segments"],
    }


def bench_ray_restart_floor(sink) -> float:
    """The same SIGKILL on the no-op actor: what Ray alone takes to bring an actor back."""
    os.kill(ray.get(sink.pid.remote()), signal.SIGKILL)
    return _wait_answer(lambda: ray.get(sink.pid.remote(), timeout=2))


def process_memory_mb(pid) -> tuple[float, float]:
    import psutil

    info = psutil.Process(pid).memory_full_info()
    return info.rss / 1e6, info.uss / 1e6


def _on_this_node(session, topic) -> bool:
    leader = session.admin.describe_topic(topic).partitions[0].leader_node_id
    return leader == ray.get_runtime_context().get_node_id()


# -- the part ------------------------------------------------------------------------------------


PATHS = (
    ("ceiling", "ceiling: no-op actor, RecordBatch args"),
    ("ceiling_ipc", "no-op actor, IPC bytes args (info)"),
    ("ceiling_write", "no-op actor + writev payload to file (info)"),
    ("queue_put", "ray.util.queue put_nowait_batch"),
    ("queue_get", "ray.util.queue get_nowait_batch"),
    ("append_direct", "PartitionActor.append, IPC batches (info)"),
    ("ceiling_grouped", "no-op actor, 4 IPC batches per call (info)"),
    ("append_grouped", "PartitionActor.append, 4 per call (info)"),
    ("send_batch", "Producer.send_batch (10k-row tables)"),
    ("send", "Producer.send per message"),
    ("poll_batch", "Consumer.poll_batch"),
    ("iterator", "Consumer iterator (for m in consumer)"),
)


def run(session, opts, tracker) -> dict:
    """Measure every single-node path ``opts.runs`` times, interleaved; returns the report part
    (with ``"ceiling_rate"``, msgs/s, for the other areas' ratios)."""
    import psutil  # noqa: F401  (fail early: pip install psutil, or the dev extra)

    load_start = os.getloadavg()[0]
    size = sizes(opts.quick, opts.messages)
    n_messages, restart_mb = size["messages"], opts.restart_mb or size["restart_mb"]
    latency_messages = opts.latency_messages or size["latency_messages"]
    n_batches = n_messages // BATCH_MESSAGES
    skip = opts.skip
    runs = opts.runs

    batches = build_batches()
    tables = [_table(b) for b in batches]
    ipc_buffers = [b.serialize() for b in batches]
    # the producer's payloads: RECORD_SCHEMA batches as IPC, to call the partition actor directly
    record_payloads = [encode_record_batch(normalize_table(b)) for b in batches]
    value_lists = [b.column(0).to_pylist() for b in batches]
    value_chunks = [value_lists[i % len(value_lists)] for i in range(n_batches)]

    sink = NoOpSink.remote()
    ray.get(sink.new_file.remote())
    results: dict[str, list[float]] = {key: [] for key, _ in PATHS}
    progress = {
        key: tracker.task(label, n_messages * runs)
        for key, label in PATHS
        if not (key.startswith("queue") and "queue" in skip)
    }
    lat_p50, lat_p99, lat_max = [], [], []
    floor_p50, floor_p99 = [], []
    lat_task = (
        tracker.task("latency (messages sent)", latency_messages * runs) if "latency" not in skip else None
    )
    try:
        # warm-up: worker processes, imports, first calls
        warm = session.new_topic("warm")
        bench_ceiling(sink.append.remote, batches, 4, opts.in_flight)
        produce_tables(warm, tables, 4, partition=0)
        bench_send(warm, [value_lists[0], value_lists[1]])
        bench_poll_batch(warm, 60_000)
        session.drop_topics()

        for _ in range(runs):
            adv = {key: task.advance for key, task in progress.items()}
            results["ceiling"].append(
                bench_ceiling(sink.append.remote, batches, n_batches, opts.in_flight, adv["ceiling"])
            )
            results["ceiling_ipc"].append(
                bench_ceiling(sink.append.remote, ipc_buffers, n_batches, opts.in_flight, adv["ceiling_ipc"])
            )
            ray.get(sink.new_file.remote())
            results["ceiling_write"].append(
                bench_ceiling(
                    sink.append_write.remote, ipc_buffers, n_batches, opts.in_flight, adv["ceiling_write"]
                )
            )
            if "queue" not in skip:
                half = _Halves(adv["queue_put"], adv["queue_get"], n_messages)
                put_s, get_s = bench_queue(value_lists, n_batches, half)
                results["queue_put"].append(put_s)
                results["queue_get"].append(get_s)
            # What the partition actor itself can take (the same pipelining, no producer), one
            # batch and four batches per call; its gap to the writev row is the actor's own work.
            for key, bench in (("append_direct", bench_ceiling), ("append_grouped", bench_grouped)):
                append = session.leader_handle(session.new_topic(key)).append
                call = functools.partial(_call_append, append)
                results[key].append(bench(call, record_payloads, n_batches, opts.in_flight, adv[key]))
            grouped = bench_grouped(
                sink.append.remote, ipc_buffers, n_batches, opts.in_flight, adv["ceiling_grouped"]
            )
            results["ceiling_grouped"].append(grouped)
            t_batch = session.new_topic("batch")
            results["send_batch"].append(
                produce_tables(t_batch, tables, n_batches, partition=0, on_batch=adv["send_batch"])
            )
            results["poll_batch"].append(bench_poll_batch(t_batch, n_messages, adv["poll_batch"]))
            t_single = session.new_topic("single")
            results["send"].append(bench_send(t_single, value_chunks, adv["send"]))
            results["iterator"].append(bench_iterator(t_single, n_messages, adv["iterator"]))
            if lat_task is not None:
                warmup = min(100, latency_messages // 10)
                lat = bench_latency(
                    session.new_topic("latency"),
                    latency_messages,
                    opts.latency_rate,
                    warmup=warmup,
                    on_done=lat_task.advance,
                )
                lat_p50.append(percentile(lat, 50))
                lat_p99.append(percentile(lat, 99))
                lat_max.append(max(lat))
                floor = bench_latency_floor(
                    latency_messages,
                    opts.latency_rate,
                    warmup=warmup,
                    in_flight=opts.in_flight,
                )
                floor_p50.append(percentile(floor, 50))
                floor_p99.append(percentile(floor, 99))
            session.drop_topics()

        restart = []
        if "restart" not in skip:
            t_restart = session.new_topic("restart")
            if _on_this_node(session, t_restart):
                task = tracker.task(f"restart after SIGKILL ({restart_mb} MB log)", runs + 1)
                n_fill = batch_count(restart_mb * 1_000_000 // MESSAGE_BYTES)
                produce_tables(t_restart, tables, n_fill, partition=0)
                task.advance(1)
                handle = session.leader_handle(t_restart)
                for _ in range(runs):
                    restart.append(bench_restart(handle, n_fill * BATCH_MESSAGES))
                    restart[-1]["ray_floor_s"] = bench_ray_restart_floor(sink)
                    task.advance(1)
            else:
                tracker.log("restart: skipped (the partition actor is not on this machine)")
            session.drop_topics()

        memory = {}
        if "memory" not in skip:
            idle = session.new_topic("idle")
            if _on_this_node(session, idle):
                pid = ray.get(session.leader_handle(idle).info.remote())["pid"]
                time.sleep(1.0)
                memory["partition actor (idle, empty log)"] = process_memory_mb(pid)
                memory["no-op Ray actor (reference)"] = process_memory_mb(ray.get(sink.pid.remote()))
            session.drop_topics()
    finally:
        session.drop_topics()
        with contextlib.suppress(Exception):  # the file is in the temp dir anyway
            ray.get(sink.close_file.remote(), timeout=10)
        ray.kill(sink)

    return _part(
        opts,
        n_messages,
        results,
        (lat_p50, lat_p99, lat_max, floor_p50, floor_p99),
        latency_messages,
        restart,
        memory,
        load_start,
    )


def _table(batch):
    import pyarrow as pa

    return pa.Table.from_batches([batch])


class _Halves:
    """Progress for the queue: the first n_messages advance the put task, the rest the get task."""

    def __init__(self, put, get, n_messages):
        self.put, self.get, self.left = put, get, n_messages

    def __call__(self, n):
        if self.left > 0:
            self.left -= n
            self.put(n)
        else:
            self.get(n)


def _part(opts, n_messages, results, latency, latency_messages, restart, memory, load_start) -> dict:
    ceiling_rate = n_messages / median(results["ceiling"])
    queue_rates = [n_messages / median(results[k]) for k in ("queue_put", "queue_get") if results[k]]
    queue_best = max(queue_rates) if queue_rates else None
    rows = [
        throughput_row(
            label,
            n_messages,
            results[key],
            ceiling_rate,
            TARGETS.get(key),
            queue_best if key in TARGETS else None,
        )
        for key, label in PATHS
        if results[key]
    ]
    timings, notes = [], []
    lat_p50, lat_p99, lat_max, floor_p50, floor_p99 = latency
    if lat_p50:
        notes.append(
            f"end-to-end latency, {latency_messages} msgs at {opts.latency_rate}/s, linger_ms=0 "
            f"(median over runs of per-run percentiles): p50 {median(lat_p50):.2f} ms "
            f"(target <= {LATENCY_TARGETS_MS['p50']:g}), p99 {median(lat_p99):.2f} ms "
            f"(target <= {LATENCY_TARGETS_MS['p99']:g}), max {median(lat_max):.2f} ms;\n"
            f"  per run p50 {', '.join(f'{x:.2f}' for x in lat_p50)}; "
            f"p99 {', '.join(f'{x:.2f}' for x in lat_p99)}\n"
            f"  floor (bare Ray actor pipe, same pacing, interleaved): p50 {median(floor_p50):.2f} ms, "
            f"p99 {median(floor_p99):.2f} ms; raykafka / floor: p50 "
            f"{median(lat_p50) / median(floor_p50):.2f}x, p99 {median(lat_p99) / median(floor_p99):.2f}x"
        )
    if restart:
        size_mb = restart[0]["size_bytes"] / 1e6
        timings.append(
            timing_row(
                f"restart, {size_mb:.0f} MB log: offsets() answers",
                [r["offsets_s"] for r in restart],
                RESTART_TARGET_S,
            )
        )
        timings.append(timing_row("  of which PartitionLog open (info)", [r["open_s"] for r in restart]))
        timings.append(
            timing_row("  Ray alone: no-op actor, same SIGKILL (info)", [r["ray_floor_s"] for r in restart])
        )
        notes.append(
            f"restart: {restart[0]['segments']} segment(s); the first kill follows the produce of the "
            f"whole log; the <= 3 s target is for a 1 GB log"
        )
    for label, (rss, uss) in memory.items():
        notes.append(f"memory, {label}: RSS {rss:.0f} MB, USS {uss:.0f} MB")
    header = (
        f"{n_messages:,} x {MESSAGE_BYTES} B messages per path, 1 partition, median of {opts.runs} "
        f'interleaved runs; ceiling pipelined with {opts.in_flight} in flight; "ok" needs the ratio and '
        f"beating the better ray.util.queue direction; ray {ray.__version__}"
    )
    return {
        "title": "single node: throughput as a ratio to the no-op actor ceiling",
        "header": header,
        "load": [load_start, os.getloadavg()[0]],
        "rows": rows,
        "timings": timings,
        "notes": notes,
        "ceiling_rate": ceiling_rate,
    }
