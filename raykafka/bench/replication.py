"""Replication on a multi-node ``ray.cluster_utils.Cluster``: failover time and the cost of RF 3.

Its own Ray (a head plus 3 worker nodes labelled ``raykafka-storage=disk-i``, so replicas
go to the workers), so it runs in a process of its own::

    python -m raykafka.bench.replication [--quick]   # also run by python benchmarks/bench.py

* throughput -- ``send_batch`` of 10,000-row tables to a replication_factor=3 topic
  (``min.insync.replicas=2``, ``acks="all"``) as a ratio to a replication_factor=1 topic
  (``acks=1``), same cluster, runs interleaved (1, 3, 1, 3, ...).
* failover -- a producer (``acks="all"``, ``linger_ms=1``) sends one message every 5 ms to a
  new RF 3 topic; the leader's node is removed with ``remove_node(allow_graceful=False)``;
  the figure is the time from the removal to the acknowledgement of the first message
  *sent* after it (target <= 5 s). The node is then added back under the same label.

All nodes share this machine's CPUs and disk: followers' work competes with the leader's.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time
from dataclasses import dataclass

from raykafka.bench.common import (
    BATCH_MESSAGES,
    MESSAGE_BYTES,
    Session,
    batch_count,
    build_tables,
    median,
    produce_tables,
)
from raykafka.bench.report import EventTracker, PlainTracker, emit, render, throughput_row, timing_row

FAILOVER_TARGET_S = 5.0
SEND_INTERVAL_S = 0.005
WORKERS = 3
LABEL = "raykafka-storage"
RF3_CONFIG = {"min.insync.replicas": "2"}


@dataclass(frozen=True)
class Durability:
    """One acknowledgement setting whose cost is measured (docs/API.md says what each means)."""

    name: str
    topic: str
    replication_factor: int
    acks: int | str
    config: dict


FSYNC = {"flush.messages": "1"}
#: The first is the reference (today's default); each row's ratio is to it.
DURABILITY = (
    Durability("RF 1, acks=1 (reference)", "rf1", 1, 1, {}),
    Durability("RF 1, acks=1, flush.messages=1", "rf1-fsync", 1, 1, FSYNC),
    Durability("RF 3, acks=all, min.insync=2", "rf3", 3, "all", RF3_CONFIG),
    Durability(
        "RF 3, acks=all, min.insync=2, flush.messages=1", "rf3-fsync", 3, "all", {**RF3_CONFIG, **FSYNC}
    ),
)


def sizes(quick: bool) -> dict:
    return {
        "messages": 200_000 if quick else 500_000,
        "runs": 2 if quick else 3,
        "failovers": 1 if quick else 3,
    }


class SteadyProducer:
    """Sends a message every SEND_INTERVAL_S from a thread without waiting for acks (the producer
    pipelines); records each message's send time and ack time (or error)."""

    def __init__(self, topic: str):
        from raykafka import Producer

        self.topic = topic
        self.producer = Producer(acks="all", linger_ms=1, request_timeout_ms=30000)
        self.sent: list[float] = []
        self.acked: dict[int, float] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-steady-producer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            self.sent.append(time.monotonic())
            future = self.producer.send(self.topic, f"m-{i}".encode().ljust(MESSAGE_BYTES, b"."), partition=0)
            future.add_done_callback(lambda f, i=i: self._done(i, f))
            i += 1
            time.sleep(SEND_INTERVAL_S)

    def _done(self, i: int, future) -> None:
        exc = future.exception()
        if exc is None:
            self.acked[i] = time.monotonic()
        else:
            self.errors.append((i, time.monotonic(), f"{type(exc).__name__}: {exc}"))

    def wait_acks(self, count: int, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.acked) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(self.acked)} acks; errors {self.errors[-3:]}")
            time.sleep(0.02)

    def first_ack_sent_after(self, t: float, timeout_s: float = 60) -> float:
        """Ack time of the first acknowledged message sent after ``t``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            after = [i for i in list(self.acked) if self.sent[i] > t]
            if after:
                return self.acked[min(after, key=lambda i: self.acked[i])]
            time.sleep(0.01)
        raise TimeoutError(f"no message sent after the removal was acknowledged; errors {self.errors[-3:]}")

    def stop(self) -> None:
        """Stop sending; wait (up to 60 s) for every outstanding message's answer."""
        self._stop.set()
        self._thread.join(30)
        with contextlib.suppress(Exception):  # the failures are in self.errors
            self.producer.close(timeout=60)


def start_cluster():
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    cluster.workers = {}
    for i in range(WORKERS):
        add_worker(cluster, f"disk-{i}", wait=False)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
    return cluster


def add_worker(cluster, label: str, wait: bool = True):
    cluster.workers[label] = cluster.add_node(num_cpus=1, labels={LABEL: label})
    if wait:
        cluster.wait_for_nodes()


def bench_failover(session, cluster, task) -> dict:
    topic = session.new_topic("failover", replication_factor=3, config=RF3_CONFIG)
    leader = session.admin.describe_topic(topic).partitions[0].leader_node_id
    label, node = next((lb, n) for lb, n in cluster.workers.items() if n.node_id == leader)
    producer = SteadyProducer(topic)
    try:
        producer.wait_acks(100)
        removed = time.monotonic()
        cluster.remove_node(node, allow_graceful=False)
        remove_call_s = time.monotonic() - removed
        del cluster.workers[label]
        failover_s = producer.first_ack_sent_after(removed) - removed
        task.advance(1)
    finally:
        producer.stop()
    failed = [(i, t - removed, text) for i, t, text in producer.errors]
    new_leader = session.admin.describe_topic(topic).partitions[0].leader_node_id
    add_worker(cluster, label)
    return {
        "failover_s": failover_s,
        "remove_call_s": remove_call_s,
        "sent": len(producer.sent),
        "failed": len(failed),
        "failed_sent_after": sum(1 for i, _, _ in failed if producer.sent[i] > removed),
        "first_failure": f"{failed[0][1]:.1f} s after the removal: {failed[0][2][:150]}" if failed else "",
        "leader_moved": new_leader != leader,
    }


def run(session, cluster, opts, tracker) -> dict:
    load_start = os.getloadavg()[0]
    size = sizes(opts.quick)
    n_batches = batch_count(opts.messages or size["messages"])
    n_messages = n_batches * BATCH_MESSAGES
    runs = opts.runs or size["runs"]
    failovers = opts.failovers if opts.failovers is not None else size["failovers"]
    tables = build_tables()

    tasks = {d.name: tracker.task(f"replication: send_batch {d.name}", n_messages * runs) for d in DURABILITY}
    failover_task = tracker.task("replication: failover (leader node removed)", failovers)
    topics = {
        d.name: session.new_topic(d.topic, replication_factor=d.replication_factor, config=d.config)
        for d in DURABILITY
    }
    for d in DURABILITY:  # warm-up
        produce_tables(topics[d.name], tables, 2, partition=0, acks=d.acks)
    seconds: dict[str, list[float]] = {d.name: [] for d in DURABILITY}
    for _ in range(runs):  # interleaved, so drift on this shared machine hits every setting alike
        for d in DURABILITY:
            seconds[d.name].append(
                produce_tables(
                    topics[d.name],
                    tables,
                    n_batches,
                    partition=0,
                    acks=d.acks,
                    on_batch=tasks[d.name].advance,
                )
            )
    session.drop_topics()

    results = [bench_failover(session, cluster, failover_task) for _ in range(failovers)]
    session.drop_topics()

    reference_rate = n_messages / median(seconds[DURABILITY[0].name])
    rows = [
        throughput_row(f"send_batch, {d.name}", n_messages, seconds[d.name], reference_rate)
        for d in DURABILITY
    ]
    notes = [
        f"failover {k + 1}: {r['failover_s']:.2f} s (remove_node call {r['remove_call_s']:.2f} s); "
        f"leader moved: {r['leader_moved']}; {r['failed']} of {r['sent']} sends failed "
        f"({r['failed_sent_after']} of them sent after the removal){'; first: ' if r['failed'] else ''}"
        f"{r['first_failure']}"
        for k, r in enumerate(results)
    ]
    header = (
        f"cluster_utils.Cluster: head + {WORKERS} labelled worker nodes on this machine; "
        f"{n_messages:,} x {MESSAGE_BYTES} B messages per run, 1 partition, median of {runs} "
        f"interleaved runs; failover: one acks=all send every {SEND_INTERVAL_S * 1000:.0f} ms"
    )
    return {
        "title": "replication: throughput per durability setting (ratio to RF 1, acks=1) and leader failover",
        "header": header,
        "load": [load_start, os.getloadavg()[0]],
        "reference": "x RF 1",
        "rows": rows,
        "timings": [
            timing_row(
                "failover: removal -> first ack of a message sent after it",
                [r["failover_s"] for r in results],
                FAILOVER_TARGET_S,
            )
        ]
        if results
        else [],
        "notes": notes,
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="raykafka replication benchmark (own multi-node Ray cluster)")
    p.add_argument("--quick", action="store_true", help="200,000 messages x 2 runs, 1 failover")
    p.add_argument("--messages", type=int, default=None, help="messages per throughput run")
    p.add_argument(
        "--runs", type=int, default=None, help="interleaved throughput runs per replication factor"
    )
    p.add_argument("--failovers", type=int, default=None, help="leader node removals (new topic each)")
    p.add_argument("--events", action="store_true", help="progress and result as JSON lines (for a parent)")
    return p


def main(argv=None) -> int:
    opts = parser().parse_args(argv)
    import ray

    tracker = EventTracker() if opts.events else PlainTracker()
    cluster = start_cluster()
    session = Session().start()
    try:
        part = run(session, cluster, opts, tracker)
    finally:
        session.close()
        ray.shutdown()
        cluster.shutdown()
    if opts.events:
        emit({"result": part})
    else:
        render([part])
    return 0


def command(quick: bool) -> list[str]:
    """The command line that runs this benchmark in its own process, reporting to a parent."""
    return [sys.executable, "-m", "raykafka.bench.replication", "--events"] + (["--quick"] if quick else [])


if __name__ == "__main__":
    sys.exit(main())
