"""The description types print short (a notebook shows their repr) and render as HTML tables;
their fields, equality and the CLI's JSON keep whole node ids. No Ray."""

from __future__ import annotations

import dataclasses
from html.parser import HTMLParser

from raykafka.cli import output
from raykafka.types import (
    GroupDescription,
    MemberDescription,
    PartitionDescription,
    TopicDescription,
    TopicPartition,
)

A, B = "a1" * 28, "b2" * 28  # Ray node ids: 56 hex digits
A12, B12 = A[:12], B[:12]


def topic() -> TopicDescription:
    config = {f"key.{i}": "x" * 20 for i in range(15)}  # a real topic's config: ~15 keys
    return TopicDescription(
        "events",
        [
            PartitionDescription(0, A, [A, B], 0, 120, isr_node_ids=[A, B], leader_epoch=3),
            PartitionDescription(1, B, [B, A], 10, 95, isr_node_ids=[B]),
            PartitionDescription(2, A, [A, B], 0, 0, isr_node_ids=[A, B]),
            PartitionDescription(3, None, [B, A], -1, -1, isr_node_ids=[], offline=True),
        ],
        config,
    )


def group() -> GroupDescription:
    tps = [TopicPartition("events", p) for p in range(4)]
    members = [
        MemberDescription("readers-0123456789ab", A, tps[:2]),
        MemberDescription("readers-ba9876543210", B, tps[2:]),
    ]
    return GroupDescription("readers", "Stable", 7, members, {tp: 10 for tp in tps}, {tp: 5 for tp in tps})


class Tables(HTMLParser):
    """The rows (lists of cell texts) of each <tbody> in a piece of HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.in_body = False
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tbody":
            self.in_body = True
            self.tables.append([])
        elif tag == "tr" and self.in_body:
            self.tables[-1].append([])
        elif tag == "td" and self.in_body:
            self.cell = []

    def handle_endtag(self, tag):
        if tag == "tbody":
            self.in_body = False
        elif tag == "td" and self.cell is not None:
            self.tables[-1][-1].append("".join(self.cell))
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def tables(html: str) -> list[list[list[str]]]:
    parser = Tables()
    parser.feed(html)
    return parser.tables


def test_topic_repr_is_one_short_line_with_short_node_ids():
    d = topic()
    text = repr(d)
    assert len(text) < 300, text
    assert "\n" not in text
    assert text.startswith("TopicDescription('events', 4 partitions")
    assert A12 in text and B12 in text
    assert A not in text and B not in text
    assert "hw=[120, 95, 0, -]" in text
    assert "1 offline" in text and "1 under-replicated" in text
    assert str(d) == text  # print() shows the same
    for p in d.partitions:
        assert len(repr(p)) < 200 and A not in repr(p) and B not in repr(p)
    assert "offline" in repr(d.partitions[3]) and "isr=[" in repr(d.partitions[1])


def test_long_topics_and_groups_stay_short():
    many = TopicDescription(
        "wide", [PartitionDescription(p, A, [A], 0, p * 1000, isr_node_ids=[A]) for p in range(200)], {}
    )
    assert len(repr(many)) < 300, repr(many)
    assert "+192 more" in repr(many)
    tps = [TopicPartition("wide", p) for p in range(200)]
    big = GroupDescription(
        "g", "Stable", 1, [MemberDescription("g-m", A, tps)], dict.fromkeys(tps, 1), dict.fromkeys(tps, 0)
    )
    assert len(repr(big)) < 400, repr(big)
    assert len(repr(big.members[0])) < 200


def test_group_and_member_reprs():
    g = group()
    text = repr(g)
    assert len(text) < 300, text
    assert text.startswith(
        "GroupDescription('readers', Stable, generation 7, 2 members, lag 20 on 4 partitions"
    )
    assert A not in text
    member = repr(g.members[0])
    assert (
        member
        == "MemberDescription('readers-0123456789ab', node=a1a1a1a1a1a1, assignment=[events:0, events:1])"
    )
    assert "node=-" in repr(MemberDescription("m", None, []))


def test_topic_html_has_one_row_per_partition():
    d = topic()
    html = d._repr_html_()
    partitions, config = tables(html)
    assert [row[0] for row in partitions] == ["0", "1", "2", "3"]
    assert partitions[0][1:4] == [A12, f"{A12}, {B12}", f"{A12}, {B12}"]  # whole ids only in hover titles
    assert not any(A in cell or B in cell for row in partitions for cell in row)
    assert [row[-1] for row in partitions] == ["online", "under-replicated", "online", "offline"]
    assert partitions[3][4:7] == ["-", "-", "-"]
    assert len(config) == 15
    assert tables(d.partitions[1]._repr_html_()) == [[partitions[1]]]
    # names are escaped
    assert "<b>x</b>" not in TopicDescription("<b>x</b>", [], {})._repr_html_()


def test_group_html_has_a_row_per_partition_and_per_member():
    g = group()
    partitions, members = tables(g._repr_html_())
    assert partitions[0] == ["events", "0", "10", "5", "readers-0123456789ab"]
    assert len(partitions) == 4
    assert members == [
        ["readers-0123456789ab", A12, "events:0, events:1"],
        ["readers-ba9876543210", B12, "events:2, events:3"],
    ]
    assert tables(g.members[1]._repr_html_()) == [[members[1]]]


def test_fields_equality_and_json_keep_whole_node_ids():
    d, g = topic(), group()
    assert [f.name for f in dataclasses.fields(PartitionDescription)] == [
        "partition",
        "leader_node_id",
        "replica_node_ids",
        "log_start_offset",
        "high_watermark",
        "isr_node_ids",
        "leader_epoch",
        "offline",
    ]
    assert d == topic() and g == group() and d != dataclasses.replace(d, name="other")
    as_json = output.jsonable(d)
    assert as_json["partitions"][0]["leader_node_id"] == A
    assert as_json["partitions"][1]["replica_node_ids"] == [B, A]
    assert output.jsonable(g)["members"][1]["node_id"] == B
    assert output.short_id(A) == A12 and output.short_id(None) == "-"
