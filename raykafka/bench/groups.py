"""Consumer groups: rebalance time and consumption throughput with 1, 2 and 4 streams.

On a 4-partition topic pre-filled with 200-byte messages:

* rebalance -- consumers in this driver, each polling from its own thread, with short
  heartbeats (``heartbeat_interval_ms=100``). A member joins (``Consumer`` +
  ``subscribe``), or leaves (``close()``); the time until the rebalance is complete:
  ``Admin().describe_group`` says ``Stable`` with the expected number of members and
  their assignments cover every partition exactly once. Members go 1 -> 2 -> 3 -> 4
  (three joins) and back to 1 (three leaves), ``rounds`` times.
* throughput -- ``create_message_streams(topic, n)`` for n = 1, 2, 4 (a new group each
  run, so each reads the whole topic), every stream handed to its own already-running
  Ray actor (``num_cpus=0``; Ray starting worker processes -- the readers and the new
  group's coordinator -- is reported, not counted: on 2 CPUs Ray keeps only 2 idle
  workers, so 4 fresh tasks paid ~0.8 s of process start)
  iterating ``stream.batches()`` until the topic is drained (the stream ends after
  ``IDLE_S`` without a message). Aggregate msgs/s = messages read / (time from handing
  the streams over -- joining the group included -- to the last reader's last batch; the
  idle tail is not counted). Runs are
  interleaved (1, 2, 4, 1, 2, 4, ...). Target (the issue): the aggregate must not fall as
  streams are added, i.e. a ratio to 1 stream >= 1.0 (0.95 is accepted as noise).
* bare Ray peer (info) -- the same drain with nothing but Ray: 4 ``FrameHolder`` actors
  serve the topic's batches (the same IPC payloads, from memory) in responses of up to
  ``fetch_max_bytes``, and 1, 2 or 4 running ``BareReader`` actors pull them, one fetch in
  flight per holder, decoding every batch. Its ratio to 1 reader shows how reader
  processes scale on this machine without raykafka, measured in the same run.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid

import ray

from raykafka.api.batching import normalize_table
from raykafka.bench.common import (
    BATCH_MESSAGES,
    MESSAGE_BYTES,
    batch_count,
    build_tables,
    median,
    produce_tables,
)
from raykafka.bench.report import throughput_row, timing_row
from raykafka.storage.records import encode_record_batch

PARTITIONS = 4
STREAM_COUNTS = (1, 2, 4)
IDLE_S = 2.0  # a stream ends after this long without a message: the topic is drained
NOT_FALLING = 0.95  # ratio to 1 stream accepted as "did not fall" (run-to-run noise is larger)
MEMBER_CONFIG = {"session_timeout_ms": 3000, "heartbeat_interval_ms": 100, "auto_offset_reset": "earliest"}


def sizes(quick: bool) -> dict:
    return {
        "messages": 400_000 if quick else 2_000_000,
        "runs": 2 if quick else 3,
        "rounds": 1 if quick else 2,
        "rebalance_messages": 40_000,
    }


# -- rebalance --------------------------------------------------------------------------------


class PollingMember:
    """A group member in this process whose thread keeps polling (so it applies new assignments)."""

    def __init__(self, topic: str, group_id: str):
        from raykafka import Consumer

        self.consumer = Consumer(group_id=group_id, **MEMBER_CONFIG)
        self.consumer.subscribe([topic])
        self.read = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="bench-group-member", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.read += self.consumer.poll_batch(max_messages=BATCH_MESSAGES, timeout_s=0.05).num_rows

    def stop_polling(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def close(self) -> None:
        self.stop_polling()
        self.consumer.close()


def wait_complete(admin, group_id: str, members: int, timeout_s: float = 60) -> float:
    """Poll describe_group until the rebalance is complete; returns the monotonic time it was seen."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        d = admin.describe_group(group_id)
        parts = [tp.partition for m in d.members for tp in m.assignment]
        if d.state == "Stable" and len(d.members) == members and sorted(parts) == list(range(PARTITIONS)):
            return time.monotonic()
        last = d
        time.sleep(0.01)
    raise TimeoutError(f"group {group_id} not complete after {timeout_s:.0f} s: {last}")


def bench_rebalance(admin, topic: str, rounds: int, task) -> tuple[list[float], list[float]]:
    joins, leaves = [], []
    for _ in range(rounds):
        group_id = f"bench-rebalance-{uuid.uuid4().hex[:8]}"
        members = [PollingMember(topic, group_id)]
        wait_complete(admin, group_id, 1)
        try:
            while len(members) < PARTITIONS:
                start = time.monotonic()
                members.append(PollingMember(topic, group_id))
                joins.append(wait_complete(admin, group_id, len(members)) - start)
                task.advance(1)
            while len(members) > 1:
                leaving = members.pop()
                leaving.stop_polling()
                start = time.monotonic()
                leaving.close()
                leaves.append(wait_complete(admin, group_id, len(members)) - start)
                task.advance(1)
        finally:
            for m in members:
                m.close()
        _delete_group(admin, group_id)
    return joins, leaves


def _delete_group(admin, group_id: str) -> None:
    with contextlib.suppress(Exception):  # a member may still be leaving; the namespace goes anyway
        admin.delete_group(group_id)


# -- throughput -------------------------------------------------------------------------------


def drain(stream) -> dict:
    """Iterate ``stream.batches()`` until the topic is drained; wall-clock times of first and last batch."""
    started = time.time()
    count, first, last = 0, None, None
    for table in stream.batches(max_messages=BATCH_MESSAGES):
        last = time.time()
        if first is None:
            first = last
        count += table.num_rows
    stream.close()
    return {"count": count, "started": started, "first": first, "last": last, "pid": os.getpid()}


@ray.remote(num_cpus=0)
class StreamReader:
    """A consumer process that is already running when its stream arrives (as a Ray user's
    long-lived consumer actors are), so the clock does not count Ray starting worker processes."""

    def ready(self) -> float:
        """Started, with raykafka's consumer imported (a running consumer process has paid both;
        the import alone is ~90 ms, ~180 ms when four readers do it at once on 2 CPUs)."""
        import raykafka.api.consumer
        import raykafka.api.stream  # noqa: F401

        return time.time()

    def drain(self, stream) -> dict:
        return drain(stream)


def bench_streams(admin, topic: str, n_streams: int, n_messages: int) -> dict:
    from raykafka import Consumer, TopicPartition

    group_id = f"bench-streams-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(group_id=group_id, **MEMBER_CONFIG)
    streams = consumer.create_message_streams(topic, n_streams, timeout_s=IDLE_S)
    created = time.time()
    consumer.committed([TopicPartition(topic, 0)])  # starts the group's coordinator before the clock
    readers = [StreamReader.remote() for _ in streams]
    ready = max(ray.get([r.ready.remote() for r in readers]))
    submitted = time.time()
    try:
        results = ray.get([r.drain.remote(s) for r, s in zip(readers, streams, strict=True)])
    finally:
        for reader in readers:
            ray.kill(reader)
    consumer.close()
    _delete_group(admin, group_id)
    read = sum(r["count"] for r in results)
    assert read >= n_messages, f"{n_streams} streams read {read} of {n_messages}"
    last = max(r["last"] for r in results if r["last"] is not None)
    first = min(r["first"] for r in results if r["first"] is not None)
    return {
        "wall_s": last - submitted,
        "steady_s": last - first,
        "spawn_s": ready - created,
        "first_batch_s": max(r["first"] for r in results if r["first"] is not None) - submitted,
        "read": read,
        "active": sum(1 for r in results if r["count"]),
    }


# -- the bare Ray peer -------------------------------------------------------------------------

#: As the Consumer's default ``fetch_max_bytes``: the most one response carries.
PEER_FETCH_BYTES = 8 << 20


@ray.remote(num_cpus=0)
class FrameHolder:
    """A partition's batches in memory, served like a partition actor's fetch (whole batches up
    to ``max_bytes``) with nothing else: no log, no offsets, no group."""

    def __init__(self, payloads: list, n_batches: int):
        self._batches = [payloads[i % len(payloads)] for i in range(n_batches)]

    def count(self) -> int:
        return len(self._batches)

    def fetch(self, index: int, max_bytes: int) -> list:
        out, size = [], 0
        while index < len(self._batches) and (not out or size + self._batches[index].size <= max_bytes):
            out.append(self._batches[index])
            size += self._batches[index].size
            index += 1
        return out


@ray.remote(num_cpus=0)
class BareReader:
    """Pulls every batch of its holders, one fetch in flight per holder, and decodes each."""

    def ready(self) -> float:
        return time.time()

    def drain(self, holders: list) -> dict:
        from raykafka.storage.records import decode_record_batch

        ends = ray.get([h.count.remote() for h in holders])
        positions = [0] * len(holders)
        in_flight = {h.fetch.remote(0, PEER_FETCH_BYTES): i for i, h in enumerate(holders)}
        count, first = 0, None
        while in_flight:
            [ref], _ = ray.wait(list(in_flight), num_returns=1)
            i = in_flight.pop(ref)
            payloads = ray.get(ref)
            for payload in payloads:
                count += decode_record_batch(payload).num_rows
            positions[i] += len(payloads)
            if positions[i] < ends[i]:
                in_flight[holders[i].fetch.remote(positions[i], PEER_FETCH_BYTES)] = i
            if first is None:
                first = time.time()
        return {"count": count, "first": first, "last": time.time()}


def bench_bare_peer(holders: list, n_readers: int, n_messages: int) -> float:
    """Seconds from handing the holders to ``n_readers`` running readers to the last batch."""
    readers = [BareReader.remote() for _ in range(n_readers)]
    ray.get([r.ready.remote() for r in readers])
    submitted = time.time()
    try:
        shares = [holders[i::n_readers] for i in range(n_readers)]
        results = ray.get([r.drain.remote(share) for r, share in zip(readers, shares, strict=True)])
    finally:
        for reader in readers:
            ray.kill(reader)
    read = sum(r["count"] for r in results)
    assert read == n_messages, f"bare peer with {n_readers} reader(s) read {read} of {n_messages}"
    return max(r["last"] for r in results) - submitted


def run(session, opts, tracker, ceiling_rate: float | None = None) -> dict:
    load_start = os.getloadavg()[0]
    size = sizes(opts.quick)
    n_messages = batch_count(opts.group_messages or size["messages"]) * BATCH_MESSAGES
    runs = opts.group_runs or size["runs"]
    tables = build_tables()
    admin = session.admin

    rebalance_task = tracker.task("groups: rebalances (join / leave)", 2 * (PARTITIONS - 1) * size["rounds"])
    stream_tasks = {
        n: tracker.task(f"groups: drain with {n} stream(s)", n_messages * runs) for n in STREAM_COUNTS
    }

    small = session.new_topic("group-rebalance", partitions=PARTITIONS)
    produce_tables(small, tables, batch_count(size["rebalance_messages"]))
    joins, leaves = bench_rebalance(admin, small, size["rounds"], rebalance_task)

    topic = session.new_topic("group-drain", partitions=PARTITIONS)
    produce_tables(topic, tables, n_messages // BATCH_MESSAGES)
    payloads = [encode_record_batch(normalize_table(t)) for t in tables]
    per_partition = n_messages // BATCH_MESSAGES // PARTITIONS
    holders = [FrameHolder.remote(payloads, per_partition) for _ in range(PARTITIONS)]
    peer_messages = per_partition * PARTITIONS * BATCH_MESSAGES
    # warm-up: one worker process per stream, raykafka imported there; the peer's actors too
    bench_streams(admin, small, max(STREAM_COUNTS), size["rebalance_messages"])
    bench_bare_peer(holders, max(STREAM_COUNTS), peer_messages)
    results: dict[int, list[dict]] = {n: [] for n in STREAM_COUNTS}
    peer: dict[int, list[float]] = {n: [] for n in STREAM_COUNTS}
    for _ in range(runs):
        for n in STREAM_COUNTS:
            results[n].append(bench_streams(admin, topic, n, n_messages))
            peer[n].append(bench_bare_peer(holders, n, peer_messages))
            stream_tasks[n].advance(n_messages)
    for holder in holders:
        ray.kill(holder)
    session.drop_topics()

    rows = []
    measures = (
        ("wall_s", "aggregate (streams handed over -> last batch)", NOT_FALLING),
        ("steady_s", "first batch -> last batch (info)", None),
    )
    for key, label, target in measures:
        one = n_messages / median([r[key] for r in results[1]])
        for n in STREAM_COUNTS:
            secs = [r[key] for r in results[n]]
            rows.append(
                throughput_row(f"{n} stream(s), {label}", n_messages, secs, one, target if n > 1 else None)
            )
    peer_one = peer_messages / median(peer[1])
    for n in STREAM_COUNTS:
        rows.append(throughput_row(f"bare Ray peer, {n} reader(s) (info)", peer_messages, peer[n], peer_one))
    notes = [
        "ratio: to 1 stream, same measure (bare Ray peer: to its 1 reader); target: the aggregate does "
        f"not fall as streams are added (>= {NOT_FALLING} accepted as noise)",
        "startup, median s: Ray starting the group's coordinator and the reader actors, imports included "
        "(not counted) / from handing over the streams until every reader got a first batch (counted; "
        "includes joining the group): "
        + "; ".join(
            f"{n}: {median([r['spawn_s'] for r in results[n]]):.2f} / "
            f"{median([r['first_batch_s'] for r in results[n]]):.2f}"
            for n in STREAM_COUNTS
        ),
        "re-delivered (read - produced, at-least-once across rebalances), per run: "
        + "; ".join(
            f"{n}: " + ", ".join(str(r["read"] - n_messages) for r in results[n]) for n in STREAM_COUNTS
        ),
    ]
    if ceiling_rate:
        best = max(n_messages / median([r["wall_s"] for r in results[n]]) for n in STREAM_COUNTS)
        notes.append(f"best aggregate = {best / ceiling_rate:.2f}x the single-node no-op actor ceiling")
    header = (
        f"{n_messages:,} x {MESSAGE_BYTES} B messages on {PARTITIONS} partitions; streams in running Ray "
        f"actors (num_cpus=0); median of {runs} interleaved runs; rebalance members in this driver, "
        f"heartbeat_interval_ms={MEMBER_CONFIG['heartbeat_interval_ms']}, "
        f"session_timeout_ms={MEMBER_CONFIG['session_timeout_ms']}"
    )
    return {
        "title": "consumer groups: drain throughput (ratio to 1 stream) and rebalance time",
        "header": header,
        "load": [load_start, os.getloadavg()[0]],
        "reference": "x 1 stream",
        "rows": rows,
        "timings": [
            timing_row("rebalance after a member joins (1->2->3->4)", joins),
            timing_row("rebalance after a member leaves (4->3->2->1)", leaves),
        ],
        "notes": notes,
    }
