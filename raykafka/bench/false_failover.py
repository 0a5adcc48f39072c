"""False failovers: leadership changes of a fault-free RF 3 cluster under the benchmark's heaviest load.

Owns the measurement behind issue 15's "failure detection must not flap on a busy 2-vCPU
node": nothing fails, so every leader change is a false failover. Its own Ray, so it runs
in a process of its own::

    python benchmarks/bench.py --false-failover [--duration-s 300]
    python -m raykafka.bench.false_failover [--duration-s 300] [--producers 2] [--consumers 2]

* cluster -- a ``ray.cluster_utils.Cluster``: a head (2 CPUs, no dashboard) and 3 workers
  labelled ``raykafka-storage=disk-i``, Ray's node health checks as the multi-node tests set
  them (every 500 ms, 4 failures), all on this machine's CPUs and disk.
* topics -- 2 topics x 3 partitions, replication factor 3, ``min.insync.replicas=2``; 64 MiB
  segments and ``retention.bytes`` 256 MiB per partition, so a long run does not fill the disk.
* load -- the heaviest of the benchmarks: ``--producers`` Ray actors each calling
  ``send_batch`` with the benchmark's 10,000 x 200 B tables, ``acks="all"`` (idempotent), as
  fast as the producer lets them (its buffer is the only brake), alternating the topics; and
  a consumer group of ``--consumers`` actors subscribed to both topics, polling and
  auto-committing. No fault is injected.
* measured -- every second, each topic's ``topic_metadata`` (leader epoch and leader actor
  per partition) and the TopicManager's ``recent_events`` (elections, ISR changes, outages).
  The figure is the leader epochs' total increase during the run (an increase is a new
  leadership term; a poll cannot miss one) = false failovers, also per hour. Probe statistics
  (latency, misses, the longest silence) come from a timer this module installs around the
  ``ReplicaFleet``'s probe inside the TopicManager with Ray's ``__ray_call__`` -- benchmark
  only, no raykafka code changes; when the fleet has no such probe they are reported missing.
  Why followers left the ISR comes from the leaders' log files (``actor_logs``).

Prints the duration, the load achieved (msgs/s), the detector's settings (read from the
running TopicManager's modules), the leader changes with the old leader's missed probes
before each, every missed probe, the TopicManager's events, and the 1-minute load average
over the run. Not a test: it exits 0 whatever it counts.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import re
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import ray

from raykafka.bench.common import BATCH_MESSAGES, MESSAGE_BYTES, Session, build_tables, percentile
from raykafka.bench.replication import LABEL, RF3_CONFIG, WORKERS

DEFAULT_DURATION_S = 300
TOPICS = 2
PARTITIONS_PER_TOPIC = 3
#: Per partition: the run writes ~50 MB/s per replica set, so logs are capped, not kept.
TOPIC_CONFIG = {**RF3_CONFIG, "segment.bytes": str(64 << 20), "retention.bytes": str(256 << 20)}
#: Ray's node health checks as tests/test_replication.py sets them.
HEALTH_CHECKS = {"health_check_period_ms": 500, "health_check_failure_threshold": 4}
#: Ray gives a node 30 s to register (hard-coded in Ray 2.60): a busy machine can miss it.
START_ATTEMPTS = 5
POLL_INTERVAL_S = 1.0
PROGRESS_EVERY_S = 30.0
#: The anchors (Kafka's defaults): a broker is fenced after this long without a heartbeat ...
KAFKA_BROKER_SESSION_TIMEOUT_MS = 9_000
#: ... and a follower leaves the ISR after lagging this long.
KAFKA_REPLICA_LAG_TIME_MAX_MS = 30_000
#: A probe slower than this is counted as slow (missed ones are listed with their replica and time).
SLOW_PROBE_MS = 500.0
#: What the TopicManager logs when a partition's leadership changes (control/reconcile.py).
ELECTION_PATTERNS = (
    re.compile(r"leader \S+ -> \S+, epoch"),
    re.compile(r"restarted;"),
    re.compile(r"follows epoch"),
    re.compile(r"a replica was ahead"),
    re.compile(r"for re-created follower"),
    re.compile(r"re-homed"),
)
ISR_CHANGE = re.compile(r"ISR \[(?P<old>[^\]]*)\] -> \[(?P<new>[^\]]*)\]")
#: What a leader logs when a follower leaves its ISR (actors/replication.py), in the replicas' log files.
LEFT_ISR = re.compile(
    r"^(?P<when>\S+ \S+) WARNING \S+: (?P<partition>\S+): (?P<follower>\S+) "
    r"left the ISR \((?P<why>.*)\); ISR now"
)
#: The replicas' settings an ISR shrink depends on (read from the running code, like the detector's).
REPLICA_SETTINGS = ("DEFAULT_REPLICA_LAG_TIME_MAX_MS", "DEFAULT_REPLICATE_TIMEOUT_MS")


# -- the cluster --------------------------------------------------------------------------------


def start_cluster():
    """Head + WORKERS labelled storage nodes, and this process's Ray connected to it."""
    from ray.cluster_utils import Cluster

    for attempt in range(START_ATTEMPTS):
        cluster = None
        try:
            cluster = Cluster(
                initialize_head=True,
                head_node_args={"num_cpus": 2, "include_dashboard": False, "_system_config": HEALTH_CHECKS},
            )
            for i in range(WORKERS):
                cluster.add_node(num_cpus=1, labels={LABEL: f"disk-{i}"})
            cluster.wait_for_nodes()
            break
        except Exception as exc:
            print(f"  cluster start {attempt + 1} failed: {exc}", file=sys.stderr)
            _stop_partial_start(cluster)
            if attempt == START_ATTEMPTS - 1:
                raise
    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
    return cluster


def _stop_partial_start(cluster) -> None:
    """After a failed start: shut down what the Cluster knows, then the Ray processes this process
    started that it does not know (a head whose start raised): its children, and processes of a
    Ray session this process started (session names end with the starting process's pid) that a
    killed raylet left behind. Nothing else of this process runs Ray yet."""
    import psutil

    if cluster is not None:
        with contextlib.suppress(Exception):
            cluster.shutdown()
    ours = re.compile(rf"session_[\d_-]+_{os.getpid()}\b")
    for _ in range(3):  # a raylet may still be starting its agents
        children = {p.pid for p in psutil.Process().children(recursive=True)}
        for proc in psutil.process_iter(["pid", "cmdline"]):
            if proc.pid in children or ours.search(" ".join(proc.info["cmdline"] or [])):
                with contextlib.suppress(psutil.Error):
                    proc.kill()
        time.sleep(1.0)


def _on_head() -> dict:
    """Scheduling options that put a load actor on the head node (the storage nodes keep their CPU
    for the replicas, as the chaos run's clients do)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return {
        "scheduling_strategy": NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), True)
    }


# -- the load -----------------------------------------------------------------------------------


@ray.remote(num_cpus=0, max_concurrency=2)
class LoadProducer:
    """``send_batch`` of 10,000-row tables, ``acks="all"``, back to back until a wall-clock deadline."""

    def __init__(self, settings, topics: list[str], seed: int):
        from raykafka import Producer

        self.topics = topics
        self.tables = build_tables(seed)
        self.producer = Producer(acks="all", settings=settings)
        self.deadline_wall_s = float("inf")
        self.acked = 0  # messages acknowledged before the deadline
        self.acked_late = 0  # ... after it (while closing): not counted in the rate
        self.errors: Counter[str] = Counter()
        self.first_errors: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def run(self, deadline_wall_s: float) -> dict:
        self.deadline_wall_s = deadline_wall_s
        i = 0
        while time.time() < deadline_wall_s:
            table = self.tables[i % len(self.tables)]
            try:
                future = self.producer.send_batch(self.topics[i % len(self.topics)], table)
            except Exception as exc:  # the buffer stayed full for max_block_ms, ...
                self._error(exc)
                time.sleep(0.1)
                continue
            future.add_done_callback(lambda f, n=table.num_rows: self._done(f, n))
            i += 1
        with contextlib.suppress(Exception):  # close() raises a send's failure again: counted
            self.producer.close(timeout=60)
        return self.progress()

    def _done(self, future, rows: int) -> None:
        error = future.exception()
        if error is not None:
            self._error(error)
            return
        with self._lock:
            if time.time() <= self.deadline_wall_s:
                self.acked += rows
            else:
                self.acked_late += rows

    def _error(self, error: BaseException) -> None:
        with self._lock:
            self.errors[type(error).__name__] += 1
            if len(self.first_errors) < 5:
                self.first_errors.append((time.time(), f"{type(error).__name__}: {error}"[:200]))

    def progress(self) -> dict:
        with self._lock:
            return {
                "acked": self.acked,
                "acked_late": self.acked_late,
                "errors": dict(self.errors),
                "first_errors": list(self.first_errors),
            }


@ray.remote(num_cpus=0, max_concurrency=2)
class LoadConsumer:
    """One member of the group: polls both topics until a wall-clock deadline, auto-committing."""

    def __init__(self, settings, group_id: str, topics: list[str]):
        from raykafka import Consumer

        self.consumer = Consumer(
            group_id=group_id, auto_offset_reset="earliest", auto_commit_interval_ms=1000, settings=settings
        )
        self.consumer.subscribe(topics)
        self.read = 0
        self.errors: Counter[str] = Counter()
        self.first_errors: list[tuple[float, str]] = []

    def run(self, deadline_wall_s: float) -> dict:
        while time.time() < deadline_wall_s:
            try:
                self.read += self.consumer.poll_batch(max_messages=BATCH_MESSAGES, timeout_s=0.5).num_rows
            except Exception as exc:
                self.errors[type(exc).__name__] += 1
                if len(self.first_errors) < 5:
                    self.first_errors.append((time.time(), f"{type(exc).__name__}: {exc}"[:200]))
                time.sleep(0.1)
        with contextlib.suppress(Exception):
            self.consumer.close()
        return self.progress()

    def progress(self) -> dict:
        return {"read": self.read, "errors": dict(self.errors), "first_errors": list(self.first_errors)}


# -- inside the TopicManager (shipped with Ray's __ray_call__) ----------------------------------


@dataclass
class ProbeStats:
    """What the timer around ``ReplicaFleet._probe`` saw; lives in the TopicManager's process."""

    latencies_ms: list[float] = field(default_factory=list)
    missed: int = 0
    longest_streak: int = 0  # missed probes in a row of one process
    longest_silence_ms: int = 0  # since a process's last answer, seen at a miss
    down_verdicts: int = 0  # probes after which the detector said "down"
    slow: int = 0  # answered, but after SLOW_PROBE_MS
    #: (time, process, ms, misses in a row, silence ms, the detector's status after it)
    misses: list[tuple[float, str, float, int, int, str]] = field(default_factory=list)
    round_starts_s: list[float] = field(default_factory=list)
    round_durations_ms: list[float] = field(default_factory=list)


def install_probe_timer(manager) -> dict:
    """Run inside the TopicManager: time every probe and round; answer the detector's settings."""
    from raykafka.clock import now_ms as clock_ms

    fleet_module = sys.modules.get("raykafka.actors.replica_fleet")
    manager_module = sys.modules.get("raykafka.actors.topic_manager")
    partition_module = sys.modules.get("raykafka.actors.partition")
    settings = {
        name: getattr(module, name, None)
        for module, names in (
            (fleet_module, ("PROBE_TIMEOUT_S", "PROBE_MISSES_TO_FAIL", "PROBE_SILENCE_TO_FAIL_MS")),
            (fleet_module, ("FOLLOWER_PROBE_EVERY",)),
            (manager_module, ("MONITOR_INTERVAL_MS",)),
            (partition_module, REPLICA_SETTINGS),
        )
        for name in names
    }
    fleet = getattr(manager, "fleet", None)
    detector = getattr(fleet, "detector", None)
    if fleet is None or detector is None or not hasattr(fleet, "_probe") or not hasattr(manager, "_round"):
        return {"installed": False, **settings}
    settings["detector"] = {"timeout_ms": detector.timeout_ms, "misses": detector.misses}
    stats = ProbeStats()
    probe, round_ = fleet._probe, manager._round

    async def timed_probe(replica_id: str, name: str):
        started = time.monotonic()
        report = await probe(replica_id, name)
        took_ms = (time.monotonic() - started) * 1000
        stats.latencies_ms.append(took_ms)
        record = detector._records.get(name)
        missed = record is not None and record.misses > 0
        if missed:
            now_ms = clock_ms()
            silence_ms = now_ms - record.last_heard_ms
            status = detector.status(name, now_ms)
            stats.missed += 1
            stats.longest_streak = max(stats.longest_streak, record.misses)
            stats.longest_silence_ms = max(stats.longest_silence_ms, silence_ms)
            stats.down_verdicts += status == "down"
            if len(stats.misses) < 1000:
                stats.misses.append((time.time(), name, took_ms, record.misses, silence_ms, status))
        elif took_ms > SLOW_PROBE_MS:
            stats.slow += 1
        return report

    async def timed_round():
        started = time.monotonic()
        stats.round_starts_s.append(started)
        try:
            return await round_()
        finally:
            stats.round_durations_ms.append((time.monotonic() - started) * 1000)

    fleet._probe = timed_probe
    manager._round = timed_round
    manager._bench_probe_stats = stats
    return {"installed": True, **settings}


def probe_snapshot(manager) -> dict | None:
    """Run inside the TopicManager: what the timer saw so far (None: not installed)."""
    stats: ProbeStats | None = getattr(manager, "_bench_probe_stats", None)
    if stats is None:
        return None
    starts = list(stats.round_starts_s)
    return {
        "latencies_ms": list(stats.latencies_ms),
        "missed": stats.missed,
        "longest_streak": stats.longest_streak,
        "longest_silence_ms": stats.longest_silence_ms,
        "down_verdicts": stats.down_verdicts,
        "slow": stats.slow,
        "misses": list(stats.misses),
        "rounds": len(starts),
        "longest_round_gap_ms": max(((b - a) * 1000 for a, b in itertools.pairwise(starts)), default=0.0),
        "round_durations_ms": list(stats.round_durations_ms),
    }


# -- the watch ----------------------------------------------------------------------------------


@dataclass
class LeaderChange:
    at_s: float  # since the load started
    partition: str
    old_leader: str | None
    new_leader: str | None
    old_epoch: int
    new_epoch: int


@dataclass
class Watch:
    """What the driver sees once a second: leader epochs, leader actors, the manager's events."""

    manager: object
    topics: list[str]
    start_wall_s: float
    epochs: dict[str, list[int]] = field(default_factory=dict)
    leaders: dict[str, list[str | None]] = field(default_factory=dict)
    initial_epochs: dict[str, list[int]] = field(default_factory=dict)
    changes: list[LeaderChange] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    seen_events: set[tuple] = field(default_factory=set)
    metadata_ms: list[float] = field(default_factory=list)
    failed_polls: list[tuple[float, str]] = field(default_factory=list)
    load1: list[float] = field(default_factory=list)

    def poll(self) -> None:
        self.load1.append(os.getloadavg()[0])
        started = time.monotonic()
        try:
            metadata = ray.get([self.manager.topic_metadata.remote(t) for t in self.topics], timeout=30)
            events = ray.get(self.manager.recent_events.remote(200), timeout=30)
        except Exception as exc:
            self.failed_polls.append((time.time() - self.start_wall_s, f"{type(exc).__name__}: {exc}"[:200]))
            return
        self.metadata_ms.append((time.monotonic() - started) * 1000)
        at_s = time.time() - self.start_wall_s
        for topic, md in zip(self.topics, metadata, strict=True):
            epochs, names = list(md["epochs"]), list(md["leader_names"])
            if topic not in self.epochs:
                self.initial_epochs[topic] = epochs
            else:
                for p, (old_e, new_e) in enumerate(zip(self.epochs[topic], epochs, strict=True)):
                    old_l, new_l = self.leaders[topic][p], names[p]
                    if old_e != new_e or old_l != new_l:
                        self.changes.append(LeaderChange(at_s, f"{topic}-{p}", old_l, new_l, old_e, new_e))
            self.epochs[topic], self.leaders[topic] = epochs, names
        for event in events:
            key = (event["time_ms"], event["level"], event["message"])
            if key in self.seen_events or event["time_ms"] < self.start_wall_s * 1000:
                continue
            self.seen_events.add(key)
            self.events.append(event)

    def epoch_increase(self) -> int:
        return sum(
            new - old
            for topic in self.topics
            for old, new in zip(self.initial_epochs.get(topic, []), self.epochs.get(topic, []), strict=True)
        )


def is_election(message: str) -> bool:
    return any(p.search(message) for p in ELECTION_PATTERNS)


def isr_changes(events: list[dict]) -> tuple[int, int]:
    """(shrinks, expansions) among the events."""
    shrinks = expansions = 0
    for event in events:
        m = ISR_CHANGE.search(event["message"])
        if m:
            old = [x for x in m["old"].split(",") if x.strip()]
            new = [x for x in m["new"].split(",") if x.strip()]
            shrinks += len(new) < len(old)
            expansions += len(new) > len(old)
    return shrinks, expansions


def isr_leaves(start_wall_s: float, end_wall_s: float) -> list[tuple[float, str, str, str]]:
    """``(time, partition, follower, why)`` of every "left the ISR" the leaders logged during the
    run, from the replicas' log files (``actor_logs``: every node of this one-machine cluster
    writes under the same Ray session directory)."""
    from raykafka.actors.actor_logs import logs_directory

    directory = logs_directory()
    if directory is None or not (directory / "raykafka").is_dir():
        return []
    out = []
    for path in sorted((directory / "raykafka").glob("partition-*.log")):
        with open(path, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                m = LEFT_ISR.match(line)
                if m is None:
                    continue
                when = time.mktime(time.strptime(m["when"].split(",")[0], "%Y-%m-%d %H:%M:%S"))
                when += int(m["when"].split(",")[1]) / 1000
                if start_wall_s <= when <= end_wall_s:
                    out.append((when, m["partition"], m["follower"], m["why"]))
    return sorted(out)


def why_class(why: str) -> str:
    """A leave's cause in a few words: lagging, or the replicate call's error type."""
    return why if why == "lagging" else "replicate call failed: " + why.split(":")[0]


# -- the run ------------------------------------------------------------------------------------


def run(session: Session, opts) -> dict:
    from raykafka.api.connection import current_settings, topic_manager

    settings = current_settings()
    manager = topic_manager(settings)
    topics = [
        session.new_topic(
            f"ff{i}", partitions=PARTITIONS_PER_TOPIC, replication_factor=3, config=TOPIC_CONFIG
        )
        for i in range(TOPICS)
    ]
    detector = ray.get(manager.__ray_call__.remote(install_probe_timer), timeout=60)

    group_id = f"bench-ff-{uuid.uuid4().hex[:8]}"
    place = _on_head()
    producers = [
        LoadProducer.options(**place).remote(settings, topics, seed) for seed in range(opts.producers)
    ]
    consumers = [
        LoadConsumer.options(**place).remote(settings, group_id, topics) for _ in range(opts.consumers)
    ]
    start_wall_s = time.time()
    deadline_wall_s = start_wall_s + opts.duration_s
    watch = Watch(manager, topics, start_wall_s)
    watch.poll()  # the epochs the run starts from
    load_start = os.getloadavg()
    refs = [p.run.remote(deadline_wall_s) for p in producers] + [
        c.run.remote(deadline_wall_s) for c in consumers
    ]
    next_progress = start_wall_s + PROGRESS_EVERY_S
    while time.time() < deadline_wall_s:
        time.sleep(max(0.0, min(POLL_INTERVAL_S, deadline_wall_s - time.time())))
        watch.poll()
        if time.time() >= next_progress:
            next_progress += PROGRESS_EVERY_S
            print(
                f"  [{time.time() - start_wall_s:4.0f}/{opts.duration_s} s] leader changes "
                f"{len(watch.changes)}, epoch increase {watch.epoch_increase()}, events {len(watch.events)}, "
                f"load average {os.getloadavg()[0]:.1f}",
                file=sys.stderr,
                flush=True,
            )
    duration_s = time.time() - start_wall_s
    load_end = os.getloadavg()
    probes = ray.get(manager.__ray_call__.remote(probe_snapshot), timeout=60)
    results = ray.get(refs, timeout=300)
    watch.poll()  # anything logged in the last second
    leaves = isr_leaves(start_wall_s, deadline_wall_s)
    for actor in producers + consumers:
        ray.kill(actor)
    return {
        "duration_s": duration_s,
        "topics": topics,
        "producers": results[: len(producers)],
        "consumers": results[len(producers) :],
        "detector": detector,
        "probes": probes,
        "isr_leaves": leaves,
        "watch": watch,
        "load_start": load_start,
        "load_end": load_end,
    }


def report(result: dict, opts, out=None) -> None:
    out = out or sys.stdout
    watch: Watch = result["watch"]
    duration_s = result["duration_s"]
    acked = sum(p["acked"] for p in result["producers"])
    read = sum(c["read"] for c in result["consumers"])
    send_errors: Counter[str] = Counter()
    for p in result["producers"]:
        send_errors.update(p["errors"])
    read_errors: Counter[str] = Counter()
    for c in result["consumers"]:
        read_errors.update(c["errors"])
    increase = watch.epoch_increase()
    moved = sum(1 for c in watch.changes if c.old_leader != c.new_leader)
    elections = [e for e in watch.events if is_election(e["message"])]
    shrinks, expansions = isr_changes(watch.events)
    load1 = watch.load1 or [0.0]
    d = result["detector"]
    det = d.get("detector") or {}
    probes = result["probes"]

    def say(text: str = "") -> None:
        print(text, file=out)

    def row(label: str, text: str) -> None:
        say(f"{label:<24} {text}")

    say("\n## failure detection under load: false failovers (no fault injected)")
    say(
        f"cluster_utils.Cluster: head + {WORKERS} workers labelled {LABEL}=disk-i on {os.cpu_count()} "
        f"CPUs; {TOPICS} topics x {PARTITIONS_PER_TOPIC} partitions, RF 3, min.insync.replicas=2"
    )
    say(
        f"load: {opts.producers} producer actor(s), send_batch of {BATCH_MESSAGES:,} x {MESSAGE_BYTES} B, "
        f'acks="all", idempotent, back to back; a group of {opts.consumers} consumer actor(s)'
    )
    row("duration", f"{duration_s:.0f} s")
    row(
        "produced (acked)",
        f"{acked:,} msgs = {acked / duration_s:,.0f} msgs/s ({acked * MESSAGE_BYTES / duration_s / 1e6:.1f} "
        f"MB/s); failed sends: {dict(send_errors) or 0}",
    )
    row(
        "consumed by the group",
        f"{read:,} msgs = {read / duration_s:,.0f} msgs/s; errors: {dict(read_errors) or 0}",
    )
    row(
        "detector",
        f"a probe round every {d.get('MONITOR_INTERVAL_MS')} ms (settled followers every "
        f"{d.get('FOLLOWER_PROBE_EVERY')}th), probe timeout {d.get('PROBE_TIMEOUT_S')} s, down after "
        f"{det.get('misses', d.get('PROBE_MISSES_TO_FAIL'))} misses in a row and "
        f"{det.get('timeout_ms', d.get('PROBE_SILENCE_TO_FAIL_MS'))} ms without an answer",
    )
    row(
        "Kafka's anchors",
        f"broker.session.timeout.ms={KAFKA_BROKER_SESSION_TIMEOUT_MS}, "
        f"replica.lag.time.max.ms={KAFKA_REPLICA_LAG_TIME_MAX_MS}",
    )
    row(
        "leader changes",
        f"{increase} (the leader epochs' increase; the 1 s poll saw {moved} leader move(s) and "
        f"{len(watch.changes) - moved} same-leader epoch bump(s); {len(elections)} election event(s))",
    )
    row("false failovers per hour", f"{increase * 3600 / duration_s:.1f}")
    row(
        "ISR shrinks / expansions",
        f"{shrinks} / {expansions} recorded by the TopicManager (replica.lag.time.max.ms here "
        f"{d.get('DEFAULT_REPLICA_LAG_TIME_MAX_MS')} ms, replicate call timeout "
        f"{d.get('DEFAULT_REPLICATE_TIMEOUT_MS')} ms)",
    )
    leaves = result["isr_leaves"]
    causes = Counter(why_class(why) for _, _, _, why in leaves)
    row("followers left the ISR", f"{len(leaves)} (leaders' logs): {dict(causes) or 0}")
    row(
        "load average (1 min)",
        f"mean {sum(load1) / len(load1):.1f}, min {min(load1):.1f}, max {max(load1):.1f} over the run "
        f"(5 min: {result['load_start'][1]:.1f} at start, {result['load_end'][1]:.1f} at end)",
    )
    if probes is None:
        row("probes", "not measured (this TopicManager has no ReplicaFleet._probe)")
    else:
        lat = probes["latencies_ms"] or [0.0]
        rounds = probes["round_durations_ms"] or [0.0]
        row(
            "probes",
            f"{len(probes['latencies_ms']):,}; latency p50 {percentile(lat, 50):.1f} / p99 "
            f"{percentile(lat, 99):.1f} / max {max(lat):.0f} ms; missed {probes['missed']}, longest streak "
            f"{probes['longest_streak']}, longest silence at a miss {probes['longest_silence_ms']} ms, "
            f"'down' verdicts {probes['down_verdicts']}; answered after > {SLOW_PROBE_MS:.0f} ms: "
            f"{probes['slow']}",
        )
        row(
            "TopicManager rounds",
            f"{probes['rounds']:,}; duration p50 {percentile(rounds, 50):.0f} / max {max(rounds):.0f} ms; "
            f"longest gap between round starts {probes['longest_round_gap_ms']:.0f} ms",
        )
    if watch.metadata_ms:
        row(
            "driver's 1 s poll",
            f"topic_metadata + recent_events p50 {percentile(watch.metadata_ms, 50):.0f} / max "
            f"{max(watch.metadata_ms):.0f} ms; failed polls {len(watch.failed_polls)}",
        )
    for at_s, text in watch.failed_polls[:5]:
        say(f"  poll failed at +{at_s:.0f} s: {text}")
    for p in result["producers"] + result["consumers"]:
        for t, text in p["first_errors"]:
            say(f"  client error at +{t - watch.start_wall_s:.1f} s: {text}")
    if watch.changes:
        say("\nleader changes seen by the poll (with the old leader's missed probes in the 15 s before):")
        for c in watch.changes:
            say(
                f"  +{c.at_s:6.1f} s {c.partition}: epoch {c.old_epoch} -> {c.new_epoch}, "
                f"leader {c.old_leader} -> {c.new_leader}"
            )
            for t, name, took_ms, streak, silence_ms, status in (probes or {}).get("misses", []):
                if name == c.old_leader and c.at_s - 15 <= t - watch.start_wall_s <= c.at_s:
                    say(
                        f"      probe missed at +{t - watch.start_wall_s:.1f} s after {took_ms:.0f} ms, "
                        f"{streak} in a row, silent {silence_ms} ms -> {status}"
                    )
    if probes is not None and probes["misses"]:
        say(f"\nmissed probes ({len(probes['misses'])}; process, wait, misses in a row, silence, verdict):")
        for t, name, took_ms, streak, silence_ms, status in probes["misses"][: opts.max_events]:
            say(
                f"  +{t - watch.start_wall_s:6.1f} s {name}: {took_ms:.0f} ms, {streak} in a row, "
                f"silent {silence_ms} ms -> {status}"
            )
        if len(probes["misses"]) > opts.max_events:
            say(f"  ... and {len(probes['misses']) - opts.max_events} more")
    if leaves:
        say(f"\nfollowers that left the ISR (first {min(len(leaves), 20)}):")
        for when, partition, follower, why in leaves[:20]:
            say(f"  +{when - watch.start_wall_s:6.1f} s {partition}: {follower} ({why})")
    notable = [e for e in watch.events if e["level"] != "INFO" or is_election(e["message"])]
    others = [e for e in watch.events if e not in notable]
    say(
        f"\nTopicManager events during the run: {len(watch.events)}; "
        f"elections, warnings, errors ({len(notable)}):"
    )
    for e in notable:
        say(f"  +{e['time_ms'] / 1000 - watch.start_wall_s:6.1f} s {e['level']:<7} {e['message'][:300]}")
    say(f"other events (ISR changes, replicas starting; first {min(len(others), opts.max_events)}):")
    for e in others[: opts.max_events]:
        say(f"  +{e['time_ms'] / 1000 - watch.start_wall_s:6.1f} s {e['level']:<7} {e['message'][:300]}")
    if len(others) > opts.max_events:
        say(f"  ... and {len(others) - opts.max_events} more")
    if max(load1) > (os.cpu_count() or 1):
        say(f"NOISY: the load average passed the CPU count ({os.cpu_count()}), as this run means it to")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m raykafka.bench.false_failover", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "--duration-s", type=int, default=DEFAULT_DURATION_S, help="run length (default 300; 60 to check)"
    )
    p.add_argument("--producers", type=int, default=2, help="producer actors (default 2)")
    p.add_argument("--consumers", type=int, default=2, help="consumer group members (default 2)")
    p.add_argument("--max-events", type=int, default=60, help="events and missed probes listed at most")
    return p


def main(argv: list[str] | None = None) -> int:
    opts = parser().parse_args(argv)
    print(
        f"false failovers: starting a {WORKERS + 1}-node cluster, then {opts.duration_s} s of load",
        file=sys.stderr,
        flush=True,
    )
    cluster = start_cluster()
    session = Session().start()
    try:
        result = run(session, opts)
    finally:
        session.close()
        ray.shutdown()
        cluster.shutdown()
    report(result, opts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
