"""``raykafka bench``: hands over to ``raykafka.bench.cli_main(quick)`` when that module exists."""

from __future__ import annotations

import importlib

import click

from raykafka.cli.context import CliError


@click.command(short_help="Throughput and latency benchmark.")
@click.option("--quick", is_flag=True, help="A short run (seconds, not minutes).")
def bench(quick: bool) -> int:
    """Measure produce/consume throughput and latency (needs raykafka.bench)."""
    try:
        module = importlib.import_module("raykafka.bench")
    except ModuleNotFoundError as exc:
        if exc.name not in ("raykafka.bench", "raykafka"):
            raise
        raise CliError(
            "the benchmark is not part of this installation (raykafka.bench is missing)", exit_code=2
        ) from None
    result = module.cli_main(quick=quick)
    return result if isinstance(result, int) else 0
