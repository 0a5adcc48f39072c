"""``raykafka bench``: hands over to ``raykafka.bench.cli_main`` with the global --address/--namespace."""

from __future__ import annotations

import importlib

import click

from raykafka.cli.context import CliError


@click.command(short_help="Throughput, latency, group and replication benchmark.")
@click.option("--quick", is_flag=True, help="A short run of every area (< 2 minutes on an idle machine).")
@click.pass_context
def bench(ctx: click.Context, quick: bool) -> int:
    """Measure produce/consume throughput (as ratios to a no-op Ray actor), latency, restart,
    consumer-group rebalances and replication. Progress on stderr, tables on stdout.

    Single node and groups run on the Ray of --address (topics in --namespace, deleted at the
    end); replication always starts its own multi-node Ray on this machine.
    """
    try:
        module = importlib.import_module("raykafka.bench")
    except ModuleNotFoundError as exc:
        if exc.name not in ("raykafka.bench", "raykafka"):
            raise
        raise CliError(
            "the benchmark is not part of this installation (raykafka.bench is missing)", exit_code=2
        ) from None
    result = module.cli_main(quick=quick, address=ctx.obj.address, namespace=ctx.obj.namespace)
    return result if isinstance(result, int) else 0
