"""``raykafka groups list|describe|delete``."""

from __future__ import annotations

import click
from rich.markup import escape

from raykafka.cli import output

_JSON_HELP = "Print the API's GroupDescription objects as JSON (see docs/CLI.md)."


def _admin(ctx: click.Context):
    ctx.obj.connect()
    from raykafka import Admin

    return Admin()


def describe_all(admin, group_ids):
    """Descriptions of ``group_ids``, skipping groups deleted since they were listed."""
    from raykafka.errors import UnknownGroup

    found = []
    for group_id in group_ids:
        try:
            found.append(admin.describe_group(group_id))
        except UnknownGroup:
            continue
    return found


def total_lag(description) -> int:
    return sum(description.lag.values())


def groups_table(descriptions):
    t = output.table("GROUP", "STATE", "GENERATION", "MEMBERS", "TOTAL-LAG")
    for d in descriptions:
        t.add_row(escape(d.group_id), d.state, str(d.generation), str(len(d.members)), str(total_lag(d)))
    return t


@click.group()
def groups() -> None:
    """List, describe and delete consumer groups."""


@groups.command("list", short_help="Groups with state and total lag.")
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@click.pass_context
def list_(ctx, as_json: bool) -> None:
    """Groups with members or committed offsets, with state and total lag."""
    admin = _admin(ctx)
    descriptions = describe_all(admin, admin.list_groups())
    if as_json:
        output.print_json(descriptions)
        return
    output.Printer().print(groups_table(descriptions))


def describe_view(d):
    """The human view of a GroupDescription: a header line, a row per partition, a row per member."""
    from rich.console import Group

    parts: list = [
        f"Group: {escape(d.group_id)}  state: {d.state}  generation: {d.generation}  "
        f"members: {len(d.members)}  total lag: {total_lag(d)}"
    ]
    owner = {}
    for m in d.members:
        for tp in m.assignment:
            owner[(tp.topic, tp.partition)] = m.member_id
    partitions = sorted(
        set(owner) | {(tp.topic, tp.partition) for tp in d.committed}, key=lambda k: (k[0], k[1])
    )
    committed = {(tp.topic, tp.partition): o for tp, o in d.committed.items()}
    lag = {(tp.topic, tp.partition): o for tp, o in d.lag.items()}
    t = output.table("TOPIC", "PARTITION", "COMMITTED", "LAG", "MEMBER")
    for key in partitions:
        t.add_row(
            key[0],
            str(key[1]),
            str(committed[key]) if key in committed else "-",
            str(lag[key]) if key in lag else "-",
            escape(owner.get(key, "-")),
        )
    parts.append(t)
    if d.members:
        mt = output.table("MEMBER", "NODE", "PARTITIONS")
        for m in d.members:
            assigned = ",".join(f"{tp.topic}:{tp.partition}" for tp in m.assignment) or "-"
            mt.add_row(escape(m.member_id), output.short_id(m.node_id), assigned)
        parts.append(mt)
    return Group(*parts)


@groups.command("describe", short_help="Members, committed offsets, lag.")
@click.argument("group_id", metavar="GROUP")
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@output.watch_options
@click.pass_context
def describe(ctx, group_id: str, as_json: bool, watch: bool, interval: float | None) -> None:
    """Members, and per partition: committed offset, lag and the member reading it."""
    interval = output.check_watch_options(watch, interval, as_json)
    admin = _admin(ctx)
    if watch:
        output.watch(
            lambda: describe_view(admin.describe_group(group_id)),
            interval,
            title=f"raykafka groups describe {group_id}",
        )
        return
    d = admin.describe_group(group_id)
    if as_json:
        output.print_json(d)
        return
    output.Printer().print(describe_view(d))


@groups.command("delete", short_help="Delete a group's offsets.")
@click.argument("group_id", metavar="GROUP")
@click.pass_context
def delete(ctx, group_id: str) -> None:
    """Delete GROUP's committed offsets (refused while it has members)."""
    _admin(ctx).delete_group(group_id)
    click.echo(f"deleted group {group_id}")
