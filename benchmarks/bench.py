"""raykafka throughput, latency, restart and memory benchmark -- the paper's workload.

200-byte messages, one partition, one producer and one consumer in this driver.
Every throughput figure is printed next to its ratio to *the ceiling*: a no-op
async Ray actor (``num_cpus=0``) fed the same pre-built 10,000-message Arrow
RecordBatches with the same pipelining (at most ``--in-flight`` calls in flight,
like the producer's ``max_in_flight_requests_per_partition``), measured in the
same process, interleaved with the other paths. Absolute numbers drift on a
small shared machine; the ratios are what to compare.

Usage::

    python benchmarks/bench.py              # full: 1,000,000 messages per path, 3 runs, 1 GB restart
    python benchmarks/bench.py --quick      # 200,000 messages, 3 runs, 200 MB restart (< 2 min)
    python benchmarks/bench.py --messages 500000 --runs 5 --restart-mb 500

Paths (each run measures them in this order; medians over runs are printed):

* ceiling          -- no-op actor, pipelined RecordBatch arguments
* ceiling (IPC)    -- the same, but the argument is the batch's IPC bytes
                      (``RecordBatch.serialize()``), which is what the producer ships
* queue put/get    -- ``ray.util.queue.Queue`` put_nowait_batch / get_nowait_batch of
                      10,000 Python ``bytes``, the Ray-native peer
* send_batch       -- ``Producer.send_batch`` of 10,000-row tables, then ``flush``
* send             -- ``Producer.send(topic, value)`` per message, then ``flush``
* poll_batch       -- ``Consumer.poll_batch`` until everything sent was read
* iterator         -- ``for m in consumer`` until everything sent was read
* latency          -- ``linger_ms=0`` producer at a steady rate, consumer thread polling;
                      send-to-receive time of each message
* restart          -- a partition actor holding a large log is SIGKILLed; time until
                      ``offsets()`` and a ``fetch`` answer again, and ``info()["open_seconds"]``
* memory           -- RSS and USS of an idle partition actor (and of a bare no-op actor)

Not a test: it prints a table and exits 0; nothing asserts on the numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import struct
import sys
import tempfile
import threading
import time
import uuid

import numpy as np
import pyarrow as pa
import ray

MESSAGE_BYTES = 200
BATCH_MESSAGES = 10_000
DISTINCT_BATCHES = 8  # pre-built batches cycled through (16 MB of payload)

TARGETS = {  # from the issue: ratio to the ceiling, or an absolute bound
    "send_batch": 0.8,
    "send": 0.4,
    "poll_batch": 0.8,
    "iterator": 0.4,
}


# -- data ----------------------------------------------------------------------------


def build_batches(seed: int = 0) -> list[pa.RecordBatch]:
    """DISTINCT_BATCHES RecordBatches of BATCH_MESSAGES distinct random 200-byte values."""
    rng = np.random.default_rng(seed)
    offsets = (np.arange(BATCH_MESSAGES + 1, dtype=np.int32) * MESSAGE_BYTES).tobytes()
    out = []
    for _ in range(DISTINCT_BATCHES):
        data = rng.integers(0, 256, BATCH_MESSAGES * MESSAGE_BYTES, dtype=np.uint8).tobytes()
        buffers = [None, pa.py_buffer(offsets), pa.py_buffer(data)]
        values = pa.Array.from_buffers(pa.binary(), BATCH_MESSAGES, buffers)
        out.append(pa.RecordBatch.from_arrays([values], names=["value"]))
    return out


# -- the ceiling -----------------------------------------------------------------------


@ray.remote(num_cpus=0, max_restarts=-1)
class NoOpSink:
    """Receives a batch and does nothing with it; answers like PartitionActor.append."""

    async def append(self, payload, producer_id=None, seq=0, sync=False):
        return 0, -1

    async def pid(self):
        return os.getpid()


def pipelined(call, args, in_flight: int) -> None:
    """Submit ``call(arg)`` for every arg with at most ``in_flight`` unanswered; wait for all."""
    pending = []
    for arg in args:
        if len(pending) >= in_flight:
            done, pending = ray.wait(pending, num_returns=1)
            ray.get(done)
        pending.append(call(arg))
    ray.get(pending)


def bench_ceiling(sink, batches, n_batches, in_flight) -> float:
    args = [batches[i % len(batches)] for i in range(n_batches)]
    start = time.perf_counter()
    pipelined(sink.append.remote, args, in_flight)
    return time.perf_counter() - start


def bench_ceiling_ipc(sink, ipc_buffers, n_batches, in_flight) -> float:
    args = [ipc_buffers[i % len(ipc_buffers)] for i in range(n_batches)]
    start = time.perf_counter()
    pipelined(sink.append.remote, args, in_flight)
    return time.perf_counter() - start


# -- ray.util.queue ----------------------------------------------------------------------


def bench_queue(value_lists, n_batches) -> tuple[float, float]:
    from ray.util.queue import Queue

    queue = Queue(actor_options={"num_cpus": 0})
    try:
        ray.get(queue.actor.qsize.remote())  # started
        start = time.perf_counter()
        for i in range(n_batches):
            queue.put_nowait_batch(value_lists[i % len(value_lists)])
        put_s = time.perf_counter() - start
        start = time.perf_counter()
        got = 0
        for _ in range(n_batches):
            got += len(queue.get_nowait_batch(BATCH_MESSAGES))
        get_s = time.perf_counter() - start
        assert got == n_batches * BATCH_MESSAGES, got
    finally:
        queue.shutdown()
    return put_s, get_s


# -- raykafka ------------------------------------------------------------------------------


def bench_send_batch(topic, tables, n_batches) -> float:
    from raykafka import Producer

    producer = Producer()
    try:
        producer.partitions_for(topic)  # metadata cached before the clock starts
        start = time.perf_counter()
        for i in range(n_batches):
            producer.send_batch(topic, tables[i % len(tables)], partition=0)
        producer.flush()
        return time.perf_counter() - start
    finally:
        producer.close()


def bench_send(topic, values) -> float:
    from raykafka import Producer

    producer = Producer()
    try:
        producer.partitions_for(topic)
        send = producer.send
        start = time.perf_counter()
        for value in values:
            send(topic, value)
        producer.flush()
        return time.perf_counter() - start
    finally:
        producer.close()


def _consumer(topic):
    from raykafka import Consumer, TopicPartition

    consumer = Consumer(group_id=None, auto_offset_reset="earliest")
    consumer.assign([TopicPartition(topic, 0)])
    return consumer


def bench_poll_batch(topic, n_messages) -> float:
    consumer = _consumer(topic)
    try:
        start = time.perf_counter()
        got = 0
        deadline = time.monotonic() + 120
        while got < n_messages and time.monotonic() < deadline:
            got += consumer.poll_batch(max_messages=BATCH_MESSAGES, timeout_s=5.0).num_rows
        elapsed = time.perf_counter() - start
        assert got == n_messages, f"poll_batch read {got} of {n_messages}"
        return elapsed
    finally:
        consumer.close()


def bench_iterator(topic, n_messages) -> float:
    consumer = _consumer(topic)
    try:
        start = time.perf_counter()
        last = n_messages - 1
        got = 0
        for message in consumer:
            got += 1
            if message.offset == last:
                break
        elapsed = time.perf_counter() - start
        assert got == n_messages, f"iterator read {got} of {n_messages}"
        return elapsed
    finally:
        consumer.close()


def bench_latency(topic, n_messages, rate_per_s, warmup) -> list[float]:
    """Send ``n_messages`` at ``rate_per_s`` (linger_ms=0); a consumer thread measures arrival.

    Each payload starts with the send time (perf_counter_ns, same process). Returns
    latencies in ms, the first ``warmup`` dropped.
    """
    from raykafka import Producer

    pad = b"\0" * (MESSAGE_BYTES - 8)
    latencies_ns: list[int] = []
    ready = threading.Event()
    failure: list[BaseException] = []

    def consume():
        try:
            consumer = _consumer(topic)
            # resolve the position and get the first long poll parked at the log end
            consumer.poll(timeout_s=0.05)
            ready.set()
            deadline = time.monotonic() + n_messages / rate_per_s + 30
            while len(latencies_ns) < n_messages and time.monotonic() < deadline:
                m = consumer.poll(timeout_s=0.5)
                if m is not None:
                    latencies_ns.append(time.perf_counter_ns() - struct.unpack_from("<q", m.value)[0])
            consumer.close()
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)
            ready.set()

    producer = Producer(linger_ms=0)
    producer.partitions_for(topic)
    thread = threading.Thread(target=consume, name="bench-latency-consumer", daemon=True)
    thread.start()
    ready.wait(30)
    interval = 1.0 / rate_per_s
    start = time.perf_counter()
    for i in range(n_messages):
        due = start + i * interval
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        producer.send(topic, struct.pack("<q", time.perf_counter_ns()) + pad, partition=0)
    producer.flush()
    producer.close()
    thread.join(n_messages / rate_per_s + 60)
    if failure:
        raise failure[0]
    assert len(latencies_ns) == n_messages, f"latency consumer got {len(latencies_ns)} of {n_messages}"
    return [ns / 1e6 for ns in latencies_ns[warmup:]]


def percentile(values, q) -> float:
    return float(np.percentile(np.asarray(values), q))


# -- restart and memory ----------------------------------------------------------------------


def leader_handle(topic):
    from raykafka.api.connection import current_settings, topic_manager

    manager = topic_manager(current_settings())
    return ray.get(manager.topic_metadata.remote(topic))["leaders"][0]


def produce_bytes(topic, tables, target_bytes) -> int:
    from raykafka import Producer

    per_batch = BATCH_MESSAGES * MESSAGE_BYTES
    n_batches = max(1, target_bytes // per_batch)
    with Producer() as producer:
        for i in range(n_batches):
            producer.send_batch(topic, tables[i % len(tables)], partition=0)
    return n_batches * BATCH_MESSAGES


def bench_restart(handle, expected_end) -> dict:
    """SIGKILL the actor's process; time until offsets() and then a fetch answer again."""
    from raykafka.api.rpc import ACTOR_GONE

    before = ray.get(handle.info.remote())
    os.kill(before["pid"], signal.SIGKILL)
    killed = time.perf_counter()
    offsets_s = None
    deadline = killed + 120
    while time.perf_counter() < deadline:
        try:
            _start, end_offset = ray.get(handle.offsets.remote(), timeout=2)
        except (ray.exceptions.GetTimeoutError, *ACTOR_GONE):
            time.sleep(0.01)
            continue
        offsets_s = time.perf_counter() - killed
        break
    if offsets_s is None:
        raise RuntimeError("partition actor did not come back within 120 s")
    frames, _, _ = ray.get(handle.fetch.remote(0, 1 << 20, 0), timeout=30)
    fetch_s = time.perf_counter() - killed
    after = ray.get(handle.info.remote())
    assert after["pid"] != before["pid"], "the actor process was not replaced"
    assert end_offset == expected_end, (end_offset, expected_end)
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
    from raykafka.api.rpc import ACTOR_GONE

    pid = ray.get(sink.pid.remote())
    os.kill(pid, signal.SIGKILL)
    killed = time.perf_counter()
    while time.perf_counter() < killed + 120:
        try:
            ray.get(sink.pid.remote(), timeout=2)
        except (ray.exceptions.GetTimeoutError, *ACTOR_GONE):
            time.sleep(0.01)
            continue
        return time.perf_counter() - killed
    raise RuntimeError("no-op actor did not come back within 120 s")


def process_memory_mb(pid) -> tuple[float, float]:
    import psutil

    info = psutil.Process(pid).memory_full_info()
    return info.rss / 1e6, info.uss / 1e6


# -- driver ------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200,000 messages, 200 MB restart log (< 2 min)")
    parser.add_argument("--messages", type=int, default=None, help="messages per throughput path and run")
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs; medians are reported")
    parser.add_argument("--in-flight", type=int, default=5, help="pipelined calls in flight for the ceiling")
    parser.add_argument("--restart-mb", type=int, default=None, help="log size for the restart test (MB)")
    parser.add_argument("--latency-messages", type=int, default=None)
    parser.add_argument("--latency-rate", type=int, default=500, help="messages/s for the latency test")
    parser.add_argument("--skip", default="", help="comma-separated paths to skip (e.g. restart,latency)")
    args = parser.parse_args(argv)

    n_messages = args.messages or (200_000 if args.quick else 1_000_000)
    n_batches = max(1, n_messages // BATCH_MESSAGES)
    n_messages = n_batches * BATCH_MESSAGES
    restart_mb = args.restart_mb or (200 if args.quick else 1000)
    latency_messages = args.latency_messages or (2000 if args.quick else 5000)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    import psutil  # noqa: F401  (fail early: pip install psutil, or the dev extra)

    import raykafka
    from raykafka import Admin

    t_begin = time.perf_counter()
    load_start = os.getloadavg()
    ray.init(address="local", include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    data_dir = tempfile.mkdtemp(prefix="raykafka-bench-")
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    raykafka.connect(namespace=namespace, data_dir=data_dir)
    admin = Admin()

    batches = build_batches()
    tables = [pa.Table.from_batches([b]) for b in batches]
    ipc_buffers = [b.serialize() for b in batches]
    value_lists = [b.column(0).to_pylist() for b in batches]
    send_values = [
        value_lists[(i // BATCH_MESSAGES) % len(value_lists)][i % BATCH_MESSAGES] for i in range(n_messages)
    ]

    sink = NoOpSink.remote()
    ray.get(sink.pid.remote())
    results: dict[str, list[float]] = {
        k: []
        for k in (
            "ceiling",
            "ceiling_ipc",
            "queue_put",
            "queue_get",
            "send_batch",
            "send",
            "poll_batch",
            "iterator",
        )
    }
    lat_p50, lat_p99, lat_max = [], [], []
    topics: list[str] = []

    def new_topic(prefix):
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        admin.create_topic(name, partitions=1)
        topics.append(name)
        return name

    def drop_topics():
        while topics:
            try:
                admin.delete_topic(topics.pop())
            except Exception as exc:
                print(f"  (cleanup: {exc})", file=sys.stderr)

    try:
        # warm-up: worker processes, imports, first calls
        warm = new_topic("warm")
        bench_ceiling(sink, batches, 4, args.in_flight)
        bench_send_batch(warm, tables, 4)
        bench_send(warm, send_values[:20_000])
        bench_poll_batch(warm, 60_000)
        drop_topics()
        print(
            f"setup + warm-up {time.perf_counter() - t_begin:.1f} s; {n_messages:,} messages x "
            f"{MESSAGE_BYTES} B per path, {args.runs} interleaved runs",
            flush=True,
        )

        for run in range(args.runs):
            t_run = time.perf_counter()
            results["ceiling"].append(bench_ceiling(sink, batches, n_batches, args.in_flight))
            results["ceiling_ipc"].append(bench_ceiling_ipc(sink, ipc_buffers, n_batches, args.in_flight))
            if "queue" not in skip:
                put_s, get_s = bench_queue(value_lists, n_batches)
                results["queue_put"].append(put_s)
                results["queue_get"].append(get_s)
            t_batch = new_topic("batch")
            results["send_batch"].append(bench_send_batch(t_batch, tables, n_batches))
            results["poll_batch"].append(bench_poll_batch(t_batch, n_messages))
            t_single = new_topic("single")
            results["send"].append(bench_send(t_single, send_values))
            results["iterator"].append(bench_iterator(t_single, n_messages))
            if "latency" not in skip:
                lat = bench_latency(
                    new_topic("latency"),
                    latency_messages,
                    args.latency_rate,
                    warmup=min(100, latency_messages // 10),
                )
                lat_p50.append(percentile(lat, 50))
                lat_p99.append(percentile(lat, 99))
                lat_max.append(max(lat))
            drop_topics()
            print(f"run {run + 1}/{args.runs} done in {time.perf_counter() - t_run:.1f} s", flush=True)

        restart = []
        if "restart" not in skip:
            t_restart = new_topic("restart")
            t0 = time.perf_counter()
            end = produce_bytes(t_restart, tables, restart_mb * 1_000_000)
            produce_s = time.perf_counter() - t0
            handle = leader_handle(t_restart)
            for _ in range(args.runs):
                restart.append(bench_restart(handle, end))
                restart[-1]["ray_floor_s"] = bench_ray_restart_floor(sink)
            print(
                f"restart: produced {restart[0]['size_bytes'] / 1e6:.0f} MB in {produce_s:.1f} s, "
                f"{restart[0]['segments']} segment(s), killed {args.runs}x",
                flush=True,
            )
            drop_topics()

        memory = {}
        if "memory" not in skip:
            idle = new_topic("idle")
            pid = ray.get(leader_handle(idle).info.remote())["pid"]
            time.sleep(1.0)
            memory["partition actor (idle, empty log)"] = process_memory_mb(pid)
            memory["no-op Ray actor (reference)"] = process_memory_mb(ray.get(sink.pid.remote()))
            drop_topics()

        report(
            args,
            n_messages,
            results,
            lat_p50,
            lat_p99,
            lat_max,
            restart,
            memory,
            latency_messages,
            time.perf_counter() - t_begin,
            load_start,
        )
    finally:
        drop_topics()
        cleanup(namespace, data_dir, sink)
    return 0


def report(
    args,
    n_messages,
    results,
    lat_p50,
    lat_p99,
    lat_max,
    restart,
    memory,
    latency_messages,
    total_s,
    load_start=(0.0, 0.0, 0.0),
):
    med = statistics.median
    mb = n_messages * MESSAGE_BYTES / 1e6
    ceiling_rate = n_messages / med(results["ceiling"])
    rows = [
        ("ceiling: no-op actor, RecordBatch args", "ceiling", None),
        ("no-op actor, IPC bytes args (info)", "ceiling_ipc", None),
        ("ray.util.queue put_nowait_batch", "queue_put", None),
        ("ray.util.queue get_nowait_batch", "queue_get", None),
        ("Producer.send_batch (10k-row tables)", "send_batch", TARGETS["send_batch"]),
        ("Producer.send per message", "send", TARGETS["send"]),
        ("Consumer.poll_batch", "poll_batch", TARGETS["poll_batch"]),
        ("Consumer iterator (for m in consumer)", "iterator", TARGETS["iterator"]),
    ]
    queue_rates = [n_messages / med(results[k]) for k in ("queue_put", "queue_get") if results[k]]
    queue_best = max(queue_rates) if queue_rates else None
    print()
    print(
        f"raykafka benchmark: {n_messages:,} x {MESSAGE_BYTES} B messages, 1 partition, median of "
        f"{args.runs} interleaved runs; ceiling pipelined with {args.in_flight} in flight; "
        f"{os.cpu_count()} CPUs; ray {ray.__version__}, pyarrow {pa.__version__}"
    )
    print()
    header = (
        f"| {'path':<40} | {'msgs/s':>11} | {'MB/s':>7} | {'x ceiling':>9} | {'target':>7} | {'ok':^4} "
        f"| runs (s)"
    )
    print(header)
    print("|" + "|".join("-" * (len(c) + 0) for c in header.split("|")[1:-1]) + "|---")
    for label, key, target in rows:
        if not results[key]:
            continue
        t = med(results[key])
        rate = n_messages / t
        ratio = rate / ceiling_rate
        ok = ""
        if target is not None:
            ok = "yes" if ratio >= target and (queue_best is None or rate > queue_best) else "NO"
        runs = ", ".join(f"{x:.2f}" for x in results[key])
        tgt = f">={target}" if target else ""
        print(
            f"| {label:<40} | {rate:>11,.0f} | {mb / t:>7.1f} | {ratio:>9.2f} | {tgt:>7} | {ok:^4} | {runs}"
        )
    print()
    if lat_p50:
        p50, p99 = med(lat_p50), med(lat_p99)
        print(
            f"end-to-end latency, {latency_messages} msgs at {args.latency_rate}/s, linger_ms=0 "
            f"(median over runs of per-run percentiles):"
        )
        print(
            f"  p50 {p50:.2f} ms (target <= 3: {'yes' if p50 <= 3 else 'NO'}), "
            f"p99 {p99:.2f} ms (target <= 15: {'yes' if p99 <= 15 else 'NO'}), max {med(lat_max):.2f} ms; "
            f"per run p50 {', '.join(f'{x:.2f}' for x in lat_p50)}; "
            f"p99 {', '.join(f'{x:.2f}' for x in lat_p99)}"
        )
    if restart:
        size_mb = restart[0]["size_bytes"] / 1e6
        off = med([r["offsets_s"] for r in restart])
        print(
            f"partition actor restart after SIGKILL, {size_mb:.0f} MB log, "
            f"{restart[0]['segments']} segment(s) "
            f"(median of {len(restart)}):"
        )
        worst = max(r["offsets_s"] for r in restart)
        print(
            f"  offsets() answers after {off:.2f} s (worst {worst:.2f} s; target <= 3 s for 1 GB: "
            f"{'yes' if worst <= 3 else 'NO'}), "
            f"first fetch after {med([r['fetch_s'] for r in restart]):.2f} s, "
            f"info()['open_seconds'] {med([r['open_s'] for r in restart]):.2f} s; "
            f"Ray alone (no-op actor, same SIGKILL) {med([r['ray_floor_s'] for r in restart]):.2f} s"
        )
        print(
            "  per kill (answer s / open s / Ray floor s): "
            + ", ".join(f"{r['offsets_s']:.2f}/{r['open_s']:.2f}/{r['ray_floor_s']:.2f}" for r in restart)
            + "  -- the first kill follows the produce, so its open pays for the dirty page cache"
        )
    for label, (rss, uss) in memory.items():
        print(f"memory, {label}: RSS {rss:.0f} MB, USS {uss:.0f} MB")
    load_end = os.getloadavg()
    print(
        f"\ntotal wall time {total_s:.0f} s; load average (1 min) {load_start[0]:.1f} at start, "
        f"{load_end[0]:.1f} at end on {os.cpu_count()} CPUs"
    )
    if max(load_start[0], load_end[0]) > (os.cpu_count() or 1):
        print(
            "WARNING: other processes were competing for the CPUs; absolute figures and latency are "
            "unreliable, ratios less so. Re-run on a quiet machine."
        )


def cleanup(namespace, data_dir, sink) -> None:
    with contextlib.suppress(Exception):
        ray.kill(sink)
    try:
        from raykafka.actors.naming import TOPIC_MANAGER_NAME

        ray.kill(ray.get_actor(TOPIC_MANAGER_NAME, namespace=namespace))
    except Exception:
        pass
    ray.shutdown()
    shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
