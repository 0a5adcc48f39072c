"""``raykafka topics create|list|describe|delete|alter``."""

from __future__ import annotations

import click
from rich.markup import escape

from raykafka.cli import output
from raykafka.cli.context import CliError

_JSON_HELP = "Print the API's description objects as JSON (see docs/CLI.md)."


def parse_configs(ctx, param, values: tuple[str, ...]) -> dict[str, str]:
    """``--config k=v`` (repeatable) -> ``{k: v}``; a value may itself contain ``=``."""
    configs: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE (e.g. retention.ms=60000)", ctx, param)
        configs[key] = value
    return configs


config_option = click.option(
    "--config",
    "configs",
    multiple=True,
    metavar="KEY=VALUE",
    callback=parse_configs,
    help="A topic config in Kafka's names, e.g. retention.ms=60000 (repeat for more).",
)


def check_topic(name: str, configs: dict[str, str] | None = None) -> None:
    """The API's own checks of a topic name and configs, before connecting: a bad name or config
    fails at once (status 1, InvalidTopicName / InvalidConfig) even when Ray is far or down."""
    from raykafka.topic_config import validate_topic_config, validate_topic_name

    validate_topic_name(name)
    if configs:
        validate_topic_config(configs)


def _admin(ctx: click.Context):
    ctx.obj.connect()
    from raykafka import Admin

    return Admin()


def is_offline(p) -> bool:
    """A partition no replica answered for (describe reports -1 offsets, or ``offline``)."""
    return bool(getattr(p, "offline", False)) or p.high_watermark < 0 or p.log_start_offset < 0


def message_count(description) -> int | None:
    """Messages currently retained (sum of high watermark - log start); None if a partition is offline."""
    if any(is_offline(p) for p in description.partitions):
        return None
    return sum(p.high_watermark - p.log_start_offset for p in description.partitions)


def replication_factor(description) -> int:
    return max((len(p.replica_node_ids) for p in description.partitions), default=0)


def describe_all(admin, names):
    """Descriptions of ``names``, skipping topics deleted since they were listed."""
    from raykafka.errors import UnknownTopic

    found = []
    for name in names:
        try:
            found.append(admin.describe_topic(name))
        except UnknownTopic:
            continue
    return found


@click.group()
def topics() -> None:
    """Create, list, describe, alter and delete topics."""


@topics.command("create", short_help="Create a topic.")
@click.argument("name")
@click.option("--partitions", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--replication-factor", type=click.IntRange(min=1), default=1, show_default=True)
@config_option
@click.pass_context
def create(ctx, name: str, partitions: int, replication_factor: int, configs: dict[str, str]) -> None:
    """Create topic NAME (1-249 chars of [a-zA-Z0-9._-])."""
    from raykafka.errors import TopicAlreadyExists

    check_topic(name, configs)
    admin = _admin(ctx)
    try:
        admin.create_topic(
            name, partitions=partitions, replication_factor=replication_factor, config=configs or None
        )
    except TopicAlreadyExists:  # the API's message names Admin methods; here the commands are meant
        raise CliError(
            f"topic {name!r} already exists; see it with `raykafka topics describe {name}`, "
            f"or run `raykafka topics delete {name}` first"
        ) from None
    click.echo(
        f"created topic {name} ({partitions} partition{'s' if partitions != 1 else ''}, "
        f"replication factor {replication_factor})"
    )


@topics.command("list", short_help="Topics, partitions, messages.")
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@click.pass_context
def list_(ctx, as_json: bool) -> None:
    """List topics with their partition count, replication factor and retained messages."""
    admin = _admin(ctx)
    descriptions = describe_all(admin, admin.list_topics())
    if as_json:
        output.print_json(descriptions)
        return
    t = output.table("TOPIC", "PARTITIONS", "REPLICATION", "MESSAGES")
    for d in descriptions:
        count = message_count(d)
        t.add_row(
            d.name,
            str(len(d.partitions)),
            str(replication_factor(d)),
            "offline" if count is None else str(count),
        )
    output.Printer().print(t)


@topics.command("describe", short_help="Partitions and config of a topic.")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@click.pass_context
def describe(ctx, name: str, as_json: bool) -> None:
    """Partitions (leader, replicas, offsets) and the effective config of topic NAME."""
    check_topic(name)
    admin = _admin(ctx)
    d = admin.describe_topic(name)
    if as_json:
        output.print_json(d)
        return
    console = output.Printer()
    console.print(
        f"Topic: {d.name}  partitions: {len(d.partitions)}  replication factor: {replication_factor(d)}"
    )
    console.print(partition_table(d, with_topic=False))
    cfg = output.table("CONFIG", "VALUE")
    for key in sorted(d.config):
        cfg.add_row(escape(key), escape(str(d.config[key])))
    console.print(cfg)


def partition_table(*descriptions, with_topic: bool):
    """Rows of partitions; STATUS is offline (no replica answers), under-replicated (ISR smaller
    than the replica set) or online."""
    columns = ["TOPIC"] if with_topic else []
    columns += ["PARTITION", "LEADER", "REPLICAS", "ISR", "LOG-START", "HIGH-WATERMARK", "MESSAGES", "STATUS"]
    t = output.table(*columns)
    for d in descriptions:
        for p in d.partitions:
            offline = is_offline(p)
            isr = getattr(p, "isr_node_ids", None)
            if isr is None:
                isr = p.replica_node_ids
            if offline:
                state = "[red]offline[/red]"
            elif len(isr) < len(p.replica_node_ids):
                state = "[yellow]under-replicated[/yellow]"
            else:
                state = "online"
            row = [d.name] if with_topic else []
            row += [
                str(p.partition),
                output.short_id(p.leader_node_id),
                ",".join(output.short_id(n) for n in p.replica_node_ids) or "-",
                ",".join(output.short_id(n) for n in isr) or "-",
                "-" if offline else str(p.log_start_offset),
                "-" if offline else str(p.high_watermark),
                "-" if offline else str(p.high_watermark - p.log_start_offset),
                state,
            ]
            t.add_row(*row)
    return t


@topics.command("delete", short_help="Delete a topic and its data.")
@click.argument("name")
@click.pass_context
def delete(ctx, name: str) -> None:
    """Delete topic NAME and its data on every node."""
    check_topic(name)
    _admin(ctx).delete_topic(name)
    click.echo(f"deleted topic {name}")


@topics.command("alter", short_help="Set topic config keys.")
@click.argument("name")
@config_option
@click.pass_context
def alter(ctx, name: str, configs: dict[str, str]) -> None:
    """Set config keys of topic NAME (other keys keep their values)."""
    if not configs:
        raise click.UsageError("give at least one --config KEY=VALUE", ctx)
    check_topic(name, configs)
    _admin(ctx).alter_topic_config(name, configs)
    click.echo(f"altered topic {name}: " + ", ".join(f"{k}={v}" for k, v in configs.items()))
