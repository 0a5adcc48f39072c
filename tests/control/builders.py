"""Small builders for control-core tests: nodes, partitions and metadata in one line each."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable

from raykafka.control import ClusterMetadata, Node, PartitionState, Replica, ReplicaReport, TopicState


def nodes(*specs: str, labelled: bool = True) -> dict[str, Node]:
    """``nodes("n1", "n2:disk-a")``: node ids, each with its storage id (default: ``disk-<id>``)."""
    out = {}
    for spec in specs:
        node_id, _, storage = spec.partition(":")
        out[node_id] = Node(node_id, storage or f"disk-{node_id}", labelled)
    return out


def partition(
    number: int = 0,
    placement: Iterable[tuple[str, str]] = (("a", "n1"), ("b", "n2"), ("c", "n3")),
    *,
    leader: str | None = "a",
    epoch: int = 0,
    isr: Iterable[str] | None = None,
    storage: Callable[[str], str] = lambda node: f"disk-{node}",
) -> PartitionState:
    """Replicas ``(replica_id, node_id)`` on ``disk-<node>``; the ISR defaults to every replica."""
    replicas = tuple(Replica(r, n, storage(n)) for r, n in placement)
    return PartitionState(
        number, replicas, leader, epoch, tuple(isr) if isr is not None else tuple(r for r, _ in placement)
    )


def topic(name: str = "t", *parts: PartitionState, config=None, deleting: bool = False) -> TopicState:
    parts = parts or (partition(),)
    rf = max(len(p.replicas) for p in parts)
    return TopicState(name, "f" * 32, 1_700_000_000_000, config or {}, rf, parts, deleting)


def cluster(*topics: TopicState) -> ClusterMetadata:
    return ClusterMetadata({t.name: t for t in topics})


def ids(prefix: str = "r") -> Callable[[], str]:
    """Deterministic replica ids: r0, r1, ..."""
    counter = itertools.count()
    return lambda: f"{prefix}{next(counter)}"


def leader(epoch: int, **kw) -> ReplicaReport:
    return ReplicaReport("leader", epoch, **kw)


def follower(epoch: int, **kw) -> ReplicaReport:
    return ReplicaReport("follower", epoch, **kw)


def unknown(epoch: int = -1, **kw) -> ReplicaReport:
    return ReplicaReport("unknown", epoch, **kw)
