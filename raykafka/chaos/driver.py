"""A chaos run from start to verdict: cluster, topic, clients, the fault loop, the final read.

``run(ChaosConfig)`` starts a local cluster (head + 3 labelled storage nodes), creates an RF=3
topic with ``min.insync.replicas=2``, starts idempotent ``acks="all"`` producers, a consumer
group whose members commit, and an observer of the group's commits, then injects the seeded
schedule's faults one cycle at a time: a steady pause, the fault (healed when it has a
duration), and a wait until every partition is back with its whole ISR. At the end it stops
the producers, lets the group drain, reads every partition whole from offset 0 with a fresh
group-less consumer (the "served" view), and hands the history to the checker. The cluster
is shut down whatever happens.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from raykafka.chaos.checker import Report, check
from raykafka.chaos.history import History, Read, read_lines
from raykafka.chaos.schedule import FAULT_KINDS, FaultSpec, make_schedule

NAMESPACE = "chaos"
TOPIC = "chaos-events"
GROUP = "chaos-group"
REPLICATION_FACTOR = 3
#: After a fault, before waiting for the partitions to heal: long enough for the TopicManager's
#: checks (0.5 s, 2 misses) to notice a dead leader.
SETTLE_S = 1.5


@dataclass(frozen=True)
class ChaosConfig:
    seed: int
    cycles: int
    partitions: int = 3
    producers: int = 2
    members: int = 2
    rate_per_s: float = 40.0  # per producer
    kinds: tuple[str, ...] = FAULT_KINDS
    pause_s: tuple[float, float] = (1.0, 4.0)
    heal_timeout_s: float = 90.0
    drain_timeout_s: float = 120.0
    out: Path | None = None  # where to write the history as JSON
    keep_dir: bool = False  # keep the data and fault directories (kept anyway when a run fails)
    workdir: Path | None = None


@dataclass
class _Run:
    config: ChaosConfig
    history: History
    lock: threading.Lock = field(default_factory=threading.Lock)


def log(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(config: ChaosConfig) -> tuple[History, Report]:
    """Run the chaos schedule of ``config.seed`` and check what happened."""
    schedule = make_schedule(
        config.seed, config.cycles, partitions=config.partitions, kinds=config.kinds, pause_s=config.pause_s
    )
    workdir = Path(config.workdir or tempfile.mkdtemp(prefix=f"raykafka-chaos-{config.seed}-"))
    (workdir / "faults").mkdir(parents=True, exist_ok=True)
    (workdir / "members").mkdir(exist_ok=True)
    state = _Run(config, History(seed=config.seed, topics={TOPIC: config.partitions}))
    log(f"seed {config.seed}, {config.cycles} cycles, work directory {workdir}")
    report = None
    try:
        _run_on_cluster(state, schedule, workdir)
        report = check(state.history)
        return state.history, report
    finally:
        if config.out is not None:
            state.history.write(config.out)
            log(f"history written to {config.out}")
        if report is not None and report.ok and not config.keep_dir:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"kept {workdir} (data, fault journal, member logs)")


def _run_on_cluster(state: _Run, schedule: list[FaultSpec], workdir: Path) -> None:
    from raykafka.chaos.cluster import ChaosCluster

    started = time.monotonic()
    cluster = ChaosCluster(workdir / "faults")
    log(f"cluster up in {time.monotonic() - started:.1f} s")
    try:
        _exercise(state, schedule, cluster, workdir)
    finally:
        cluster.shutdown()


def _exercise(state: _Run, schedule: list[FaultSpec], cluster, workdir: Path) -> None:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    import raykafka
    from raykafka import Admin
    from raykafka.chaos.clients import CommitObserver, GroupMember, ProducerLoop, member_rows_to_history
    from raykafka.chaos.injector import Injector, NoTarget
    from raykafka.storage import faults

    config, history = state.config, state.history
    data_dir = (workdir / "data").resolve()
    settings = raykafka.connect(namespace=NAMESPACE, data_dir=str(data_dir))
    # Every replica's file operations are journaled from now on, so a power loss can be simulated.
    faults.track_power_loss_in(cluster.faults_dir, data_dir / "namespaces" / NAMESPACE / "replicas")
    admin = Admin(request_timeout_ms=10000)
    Admin(request_timeout_ms=120000).create_topic(  # a replica actor each: slow on 2 CPUs
        TOPIC,
        partitions=config.partitions,
        replication_factor=REPLICATION_FACTOR,
        config={"min.insync.replicas": "2"},
    )
    history.started_s = time.monotonic()
    head = NodeAffinitySchedulingStrategy(cluster.head_node_id, soft=False)
    member_logs = [workdir / "members" / f"member-{i}.jsonl" for i in range(config.members)]
    members = [
        GroupMember.options(scheduling_strategy=head).remote(settings, GROUP, TOPIC, str(path), f"member-{i}")
        for i, path in enumerate(member_logs)
    ]
    producers = [
        ProducerLoop(f"p{i}", TOPIC, config.partitions, history, state.lock, rate_per_s=config.rate_per_s)
        for i in range(config.producers)
    ]
    observer = CommitObserver(GROUP, history, state.lock)
    injector = Injector(cluster, NAMESPACE, TOPIC, GROUP, members)
    try:
        _wait_for(lambda: len(history.acked) >= 20, 120, "the first acknowledgements")
        log(f"producing: {len(history.acked)} acknowledged; {len(schedule)} faults to go")
        for spec in schedule:
            time.sleep(spec.pause_s)
            log(spec.describe())
            try:
                fault = injector.inject(spec)
            except NoTarget as exc:
                history.notes.append(f"cycle {spec.cycle} ({spec.kind}) injected nothing: {exc}")
                log(f"  skipped: {exc}")
                continue
            with state.lock:
                history.faults.append(fault)
            log(f"  {fault.target}: {fault.detail}")
            time.sleep(SETTLE_S)  # let the cluster notice first (a killed follower leaves the ISR)
            took = _wait_healthy(admin, injector, config.partitions, config.heal_timeout_s)
            if took is None:
                note = f"cycle {spec.cycle} ({fault.kind} {fault.target}): not healed in time"
                history.notes.append(note)
                log(f"  {note}")
            else:
                log(f"  healed in {took:.1f} s; {len(history.acked)} acked, {len(history.failed)} failed")
    except BaseException:  # Ctrl-C, SIGTERM, a failed step: stop the clients quickly, no verdict
        for producer in producers:
            producer.stop(timeout_s=5)
        observer.stop()
        raise
    for producer in producers:
        producer.stop()
    history.produce_stopped_s = time.monotonic()
    log(f"producers stopped: {len(history.acked)} acknowledged, {len(history.failed)} failed")
    _wait_healthy(admin, injector, config.partitions, config.heal_timeout_s)
    ends = _log_ends(admin, config.partitions)
    log(f"log ends {ends}; letting the group drain")
    drained = _wait_for(
        lambda: all(observer.latest.get((TOPIC, p), -1) >= end for p, end in ends.items()),
        config.drain_timeout_s,
        "the group to commit up to the log ends",
        fail=False,
    )
    if not drained:
        history.notes.append(f"the group did not commit up to the log ends {ends} in time")
    observer.stop()
    for i, member in enumerate(members):
        try:
            error = ray.get(member.stop.remote(), timeout=90)
        except Exception as exc:
            error = f"stop failed: {type(exc).__name__}: {exc}"
        if error:
            history.notes.append(f"member {i}'s last error: {error}")
        with contextlib.suppress(Exception):
            ray.kill(member, no_restart=True)
    for path in member_logs:
        member_rows_to_history(read_lines(path), history)
    history.served = _read_whole_log(ends, timeout_s=config.drain_timeout_s)
    log(f"served {len(history.served)} records")


def _wait_for(predicate, timeout_s: float, what: str, fail: bool = True) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            if fail:
                raise TimeoutError(f"waited {timeout_s:.0f} s for {what}")
            return False
        time.sleep(0.2)
    return True


def _wait_healthy(admin, injector, partitions: int, timeout_s: float) -> float | None:
    """Seconds until every partition is whole again, or None after ``timeout_s``: the
    TopicManager records a leader and the whole ISR, the leader itself counts every replica in
    sync, and every replica answers as leader or follower."""
    started = time.monotonic()

    def healthy() -> bool:
        try:
            parts = admin.describe_topic(TOPIC).partitions
        except Exception:
            return False
        if len(parts) != partitions or any(
            p.offline or len(p.isr_node_ids) != REPLICATION_FACTOR for p in parts
        ):
            return False
        for p in range(partitions):
            infos = injector.replicas(p)
            roles = sorted(i["role"] for i in infos)
            leaders = [i for i in infos if i["role"] == "leader"]
            if roles != ["follower"] * (REPLICATION_FACTOR - 1) + ["leader"]:
                return False
            if len(leaders[0]["isr"] or ()) != REPLICATION_FACTOR:
                return False
        return True

    if _wait_for(healthy, timeout_s, "the partitions to heal", fail=False):
        return time.monotonic() - started
    return None


def _log_ends(admin, partitions: int) -> dict[int, int]:
    ends = {}
    for p in range(partitions):
        for attempt in range(10):
            try:
                ends[p] = admin.list_offsets(TOPIC, p, "latest")
                break
            except Exception:
                if attempt == 9:
                    raise
                time.sleep(2)
    return ends


def _read_whole_log(ends: dict[int, int], timeout_s: float) -> list[Read]:
    """Every record of every partition from offset 0 up to ``ends``, by a fresh group-less consumer."""
    from raykafka import Consumer, TopicPartition

    consumer = Consumer(group_id=None, auto_offset_reset="earliest")
    consumer.assign([TopicPartition(TOPIC, p, offset=0) for p in ends])
    served: list[Read] = []
    reached = {p: 0 for p in ends}
    deadline = time.monotonic() + timeout_s
    try:
        while any(reached[p] < end for p, end in ends.items()) and time.monotonic() < deadline:
            table = consumer.poll_batch(max_messages=20000, timeout_s=1.0)
            for p, o, v in zip(
                table.column("partition").to_pylist(),
                table.column("offset").to_pylist(),
                table.column("value").to_pylist(),
                strict=True,
            ):
                served.append(Read(TOPIC, p, o, v, "served"))
                reached[p] = max(reached[p], o + 1)
    finally:
        consumer.close()
    return served
