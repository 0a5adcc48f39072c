"""Plain value types of the public API: partitions, send results, descriptions.

Frozen dataclasses so they pickle across Ray and hash where Kafka's do. The
descriptions (``TopicDescription``, ``PartitionDescription``, ``GroupDescription``,
``MemberDescription``) print as one short line -- node ids cut to their first
``SHORT_NODE_ID_CHARS`` hex digits, long lists cut -- and show as HTML tables in a
notebook (``_repr_html_``); their fields are whole. The CLI's ``--json`` prints their
fields (``raykafka/cli/output.py``; ``TopicPartition`` keys become
``"topic:partition"`` strings).
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass, field

#: Ray node ids are 56 hex digits; reprs, notebooks and CLI tables show this many.
SHORT_NODE_ID_CHARS = 12
#: A repr lists at most this many items (offsets, nodes, partitions), then says how many more.
REPR_MAX_ITEMS = 8


def short_node_id(node_id: str | None) -> str:
    """A Ray node id as people see it: its first 12 hex digits (``-`` for none)."""
    if not node_id:
        return "-"
    return node_id[:SHORT_NODE_ID_CHARS]


@dataclass(frozen=True)
class TopicPartition:
    """A partition of a topic, optionally with an offset (for assign/seek/commit).

    Equality and hash use ``(topic, partition)`` only, as in kafka-python, so a
    TopicPartition with an offset finds its entry in a dict keyed without one.
    """

    topic: str
    partition: int
    offset: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.topic, str):
            raise TypeError(f"TopicPartition.topic must be a str, got {type(self.topic).__name__}")
        if isinstance(self.partition, bool) or not isinstance(self.partition, int):
            raise TypeError(f"TopicPartition.partition must be an int, got {type(self.partition).__name__}")
        if self.partition < 0:
            raise ValueError(f"partition must be >= 0, got {self.partition}")
        if self.offset is not None:
            if isinstance(self.offset, bool) or not isinstance(self.offset, int):
                raise TypeError(f"TopicPartition.offset must be an int, got {type(self.offset).__name__}")
            if self.offset < 0:
                raise ValueError(f"offset must be >= 0, got {self.offset}")


@dataclass(frozen=True)
class RecordMetadata:
    """Where a sent message landed."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int


@dataclass(frozen=True, repr=False)
class PartitionDescription:
    """One partition's placement and range. ``log_start_offset``/``high_watermark`` are -1
    and ``offline`` is True when no replica could answer."""

    partition: int
    leader_node_id: str | None
    replica_node_ids: list[str]
    log_start_offset: int
    high_watermark: int
    isr_node_ids: list[str] = field(default_factory=list)
    leader_epoch: int = 0
    offline: bool = False

    def __repr__(self) -> str:
        status = _status(self)
        parts = [str(self.partition)]
        if status == "offline":
            parts.append("offline")
        parts.append(f"leader={short_node_id(self.leader_node_id)}")
        parts.append(f"replicas={_short_list(short_node_id(n) for n in self.replica_node_ids)}")
        if status != "offline":
            if status == "under-replicated":
                parts.append(f"isr={_short_list(short_node_id(n) for n in self.isr_node_ids)}")
            parts.append(f"log_start={self.log_start_offset}")
            parts.append(f"hw={self.high_watermark}")
        parts.append(f"epoch={self.leader_epoch}")
        return f"PartitionDescription({', '.join(parts)})"

    def _repr_html_(self) -> str:
        return _partitions_html([self])


@dataclass(frozen=True, repr=False)
class TopicDescription:
    name: str
    partitions: list[PartitionDescription]
    config: dict[str, str]

    def __repr__(self) -> str:
        n = len(self.partitions)
        parts = [repr(self.name), f"{n} partition{'s' if n != 1 else ''}"]
        replication = max((len(p.replica_node_ids) for p in self.partitions), default=0)
        parts.append(f"replication {replication}")
        leaders = list(dict.fromkeys(p.leader_node_id for p in self.partitions if p.leader_node_id))
        if leaders:
            names = _short_list((short_node_id(x) for x in leaders), limit=4)
            parts.append(f"leaders on {len(leaders)} node{'s' if len(leaders) != 1 else ''} {names}")
        parts.append(
            "hw="
            + _short_list("-" if _status(p) == "offline" else str(p.high_watermark) for p in self.partitions)
        )
        for state in ("offline", "under-replicated"):
            count = sum(_status(p) == state for p in self.partitions)
            if count:
                parts.append(f"{count} {state}")
        return f"TopicDescription({', '.join(parts)})"

    def _repr_html_(self) -> str:
        n = len(self.partitions)
        replication = max((len(p.replica_node_ids) for p in self.partitions), default=0)
        head = (
            f"<p><b>Topic</b> <code>{_h(self.name)}</code>: {n} partition{'s' if n != 1 else ''}, "
            f"replication factor {replication}</p>"
        )
        config = "".join(
            f"<tr><td>{_h(k)}</td><td>{_h(self.config[k])}</td></tr>" for k in sorted(self.config)
        )
        keys = len(self.config)
        details = (
            f"<details><summary>config ({keys} key{'s' if keys != 1 else ''})</summary>"
            f"<table><thead><tr><th>key</th><th>value</th></tr></thead><tbody>{config}</tbody></table>"
            "</details>"
        )
        return f"<div>{head}{_partitions_html(self.partitions)}{details}</div>"


@dataclass(frozen=True, repr=False)
class MemberDescription:
    member_id: str
    node_id: str | None
    assignment: list[TopicPartition]

    def __repr__(self) -> str:
        return (
            f"MemberDescription({self.member_id!r}, node={short_node_id(self.node_id)}, "
            f"assignment={_short_list(_tp(tp) for tp in self.assignment)})"
        )

    def _repr_html_(self) -> str:
        return _members_html([self])


@dataclass(frozen=True, repr=False)
class GroupDescription:
    group_id: str
    state: str
    generation: int
    members: list[MemberDescription]
    committed: dict[TopicPartition, int]
    lag: dict[TopicPartition, int]

    def __repr__(self) -> str:
        m = len(self.members)
        parts = [
            repr(self.group_id),
            self.state,
            f"generation {self.generation}",
            f"{m} member{'s' if m != 1 else ''}",
            f"lag {sum(self.lag.values())} on {len(self.lag)} partition{'s' if len(self.lag) != 1 else ''}",
        ]
        if self.lag:
            parts[-1] += " " + _short_list(f"{_tp(tp)}={n}" for tp, n in _sorted_items(self.lag))
        return f"GroupDescription({', '.join(parts)})"

    def _repr_html_(self) -> str:
        m = len(self.members)
        head = (
            f"<p><b>Group</b> <code>{_h(self.group_id)}</code>: {_h(self.state)}, generation "
            f"{self.generation}, {m} member{'s' if m != 1 else ''}, total lag {sum(self.lag.values())}</p>"
        )
        owner = {(tp.topic, tp.partition): mem.member_id for mem in self.members for tp in mem.assignment}
        committed = {(tp.topic, tp.partition): n for tp, n in self.committed.items()}
        lag = {(tp.topic, tp.partition): n for tp, n in self.lag.items()}
        keys = sorted(set(owner) | set(committed) | set(lag))
        rows = [
            [
                _h(topic),
                str(partition),
                _num(committed.get((topic, partition))),
                _num(lag.get((topic, partition))),
                _h(owner.get((topic, partition), "-")),
            ]
            for topic, partition in keys
        ]
        table = _table(["topic", "partition", "committed", "lag", "member"], rows, numeric={1, 2, 3})
        members = _members_html(self.members) if self.members else ""
        return f"<div>{head}{table}{members}</div>"


# -- helpers of the reprs ------------------------------------------------------------------------


def _status(p: PartitionDescription) -> str:
    """``offline`` (no replica answered: offsets -1), ``under-replicated`` (the ISR is smaller
    than the replica set) or ``online`` -- as the CLI's STATUS column."""
    if p.offline or p.high_watermark < 0 or p.log_start_offset < 0:
        return "offline"
    if len(p.isr_node_ids) < len(p.replica_node_ids):
        return "under-replicated"
    return "online"


def _short_list(items: Iterable[str], limit: int = REPR_MAX_ITEMS) -> str:
    """``[a, b, c]``, or ``[a, b, ... +5 more]`` past ``limit`` items."""
    items = list(items)
    if len(items) > limit:
        return "[" + ", ".join(items[:limit]) + f", ... +{len(items) - limit} more]"
    return "[" + ", ".join(items) + "]"


def _tp(tp: TopicPartition) -> str:
    return f"{tp.topic}:{tp.partition}"


def _sorted_items(by_partition: dict[TopicPartition, int]) -> list[tuple[TopicPartition, int]]:
    return sorted(by_partition.items(), key=lambda item: (item[0].topic, item[0].partition))


def _h(text: object) -> str:
    return html.escape(str(text))


def _num(value: int | None) -> str:
    return "-" if value is None else str(value)


def _node_html(node_id: str | None) -> str:
    """A short node id; the whole id shows on hover."""
    if not node_id:
        return "-"
    return f'<code title="{_h(node_id)}">{_h(short_node_id(node_id))}</code>'


def _table(columns: list[str], rows: list[list[str]], numeric: set[int]) -> str:
    """An HTML table of already-escaped cells; ``numeric`` columns are right-aligned."""

    def cell(tag: str, i: int, text: str) -> str:
        align = ' style="text-align: right"' if i in numeric else ' style="text-align: left"'
        return f"<{tag}{align}>{text}</{tag}>"

    head = "".join(cell("th", i, _h(c)) for i, c in enumerate(columns))
    body = "".join("<tr>" + "".join(cell("td", i, c) for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _partitions_html(partitions: Iterable[PartitionDescription]) -> str:
    rows = []
    for p in partitions:
        offline = _status(p) == "offline"
        rows.append(
            [
                str(p.partition),
                _node_html(p.leader_node_id),
                ", ".join(_node_html(n) for n in p.replica_node_ids) or "-",
                ", ".join(_node_html(n) for n in p.isr_node_ids) or "-",
                "-" if offline else str(p.log_start_offset),
                "-" if offline else str(p.high_watermark),
                "-" if offline else str(p.high_watermark - p.log_start_offset),
                str(p.leader_epoch),
                _status(p),
            ]
        )
    columns = [
        "partition",
        "leader",
        "replicas",
        "isr",
        "log start",
        "high watermark",
        "messages",
        "epoch",
        "status",
    ]
    return _table(columns, rows, numeric={0, 4, 5, 6, 7})


def _members_html(members: Iterable[MemberDescription]) -> str:
    rows = [
        [_h(m.member_id), _node_html(m.node_id), _h(", ".join(_tp(tp) for tp in m.assignment) or "-")]
        for m in members
    ]
    return _table(["member", "node", "partitions"], rows, numeric=set())
