"""The live Ray nodes as the control core sees them: an id and the identity of the node's disk.

A node's *storage identity* is its ``raykafka-storage`` label, else its IP address: two nodes
with the same one see the same ``data_dir`` (a node restarted, or several Ray nodes on one
machine), so a replica can move between them without copying data. When any live node carries
the label, only labelled nodes receive new replicas (the operator chose the brokers).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: The node label that names a node's disk; nodes with the same value see the same data_dir.
STORAGE_LABEL = "raykafka-storage"


@dataclass(frozen=True)
class Node:
    node_id: str
    storage_id: str
    labelled: bool = False  # carries STORAGE_LABEL

    @classmethod
    def from_ray(cls, entry: Mapping[str, Any]) -> Node:
        """From one entry of ``ray.nodes()``."""
        label = (entry.get("Labels") or {}).get(STORAGE_LABEL)
        return cls(entry["NodeID"], label or entry["NodeManagerAddress"], bool(label))


def live_nodes(ray_nodes: Iterable[Mapping[str, Any]]) -> dict[str, Node]:
    """The alive entries of ``ray.nodes()``, by node id."""
    return {n["NodeID"]: Node.from_ray(n) for n in ray_nodes if n.get("Alive")}


def broker_nodes(nodes: Mapping[str, Node]) -> dict[str, Node]:
    """Nodes new replicas may go to: the labelled ones when any node is labelled, else all."""
    labelled = {n: node for n, node in nodes.items() if node.labelled}
    return labelled or dict(nodes)
