"""The chaos run's local multi-node Ray cluster: a head and labelled storage workers.

Each worker carries a ``raykafka-storage`` label (its "disk"); all share this machine, so a
node removed without grace and added back under the same label reopens the same replica
directories under a new Ray node id, as a rebooted broker would. The nodes inherit
``RAYKAFKA_TEST_FAULTS_DIR`` from this process, which arms raykafka's storage fault layer
(``raykafka/storage/faults.py``) in every actor: nothing is injected until a control file
under that directory asks for it.

Health checks as the project's multi-node tests set them (``tests/test_replication.py``): every
500 ms, a node given up after 4 failures, so a crashed node is declared dead in ~2 s while a
frozen one (each check waits out its timeout) looks hung, not dead, for ~40 s.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import psutil
import ray
from ray._private import ray_constants
from ray.cluster_utils import Cluster

STORAGE_LABEL = "raykafka-storage"
HEALTH_CHECKS = {"health_check_period_ms": 500, "health_check_failure_threshold": 4}
START_ATTEMPTS = 3


class ChaosCluster:
    """Head (2 CPUs: the control actors, the group members) + ``workers`` storage nodes."""

    def __init__(self, faults_dir: Path, workers: int = 3) -> None:
        self.faults_dir = faults_dir
        os.environ["RAYKAFKA_TEST_FAULTS_DIR"] = str(faults_dir)  # before any node starts
        self.nodes: dict[str, object] = {}
        for attempt in range(START_ATTEMPTS):
            try:
                self._start(workers)
                break
            except Exception:
                # Ray gives a node 30 s to register with the GCS; a busy 2-CPU machine can miss it.
                self._stop_what_started()
                if attempt == START_ATTEMPTS - 1:
                    raise
        ray.init(address=self.cluster.address, logging_level="ERROR", log_to_driver=False)
        self.head_node_id: str = ray.get_runtime_context().get_node_id()

    def _start(self, workers: int) -> None:
        self.cluster = None
        self.nodes = {}
        self.cluster = Cluster(
            initialize_head=True,
            # No dashboard: nothing here uses it, and it is the slowest part of a head's start.
            head_node_args={"num_cpus": 2, "include_dashboard": False, "_system_config": HEALTH_CHECKS},
        )
        for i in range(workers):
            self.nodes[f"disk-{i}"] = self.cluster.add_node(num_cpus=1, labels={STORAGE_LABEL: f"disk-{i}"})
        self.cluster.wait_for_nodes()

    def _stop_what_started(self) -> None:
        """After a failed start: shut the partial cluster down and kill what is left of it (this
        process's children: nothing else has started any yet)."""
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.shutdown()
        for child in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()

    @property
    def labels(self) -> list[str]:
        return sorted(self.nodes)

    def add(self, label: str) -> None:
        """Start a storage node under ``label`` (again: the same disk, a new Ray node id)."""
        self.nodes[label] = self.cluster.add_node(num_cpus=1, labels={STORAGE_LABEL: label})
        self.cluster.wait_for_nodes()

    def node_id(self, label: str) -> str:
        return self.nodes[label].node_id

    def label_of(self, node_id: str) -> str | None:
        return next((label for label, node in self.nodes.items() if node.node_id == node_id), None)

    def crash(self, label: str) -> None:
        """Remove the node without grace: its raylet and every worker process are killed."""
        node = self.nodes.pop(label)
        self.cluster.remove_node(node, allow_graceful=False)

    def freeze(self, label: str) -> list[psutil.Process]:
        """SIGSTOP the node's raylet, then every process it started; returns them for ``thaw``."""
        node = self.nodes[label]
        raylet = psutil.Process(node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid)
        raylet.suspend()  # first: it cannot start more processes while its children are stopped
        frozen = [raylet]
        for child in raylet.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                child.suspend()
                frozen.append(child)
        return frozen

    def head_actor_pids(self, class_name: str) -> list[int]:
        """Pids of the head node's worker processes running an actor of ``class_name`` (Ray titles
        them ``ray::<class>``); only this cluster's, as they descend from its head's raylet."""
        raylet = psutil.Process(
            self.cluster.head_node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
        )
        pids = []
        for child in raylet.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                title = child.cmdline()[0] if child.cmdline() else ""
                if title.split(".")[0].split(" ")[0] == f"ray::{class_name}":
                    pids.append(child.pid)
        return pids

    @staticmethod
    def thaw(frozen: list[psutil.Process]) -> None:
        for process in frozen:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.resume()

    def shutdown(self) -> None:
        with contextlib.suppress(Exception):
            ray.shutdown()
        self.cluster.shutdown()
        os.environ.pop("RAYKAFKA_TEST_FAULTS_DIR", None)
