"""``raykafka status``: Ray nodes, topics with their partitions, offline partitions, groups."""

from __future__ import annotations

import click

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


@click.command(short_help="Nodes, topics, offline partitions, groups.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print {nodes, topics, offline_partitions, groups} as JSON (see docs/CLI.md).",
)
@click.pass_context
def status(ctx, as_json: bool) -> None:
    """Ray nodes, topics (partitions, leaders, offsets), offline partitions, groups and their lag."""
    ctx.obj.connect()
    from raykafka import Admin

    admin = Admin()
    nodes = ray_nodes()
    topics = describe_topics(admin, admin.list_topics())
    offline = [f"{d.name}:{p.partition}" for d in topics for p in d.partitions if is_offline(p)]
    groups = describe_groups(admin, admin.list_groups())
    if as_json:
        output.print_json({"nodes": nodes, "topics": topics, "offline_partitions": offline, "groups": groups})
        return
    console = output.Printer()
    alive = sum(n["alive"] for n in nodes)
    console.print(f"Ray nodes: {alive} alive, {len(nodes) - alive} dead  (namespace: {ctx.obj.namespace})")
    t = output.table("NODE ID", "STATE", "ADDRESS", "ROLE")
    for n in nodes:
        t.add_row(
            n["node_id"] or "-",
            "alive" if n["alive"] else "[red]dead[/red]",
            n["address"],
            "head" if n["is_head"] else "worker",
        )
    console.print(t)
    console.print(f"Topics: {len(topics)}")
    if topics:
        console.print(partition_table(*topics, with_topic=True))
    if offline:
        console.print(f"[red]Offline partitions: {len(offline)}[/red]: " + ", ".join(offline))
    else:
        console.print("Offline partitions: 0")
    console.print(f"Groups: {len(groups)}")
    if groups:
        console.print(groups_table(groups))
