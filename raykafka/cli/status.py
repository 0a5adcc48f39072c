"""``raykafka status``: Ray nodes, topics with their partitions, offline partitions, groups."""

from __future__ import annotations

import click
from rich.markup import escape

from raykafka.actors.actor_logs import format_event_time
from raykafka.cli import output
from raykafka.cli.groups import describe_all as describe_groups
from raykafka.cli.groups import groups_table
from raykafka.cli.topics import describe_all as describe_topics
from raykafka.cli.topics import is_offline, partition_table


def ray_nodes() -> list[dict]:
    """Every node Ray knows, alive or dead: ``{node_id, alive, address, is_head}``."""
    import ray

    nodes = []
    for n in ray.nodes():
        nodes.append(
            {
                "node_id": n.get("NodeID"),
                "alive": bool(n.get("Alive")),
                "address": f"{n.get('NodeManagerAddress')}:{n.get('NodeManagerPort')}",
                "is_head": "node:__internal_head__" in (n.get("Resources") or {}),
            }
        )
    return sorted(nodes, key=lambda n: (not n["is_head"], not n["alive"], n["node_id"] or ""))


#: How many of the TopicManager's recent internal events ``status`` shows.
STATUS_EVENTS = 10


def recent_events(limit: int = STATUS_EVENTS) -> list[dict]:
    """The TopicManager's newest internal events (elections, re-created replicas, outages):
    they go to its log file and here, never to users' drivers."""
    from raykafka.api.connection import current_settings, topic_manager
    from raykafka.api.rpc import call

    return call(topic_manager(current_settings()).recent_events, limit, timeout_s=30, what="recent events")


def collect(admin) -> dict:
    """``{nodes, topics, offline_partitions, groups, events}``: what ``status`` shows (and
    ``--json`` prints)."""
    topics = describe_topics(admin, admin.list_topics())
    return {
        "nodes": ray_nodes(),
        "topics": topics,
        "offline_partitions": [
            f"{d.name}:{p.partition}" for d in topics for p in d.partitions if is_offline(p)
        ],
        "groups": describe_groups(admin, admin.list_groups()),
        "events": recent_events(),
    }


def view(state: dict, namespace: str):
    """The human view of ``collect``'s result: one rich renderable (nodes by short id)."""
    from rich.console import Group

    nodes, topics, offline, groups = (
        state["nodes"],
        state["topics"],
        state["offline_partitions"],
        state["groups"],
    )
    alive = sum(n["alive"] for n in nodes)
    parts: list = [f"Ray nodes: {alive} alive, {len(nodes) - alive} dead  (namespace: {escape(namespace)})"]
    t = output.table("NODE ID", "STATE", "ADDRESS", "ROLE")
    for n in nodes:
        t.add_row(
            output.short_id(n["node_id"]),
            "alive" if n["alive"] else "[red]dead[/red]",
            n["address"],
            "head" if n["is_head"] else "worker",
        )
    parts += [t, f"Topics: {len(topics)}"]
    if topics:
        parts.append(partition_table(*topics, with_topic=True))
    if offline:
        parts.append(f"[red]Offline partitions: {len(offline)}[/red]: " + ", ".join(offline))
    else:
        parts.append("Offline partitions: 0")
    parts.append(f"Groups: {len(groups)}")
    if groups:
        parts.append(groups_table(groups))
    events = state.get("events") or []
    if events:
        parts.append(f"Recent events (newest last; all in the TopicManager's log): {len(events)}")
        t = output.table("TIME", "LEVEL", "EVENT")
        for event in events:
            level = event["level"]
            shown = f"[red]{level}[/red]" if level in ("ERROR", "CRITICAL") else level
            t.add_row(format_event_time(event["time_ms"]), shown, escape(event["message"]))
        parts.append(t)
    return Group(*parts)


@click.command(short_help="Nodes, topics, offline partitions, groups.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print {nodes, topics, offline_partitions, groups, events} as JSON (see docs/CLI.md).",
)
@output.watch_options
@click.pass_context
def status(ctx, as_json: bool, watch: bool, interval: float | None) -> None:
    """Ray nodes, topics (partitions, leaders, offsets), offline partitions, groups and their lag,
    and the cluster's recent internal events (elections, re-created replicas, outages)."""
    interval = output.check_watch_options(watch, interval, as_json)
    ctx.obj.connect()
    from raykafka import Admin

    admin = Admin()
    namespace = ctx.obj.namespace
    if watch:
        output.watch(lambda: view(collect(admin), namespace), interval, title="raykafka status")
        return
    state = collect(admin)
    if as_json:
        output.print_json(state)
        return
    output.Printer().print(view(state, namespace))
