"""The control core under random faults: a hypothesis state machine over ``cluster_model``.

Each run creates a topic (2 partitions, replication factor 3, on 4 nodes with a disk each)
and then interleaves writes and replication with faults: nodes lost and back under a new id
with the same disk, replica processes restarted, dead for good or frozen, log directories
failing, actions and ``alter_isr`` requests lost (before or after they took effect, with or
without the sender learning it), persists failing (cleanly, or after the file was written),
the TopicManager restarted from its file, reassignments. Throughout:

* never two leaders in one epoch; never a leader outside the ISR; epochs only grow;
* the ISR a leader computes its high watermark from is never smaller than the recorded ISR;
* the TopicManager's memory equals its file (except right after a persist that failed once the
  file was written: nothing was acted on, and a restart reads the file);
* no acknowledged record (below any high watermark) is ever lost or changed.

Once faults stop, reconciliation converges: every partition with an in-sync replica that can
serve again has a leader reporting leadership at the recorded epoch, every replica that can
serve is back in the ISR, and reconciling once more yields no action.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from .cluster_model import FATES, Cluster

fates = st.lists(st.sampled_from(FATES), max_size=6)
storages = st.sampled_from(["s0", "s1", "s2", "s3"])
partitions = st.sampled_from([0, 1])
actors = st.integers(0, 20)


class ControlPlane(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.cluster = Cluster()
        self.cluster.settle(rounds=6)

    # -- the system at work --------------------------------------------------------------

    @rule(partition=partitions, records=st.integers(1, 3))
    def produce(self, partition, records):
        self.cluster.produce(partition, records)

    @rule(faults=fates)
    def replicate(self, faults):
        for partition in (0, 1):
            self.cluster.produce(partition, 1)  # clients keep writing
        self.cluster.fates = iter(faults)
        self.cluster.replicate()

    @rule(faults=fates)
    def reconcile(self, faults):
        self.cluster.fates = iter(faults)
        self.cluster.manager_round()

    @rule(partition=partitions, picks=st.lists(storages, min_size=3, max_size=3, unique=True), faults=fates)
    def reassign(self, partition, picks, faults):
        by_storage = {s: n for n, s in self.cluster.nodes.items()}
        if all(s in by_storage for s in picks):
            self.cluster.fates = iter(faults)
            self.cluster.reassign(partition, [by_storage[s] for s in picks])

    @rule(faults=fates)
    def finish_reassignments(self, faults):
        self.cluster.fates = iter(faults)
        self.cluster.finish_reassignments()

    # -- faults --------------------------------------------------------------------------

    @rule(storage=storages)
    def lose_node(self, storage):
        self.cluster.lose_node(storage)

    @rule(storage=storages)
    def return_node(self, storage):
        self.cluster.return_node(storage)

    @rule(index=actors)
    def restart_replica(self, index):
        actor = self.cluster.actor_at(index)
        if actor is not None:
            actor.start()  # Ray restarts the process: same handle, state from its disk

    @rule(index=actors)
    def kill_replica_for_good(self, index):
        actor = self.cluster.actor_at(index)
        if actor is not None:
            del self.cluster.actors[(actor.replica_id, actor.generation)]

    @rule(index=actors, frozen=st.booleans())
    def freeze_replica(self, index, frozen):
        actor = self.cluster.actor_at(index)
        if actor is not None:
            actor.frozen = frozen

    @rule(index=actors)
    def fail_log_directory(self, index):
        actor = self.cluster.actor_at(index)
        if actor is not None:
            actor.disk.failed.add(actor.replica_id)
            actor.depose()

    @rule(how=st.sampled_from(["clean", "written"]))
    def fail_next_persist(self, how):
        self.cluster.persist_fault = how

    @rule()
    def restart_manager(self):
        self.cluster.start_manager()

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def safe(self):
        self.cluster.check()

    def teardown(self):
        cluster = self.cluster
        cluster.heal()
        cluster.settle()
        cluster.assert_converged()


ControlPlane.TestCase.settings = settings(
    max_examples=200, stateful_step_count=50, deadline=None, suppress_health_check=list(HealthCheck)
)
TestControlPlane = ControlPlane.TestCase
