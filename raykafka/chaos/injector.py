"""Carries out one ``FaultSpec`` on the running chaos cluster and says what it did (a ``Fault``).

Targets are found when the fault starts (who leads changes with every failover): partition
replicas by their actor names and ``info()`` (pid, role, epoch, directory), the TopicManager by
``ping()``, the group coordinator by ``pid()``, group members by their own ``pid()``. Every
process is on this machine (the cluster is local), so a SIGKILL is an ``os.kill``.

* ``disk_full``: ENOSPC on every write under one replica's directory, through the storage
  fault layer's control file ``<faults dir>/write``, removed when the fault ends.
* ``power_loss``: the replica's process is SIGKILLed; this process takes its directory lock
  (so the restarted replica waits), cuts its files back to what it fsynced and undoes the
  directory changes no fsync made durable, from the journal the fault layer keeps
  (``simulate_power_loss_from_journal``), and lets the lock go.
"""

from __future__ import annotations

import fcntl
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import ray

from raykafka.actors.naming import TOPIC_MANAGER_NAME, group_actor_name
from raykafka.chaos.cluster import ChaosCluster
from raykafka.chaos.history import Fault
from raykafka.chaos.schedule import FaultSpec

CALL_TIMEOUT_S = 5.0
#: How long to look for a fault's target (a leader mid-election, a restarting coordinator).
FIND_TIMEOUT_S = 30.0
LOCK_TIMEOUT_S = 30.0


class NoTarget(Exception):
    """The fault's target could not be found in time; the cycle injects nothing."""


@dataclass
class Injector:
    cluster: ChaosCluster
    namespace: str
    topic: str
    group: str
    members: list = field(default_factory=list)  # GroupMember handles

    def inject(self, spec: FaultSpec) -> Fault:
        """Inject ``spec`` and heal it (a frozen node thawed, a crashed node back, a disk emptied)."""
        return getattr(self, f"_{spec.kind}")(spec)

    # -- SIGKILLs ---------------------------------------------------------------------------

    def _kill_leader(self, spec: FaultSpec) -> Fault:
        info = self._find(lambda: self._leader(spec.partition), "a leader")
        return self._kill(spec, info["pid"], f"{self.topic}-{spec.partition} leader {self._where(info)}")

    def _kill_follower(self, spec: FaultSpec) -> Fault:
        def followers():
            found = [i for i in self.replicas(spec.partition) if i["role"] == "follower"]
            return sorted(found, key=lambda i: i["replica_id"]) or None

        found = self._find(followers, "a follower")
        info = found[spec.pick % len(found)]
        return self._kill(spec, info["pid"], f"{self.topic}-{spec.partition} follower {self._where(info)}")

    def _kill_topic_manager(self, spec: FaultSpec) -> Fault:
        def pid():
            manager = ray.get_actor(TOPIC_MANAGER_NAME, namespace=self.namespace)
            try:
                return ray.get(manager.ping.remote(), timeout=CALL_TIMEOUT_S)["pid"]
            except AttributeError:  # no ping(): the one TopicManager process of this cluster's head
                [found] = self.cluster.head_actor_pids("TopicManager")
                return found

        return self._kill(spec, self._find(pid, "the TopicManager"), "TopicManager")

    def _kill_coordinator(self, spec: FaultSpec) -> Fault:
        def pid():
            coordinator = ray.get_actor(group_actor_name(self.group), namespace=self.namespace)
            try:
                return ray.get(coordinator.pid.remote(), timeout=CALL_TIMEOUT_S)
            except AttributeError:  # no pid(): the run has one group, so one coordinator process
                [found] = self.cluster.head_actor_pids("GroupCoordinator")
                return found

        return self._kill(spec, self._find(pid, "the group coordinator"), f"coordinator of {self.group}")

    def _kill_consumer(self, spec: FaultSpec) -> Fault:
        index = spec.pick % len(self.members)
        pid = self._find(
            lambda: ray.get(self.members[index].pid.remote(), timeout=CALL_TIMEOUT_S), "a member"
        )
        return self._kill(spec, pid, f"group member {index}")

    def _kill(self, spec: FaultSpec, pid: int, target: str) -> Fault:
        at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        return Fault(spec.kind, target, at, at, f"pid {pid}")

    # -- nodes ------------------------------------------------------------------------------

    def _node_crash(self, spec: FaultSpec) -> Fault:
        label = self.cluster.labels[spec.pick % len(self.cluster.labels)]
        start = time.monotonic()
        self.cluster.crash(label)
        time.sleep(spec.duration_s)
        self.cluster.add(label)
        return Fault(spec.kind, f"node {label}", start, time.monotonic(), "removed without grace, back")

    def _node_freeze(self, spec: FaultSpec) -> Fault:
        label = self.cluster.labels[spec.pick % len(self.cluster.labels)]
        start = time.monotonic()
        frozen = self.cluster.freeze(label)
        try:
            time.sleep(spec.duration_s)
        finally:
            self.cluster.thaw(frozen)
        return Fault(
            spec.kind, f"node {label}", start, time.monotonic(), f"{len(frozen)} processes SIGSTOPped"
        )

    # -- disks ------------------------------------------------------------------------------

    def _disk_full(self, spec: FaultSpec) -> Fault:
        info = self._pick_replica(spec)
        control = self.cluster.faults_dir / "write"
        start = time.monotonic()
        control.write_text(f"{info['directory']} ENOSPC\n")
        try:
            time.sleep(spec.duration_s)
        finally:
            control.unlink(missing_ok=True)
        target = f"{self.topic}-{spec.partition} {info['role']} {self._where(info)}"
        return Fault(spec.kind, target, start, time.monotonic(), "ENOSPC on every write")

    def _power_loss(self, spec: FaultSpec) -> Fault:
        from raykafka.storage import faults

        info = self._pick_replica(spec)
        directory = Path(info["directory"])
        lock = os.open(directory / ".lock", os.O_RDWR)
        start = time.monotonic()
        try:
            os.kill(info["pid"], signal.SIGKILL)
            _take_lock(lock)  # the killed process let it go; its restart waits for us
            cut = faults.simulate_power_loss_from_journal(self.cluster.faults_dir, directory)
        finally:
            os.close(lock)
        target = f"{self.topic}-{spec.partition} {info['role']} {self._where(info)}"
        detail = f"pid {info['pid']}; cut {cut.bytes_cut} bytes, undid {cut.entries_undone} entries"
        return Fault(spec.kind, target, start, time.monotonic(), detail)

    # -- targets ----------------------------------------------------------------------------

    def replicas(self, partition: int) -> list[dict]:
        """``info()`` of every replica of ``partition`` that answers now."""
        prefix = f"raykafka.partition.{self.topic}.{partition}."
        refs = []
        for entry in ray.util.list_named_actors(all_namespaces=True):
            if entry["namespace"] == self.namespace and entry["name"].startswith(prefix):
                try:
                    refs.append(ray.get_actor(entry["name"], namespace=self.namespace).info.remote())
                except ValueError:
                    continue  # gone since it was listed
        infos = []
        for ref in refs:
            try:
                infos.append(ray.get(ref, timeout=CALL_TIMEOUT_S))
            except Exception:
                continue
        return infos

    def _leader(self, partition: int) -> dict | None:
        leaders = [i for i in self.replicas(partition) if i["role"] == "leader"]
        return max(leaders, key=lambda i: i["epoch"]) if leaders else None

    def _pick_replica(self, spec: FaultSpec) -> dict:
        def candidates():
            found = [i for i in self.replicas(spec.partition) if i["role"] in ("leader", "follower")]
            return sorted(found, key=lambda i: i["replica_id"]) if len(found) >= 2 else None

        found = self._find(candidates, "the replicas")
        return found[spec.pick % len(found)]

    def _where(self, info: dict) -> str:
        label = self.cluster.label_of(info["node_id"]) or info["node_id"][:8]
        return f"on {label} (epoch {info['epoch']})"

    @staticmethod
    def _find(look, what: str):
        deadline = time.monotonic() + FIND_TIMEOUT_S
        while True:
            try:
                found = look()
            except Exception:
                found = None
            if found:
                return found
            if time.monotonic() > deadline:
                raise NoTarget(f"found no {what} within {FIND_TIMEOUT_S:.0f} s")
            time.sleep(0.5)


def _take_lock(fd: int) -> None:
    deadline = time.monotonic() + LOCK_TIMEOUT_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise TimeoutError("the killed replica's process kept its directory lock") from None
            time.sleep(0.001)
