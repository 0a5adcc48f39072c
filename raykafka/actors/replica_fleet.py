"""ReplicaFleet: the Ray side of the TopicManager -- the partition replicas' actors and what it sees of them.

The control core (``raykafka.control``) decides; the fleet carries out its actions on Ray
and reports what the replicas say:

* **Handles.** One actor per replica record, named by topic, partition, replica id and
  generation (``naming.partition_actor_name``), detached, pinned to the record's node.
  A TopicManager that starts finds the actors that still live by name; a replica without
  one is *gone* and reconciliation creates it.
* **Probes** (``observe``). Each round asks replicas for ``health()`` -- answered on the
  actor's own control thread, so a busy leader still answers -- and feeds a
  ``FailureDetector`` per *process* (today one process per replica; its id is the actor
  name). Leaders, and any replica not known to be following its current epoch, are asked
  every round; settled followers every ``FOLLOWER_PROBE_EVERY`` rounds, their last report
  standing in between. A process is *down* only after ``misses`` probes in a row and
  ``timeout_ms`` of silence (``liveness.py``), so one slow answer on a busy 2-vCPU node is
  never a failover.
* **Actions** (``create``, ``stop``, ``run``): create and kill actors, send role commands,
  destroy data, push configs. A role command that succeeds updates the last report (the
  replica now has that role at that epoch), so the next round does not repeat it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import ray
from ray.exceptions import ActorDiedError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from raykafka.actors.naming import partition_actor_name
from raykafka.actors.partition import MAX_CONCURRENCY, PartitionActor
from raykafka.clock import now_ms
from raykafka.control import (
    DOWN,
    GONE,
    BecomeFollower,
    BecomeLeader,
    ClusterMetadata,
    CreateReplica,
    DestroyReplica,
    FailureDetector,
    Observation,
    ReplicaReport,
    StopReplica,
    UpdateConfig,
)
from raykafka.control.metadata import Replica

logger = logging.getLogger(__name__)

#: How long one health probe may take before it counts as missed.
PROBE_TIMEOUT_S = 1.0
#: A probe process is down after this many missed probes in a row ...
PROBE_MISSES_TO_FAIL = 2
#: ... and this long without an answer (both: see the module docstring).
PROBE_SILENCE_TO_FAIL_MS = 1_000
#: Settled followers are probed every this many rounds (leaders every round).
FOLLOWER_PROBE_EVERY = 4
#: How long a role command, a config push or a deletion may take before it counts as failed
#: (reconciliation sends it again).
COMMAND_TIMEOUT_S = 20.0

#: The partition actor's liveness check runs in its own concurrency group (see PartitionActor.health);
#: its other calls share MAX_CONCURRENCY slots, of which long polls take at most half.
_PartitionActor = ray.remote(max_concurrency=MAX_CONCURRENCY, concurrency_groups={"control": 4})(
    PartitionActor
)


def actor_name(topic: str, partition: int, replica: Replica) -> str:
    return partition_actor_name(topic, partition, replica.replica_id, replica.generation)


class ReplicaFleet:
    def __init__(
        self,
        namespace: str,
        data_dir: str | None,
        cluster_id: str,
        maintenance_interval_ms: int,
        replica_lag_time_max_ms: int | None,
    ):
        self.namespace = namespace
        self.data_dir = data_dir  # as given: resolved on each replica's own node
        self.cluster_id = cluster_id
        self.maintenance_interval_ms = maintenance_interval_ms
        self.replica_lag_time_max_ms = replica_lag_time_max_ms
        self.detector = FailureDetector(timeout_ms=PROBE_SILENCE_TO_FAIL_MS, misses=PROBE_MISSES_TO_FAIL)
        self._handles: dict[str, tuple[str, ray.actor.ActorHandle]] = {}  # replica id -> (name, handle)
        # replica id -> the last handle it had, kept while its actor died and is not re-created yet:
        # a client given it gets an actor error and asks again, as with any leader that went away
        self._last_known: dict[str, ray.actor.ActorHandle] = {}
        self._reports: dict[str, ReplicaReport] = {}  # replica id -> its last answer
        self._starting: dict[str, int] = {}  # replica id -> when this manager created its actor (ms)
        self._rounds = 0

    # -- handles -----------------------------------------------------------------

    def handle(self, replica_id: str) -> ray.actor.ActorHandle | None:
        entry = self._handles.get(replica_id)
        return None if entry is None else entry[1]

    def client_handle(self, replica_id: str) -> ray.actor.ActorHandle | None:
        """The handle to give clients: the current one, else the last one (see ``_last_known``)."""
        return self.handle(replica_id) or self._last_known.get(replica_id)

    def attach(self, topic: str, partition: int, replica: Replica) -> None:
        """Take the handle of ``replica``'s actor if it lives (a TopicManager that restarted)."""
        name = actor_name(topic, partition, replica)
        try:
            handle = ray.get_actor(name, namespace=self.namespace)
        except ValueError:
            return  # none: reconciliation creates it
        self._handles[replica.replica_id] = (name, handle)
        self._last_known[replica.replica_id] = handle

    def create(self, action: CreateReplica, config: Mapping[str, str]) -> None:
        replica = action.replica
        name = actor_name(action.topic, action.partition, replica)
        options = {}
        if self.replica_lag_time_max_ms is not None:
            options["replica_lag_time_max_ms"] = self.replica_lag_time_max_ms
        try:
            handle = _PartitionActor.options(
                name=name,
                namespace=self.namespace,
                lifetime="detached",
                num_cpus=0,
                max_restarts=-1,
                max_task_retries=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(replica.node_id, soft=False),
            ).remote(
                action.topic,
                action.partition,
                replica.replica_id,
                self.data_dir,
                dict(config),
                self.namespace,
                self.maintenance_interval_ms,
                cluster_id=self.cluster_id,
                **options,
            )
        except ValueError:  # the name is taken: an actor of this record lives already
            try:
                handle = ray.get_actor(name, namespace=self.namespace)
            except ValueError:  # ... or was, and its name is not free yet: the next round retries
                logger.info("%s: its name is not free yet; creating it again later", name)
                return
        self._handles[replica.replica_id] = (name, handle)
        self._last_known[replica.replica_id] = handle
        self._reports.pop(replica.replica_id, None)
        self._starting[replica.replica_id] = now_ms()
        self.detector.forget(name)

    def _take_handle(self, replica_id: str, name: str) -> ray.actor.ActorHandle | None:
        """Forget and return the handle of actor ``name`` (the one held, else by name; None if none)."""
        entry = self._handles.get(replica_id)
        if entry is not None and entry[0] == name:
            del self._handles[replica_id]
            return entry[1]
        try:
            return ray.get_actor(name, namespace=self.namespace)
        except ValueError:
            return None

    def stop(self, action: StopReplica) -> None:
        """Kill the actor of an old replica record for good (its data stays)."""
        name = actor_name(action.topic, action.partition, action.replica)
        handle = self._take_handle(action.replica.replica_id, name)
        self._reports.pop(action.replica.replica_id, None)
        self.detector.forget(name)
        if handle is not None:
            ray.kill(handle, no_restart=True)

    def starting_since_ms(self, replica_id: str) -> int | None:
        """When this manager created ``replica_id``'s actor, while it has not answered since."""
        return self._starting.get(replica_id)

    # -- probes ------------------------------------------------------------------

    async def observe(self, metadata: ClusterMetadata) -> dict[str, Observation]:
        """One observation per replica of every live topic (see the module docstring); replicas
        whose probe was missed but whose process is not down yet are left out (undecided)."""
        self._rounds += 1
        everyone = self._rounds % FOLLOWER_PROBE_EVERY == 1
        wanted: dict[str, str] = {}  # replica id -> actor name, of the records in the metadata
        probe: list[str] = []
        for topic, part in metadata.partitions():
            for replica in part.replicas:
                rid = replica.replica_id
                wanted[rid] = actor_name(topic.name, part.partition, replica)
                last = self._reports.get(rid)
                settled = (
                    last is not None
                    and last.role == "follower"
                    and last.epoch == part.leader_epoch
                    and rid != part.leader
                )
                if everyone or not settled:
                    probe.append(rid)
        answers = await asyncio.gather(*(self._probe(rid, wanted[rid]) for rid in probe))
        probed = dict(zip(probe, answers, strict=True))
        now = now_ms()
        out: dict[str, Observation] = {}
        for rid, name in wanted.items():
            entry = self._handles.get(rid)
            if entry is None or entry[0] != name:
                out[rid] = GONE
                self._reports.pop(rid, None)
                continue
            if rid in probed and probed[rid] is not None:
                out[rid] = probed[rid]
                continue
            status = self.detector.status(name, now)
            if status in ("gone", "down"):
                out[rid] = GONE if status == "gone" else DOWN
                self._reports.pop(rid, None)  # its last answer no longer says anything
            elif rid not in probed and rid in self._reports:
                out[rid] = self._reports[rid]
        return out

    async def _probe(self, replica_id: str, name: str) -> ReplicaReport | None:
        entry = self._handles.get(replica_id)
        if entry is None or entry[0] != name:
            return None
        try:
            role, epoch = await asyncio.wait_for(entry[1].health.remote(), PROBE_TIMEOUT_S)
        except ActorDiedError:  # dead for good (its constructor failed, or it was killed)
            self.detector.died(name)
            self._reports.pop(replica_id, None)
            self._starting.pop(replica_id, None)
            del self._handles[replica_id]
            return None
        except Exception:
            self.detector.missed(name, now_ms())
            return None
        self.detector.heard(name, now_ms())
        self._starting.pop(replica_id, None)
        report = ReplicaReport.from_health(role, epoch)
        self._reports[replica_id] = report
        return report

    def last_reports(self) -> dict[str, ReplicaReport]:
        """Every replica's last answer (a role command that succeeded counts as one)."""
        return dict(self._reports)

    def forget_missing(self, metadata: ClusterMetadata) -> None:
        """Drop what is known of replicas no topic holds any more (deleted, reassigned away)."""
        held = {r.replica_id for t in metadata.topics.values() for p in t.partitions for r in p.replicas}
        for rid in [r for r in self._last_known if r not in held]:
            del self._last_known[rid]
        for rid in [r for r in self._handles if r not in held]:
            name, _ = self._handles.pop(rid)
            self.detector.forget(name)
            self._reports.pop(rid, None)
            self._starting.pop(rid, None)

    # -- commands ----------------------------------------------------------------

    async def run(self, action, metadata: ClusterMetadata) -> bool:
        """Carry out a role command, a config push or a deletion; True when it took effect."""
        try:
            if isinstance(action, BecomeLeader):
                return await self._become_leader(action)
            if isinstance(action, BecomeFollower):
                return await self._become_follower(action)
            if isinstance(action, UpdateConfig):
                handle = self.handle(action.replica_id)
                if handle is not None:
                    await asyncio.wait_for(
                        handle.update_config.remote(dict(action.config)), COMMAND_TIMEOUT_S
                    )
                return handle is not None
            if isinstance(action, DestroyReplica):
                return await self._destroy(action)
        except Exception as exc:
            logger.warning(
                "%s-%d: %s failed: %s", action.topic, action.partition, _describe(action), _cause(exc)
            )
            return False
        raise TypeError(f"not a command: {action!r}")

    async def _become_leader(self, action: BecomeLeader) -> bool:
        handle = self.handle(action.replica_id)
        if handle is None:
            return False
        followers = {rid: self.handle(rid) for rid in action.followers}
        await asyncio.wait_for(
            handle.become_leader.remote(action.epoch, followers, list(action.isr)), COMMAND_TIMEOUT_S
        )
        self._reports[action.replica_id] = ReplicaReport("leader", action.epoch)
        return True

    async def _become_follower(self, action: BecomeFollower) -> bool:
        handle, leader = self.handle(action.replica_id), self.handle(action.leader)
        if handle is None or leader is None:
            return False
        await asyncio.wait_for(
            handle.become_follower.remote(action.epoch, action.leader, leader), COMMAND_TIMEOUT_S
        )
        self._reports[action.replica_id] = ReplicaReport("follower", action.epoch)
        return True

    async def _destroy(self, action: DestroyReplica) -> bool:
        name = actor_name(action.topic, action.partition, action.replica)
        handle = self._take_handle(action.replica.replica_id, name)
        if handle is None:
            return True  # no actor: nothing to delete here (its node is gone: the data stays)
        try:
            await asyncio.wait_for(handle.destroy.remote(), COMMAND_TIMEOUT_S)
        except Exception as exc:  # its node may be gone: the data stays there
            logger.warning(
                "could not delete data of %s-%d replica %s: %s",
                action.topic,
                action.partition,
                action.replica.replica_id,
                _cause(exc),
            )
        ray.kill(handle, no_restart=True)
        self.detector.forget(name)
        self._reports.pop(action.replica.replica_id, None)
        return True


def _describe(action) -> str:
    if isinstance(action, BecomeLeader | BecomeFollower):
        role = "become_leader" if isinstance(action, BecomeLeader) else "become_follower"
        return f"{role}({action.replica_id}, epoch {action.epoch})"
    return type(action).__name__


def _cause(exc: BaseException) -> str:
    text = str(getattr(exc, "cause", None) or exc).strip()
    return (text.splitlines()[-1] if text else type(exc).__name__)[:200]
