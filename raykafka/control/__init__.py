"""The control core: topic metadata as typed values, and every control decision as a pure function.

No Ray and no I/O here (a test checks the sources): the TopicManager is the shell that
feeds the core what it observes and carries out the actions it returns -- the style of
etcd's raft package and of ``raykafka.groups.membership``.

* ``metadata.py`` -- ``Replica``, ``PartitionState``, ``TopicState``, ``ClusterMetadata`` (frozen).
* ``topics_json.py`` -- to and from ``metadata/topics.json``'s dict shape, losslessly.
* ``actions.py`` -- the actions and ``Decision`` (new metadata + actions; persist first).
* ``nodes.py`` -- live nodes and their storage identities.
* ``placement.py`` -- where a new partition's replicas go.
* ``topics.py`` -- create, grow, configure and delete topics.
* ``election.py`` -- who leads next, under which epoch.
* ``isr_change.py`` -- a leader's ``alter_isr``, fenced by its epoch.
* ``reassignment.py`` -- add, wait in sync, drop.
* ``replacement.py`` -- replicas of lost nodes onto live nodes with the same disk.
* ``observations.py`` -- what replicas report, per process; ``liveness.py`` -- which processes are down.
* ``health.py`` -- whether a partition can take a write.
* ``reconcile.py`` -- ``Reconciler``: repair every difference between metadata and reports.
"""

from raykafka.control.actions import (
    Action,
    BecomeFollower,
    BecomeLeader,
    CreateReplica,
    Decision,
    DestroyReplica,
    Persist,
    StopReplica,
    UpdateConfig,
)
from raykafka.control.health import Health, partition_health
from raykafka.control.isr_change import alter_isr
from raykafka.control.liveness import FailureDetector
from raykafka.control.metadata import ClusterMetadata, PartitionState, Replica, TopicState
from raykafka.control.nodes import Node, live_nodes
from raykafka.control.observations import (
    DOWN,
    GONE,
    Observation,
    ProcessReport,
    ReplicaReport,
    Unreachable,
    replica_observations,
)
from raykafka.control.placement import place
from raykafka.control.reassignment import Reassignment, finish_reassignment, start_reassignment
from raykafka.control.reconcile import Reconciler
from raykafka.control.replacement import replace_lost_replicas
from raykafka.control.topics import (
    DeletionPending,
    alter_topic_config,
    create_partitions,
    create_topic,
    delete_topic,
    lookup,
)
from raykafka.control.topics_json import from_topics_json, to_topics_json

__all__ = [
    "DOWN",
    "GONE",
    "Action",
    "BecomeFollower",
    "BecomeLeader",
    "ClusterMetadata",
    "CreateReplica",
    "Decision",
    "DeletionPending",
    "DestroyReplica",
    "FailureDetector",
    "Health",
    "Node",
    "Observation",
    "PartitionState",
    "Persist",
    "ProcessReport",
    "Reassignment",
    "Reconciler",
    "Replica",
    "ReplicaReport",
    "StopReplica",
    "TopicState",
    "Unreachable",
    "UpdateConfig",
    "alter_isr",
    "alter_topic_config",
    "create_partitions",
    "create_topic",
    "delete_topic",
    "finish_reassignment",
    "from_topics_json",
    "live_nodes",
    "lookup",
    "partition_health",
    "place",
    "replace_lost_replicas",
    "replica_observations",
    "start_reassignment",
    "to_topics_json",
]
