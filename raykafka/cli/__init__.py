"""The ``raykafka`` command line: topics, produce, consume, groups, status, bench.

``main`` is the console script. Global options come before the command::

    raykafka --address HOST:PORT --namespace NS topics list

Exit status: 0 success; 1 a raykafka error or Ray unreachable (one line
``error: <message>`` on stderr, no traceback); 2 a usage error (also one
line); 130 interrupted (Ctrl-C) -- except ``consume``, which treats Ctrl-C as
the normal way to stop: it commits (with ``--group``) and exits 0.
``RAYKAFKA_DEBUG=1`` shows tracebacks and Ray's startup output. docs/CLI.md
has the whole reference.

Nothing here imports Ray at module level: ``prepare_environment`` must run first
(see ``raykafka.cli.context``), and ``--help`` should not pay for it.
"""

from __future__ import annotations

import sys

import click

from raykafka.cli.context import CliContext, CliError, prepare_environment
from raykafka.cli.output import debug_enabled, error_line, silence_stdout

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

#: Exit statuses (also in docs/CLI.md).
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


@click.group(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--address",
    envvar="RAY_ADDRESS",
    default=None,
    metavar="HOST:PORT",
    help="Ray cluster to join (the head's GCS address). Default: $RAY_ADDRESS, else the last "
    "`ray start` on this machine, else a local Ray started for this command.",
)
@click.option(
    "--namespace",
    envvar="RAYKAFKA_NAMESPACE",
    default="raykafka",
    show_default=True,
    help="Ray namespace of the topics and groups (also $RAYKAFKA_NAMESPACE).",
)
@click.version_option(package_name="raykafka", prog_name="raykafka")
@click.pass_context
def cli(ctx: click.Context, address: str | None, namespace: str) -> None:
    """raykafka: Kafka's model on Ray -- manage topics and groups, produce and consume from a shell.

    Token auth: RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH are passed to Ray; when either is set
    and RAY_AUTH_MODE is not, RAY_AUTH_MODE=token is set for you.
    """
    if not namespace:
        raise click.BadParameter("must not be empty", param_hint="--namespace")
    ctx.obj = CliContext(address=address or None, namespace=namespace)


def _register() -> None:
    from raykafka.cli import bench, consume, groups, produce, status, topics

    cli.add_command(topics.topics)
    cli.add_command(produce.produce)
    cli.add_command(consume.consume)
    cli.add_command(groups.groups)
    cli.add_command(status.status)
    cli.add_command(bench.bench)


_register()


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns (and exits with) the status."""
    prepare_environment()
    code = run(argv)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()
    sys.exit(code)


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and map every failure to (one stderr line, exit status)."""
    from raykafka.errors import RayKafkaError

    try:
        # Not cli.main(): it turns a broken pipe into exit 1 and prints its own error format.
        args = sys.argv[1:] if argv is None else list(argv)
        with cli.make_context("raykafka", args) as ctx:
            result = cli.invoke(ctx)
        return result if isinstance(result, int) else EXIT_OK
    except click.exceptions.Exit as exc:  # --help, --version
        return exc.exit_code
    except click.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `raykafka`, `raykafka topics`: help on stderr
            exc.show()
            return EXIT_USAGE
        hint = ""
        if exc.ctx is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"
        error_line(exc.format_message() + hint)
        return EXIT_USAGE
    except click.Abort:
        return EXIT_INTERRUPTED
    except (EOFError, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    except click.ClickException as exc:
        error_line(exc.format_message())
        return exc.exit_code
    except CliError as exc:
        _maybe_traceback()
        error_line(str(exc))
        return exc.exit_code
    except BrokenPipeError:
        silence_stdout()
        return EXIT_OK
    except (RayKafkaError, TypeError, ValueError) as exc:
        _maybe_traceback()
        error_line(str(exc) or type(exc).__name__)
        return EXIT_ERROR
    except Exception as exc:  # Ray's own errors (actor died, timeouts...): one line, no traceback
        _maybe_traceback()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        error_line(f"{type(exc).__name__}: {first}" if first else type(exc).__name__)
        return EXIT_ERROR


def _maybe_traceback() -> None:
    if debug_enabled():
        import traceback

        traceback.print_exc()


__all__ = ["CliContext", "CliError", "cli", "main", "run"]
