"""Output for the CLI: JSON shapes for scripts, rich tables for people, one-line errors.

JSON (``--json``) is the API's description dataclasses field by field, with one
change JSON needs: a dict keyed by ``TopicPartition`` (``GroupDescription.committed``
and ``.lag``) is keyed by the string ``"topic:partition"`` instead (``:`` cannot
occur in a topic name, so the key splits back unambiguously with
``key.rsplit(":", 1)``). A ``TopicPartition`` that is a value (a member's
``assignment``) becomes ``{"topic": ..., "partition": ..., "offset": ...}``.

Tables go to stdout through rich. When stdout is not a terminal (a pipe, a file,
a test) the console is made wide enough that no cell is wrapped or cut, and no
colour codes are written. Tables show Ray node ids cut to their first 12 hex
digits (``short_id``); JSON always has them whole.

``watch`` redraws a view (``status --watch``, ``groups describe G --watch``) every
``--interval`` seconds until Ctrl-C, which ends it with status 0: on a terminal in
place (rich ``Live``); in a pipe or file as one snapshot after another.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from raykafka.types import SHORT_NODE_ID_CHARS, short_node_id

#: Ray node ids are 56 hex digits; tables show this many (JSON always has them whole).
SHORT_ID_CHARS = SHORT_NODE_ID_CHARS
#: ``--interval`` of ``--watch`` unless given, in seconds.
WATCH_INTERVAL_S = 2.0


def tp_key(tp: Any) -> str:
    """``TopicPartition("t", 3)`` -> ``"t:3"``: how JSON keys a dict by partition."""
    return f"{tp.topic}:{tp.partition}"


def jsonable(obj: Any) -> Any:
    """The API's value types as plain JSON data (see the module docstring for the shape)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {_json_key(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [jsonable(v) for v in obj]
    if isinstance(obj, bytes):
        return obj.decode("utf-8", errors="replace")
    return obj


def _json_key(key: Any) -> str:
    if dataclasses.is_dataclass(key) and hasattr(key, "topic") and hasattr(key, "partition"):
        return tp_key(key)
    return key if isinstance(key, str) else str(key)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(jsonable(obj), indent=2) + "\n")
    sys.stdout.flush()


def stdout_console():
    """A rich Console on stdout; never wraps or truncates cells when stdout is not a terminal."""
    from rich.console import Console

    if sys.stdout.isatty():
        return Console(highlight=False)
    return Console(width=10_000, highlight=False, no_color=True, soft_wrap=True)


class Printer:
    """Prints renderables (tables, text with rich markup) on stdout; when stdout is not a
    terminal, without colour and without the trailing spaces rich pads table rows with."""

    def __init__(self) -> None:
        self.console = stdout_console()
        self.plain = not sys.stdout.isatty()

    def print(self, *renderables: Any) -> None:
        if not self.plain:
            self.console.print(*renderables)
            return
        with self.console.capture() as captured:
            self.console.print(*renderables)
        text = "\n".join(line.rstrip() for line in captured.get().splitlines())
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def table(*columns: str, title: str | None = None):
    """A plain, borderless table with a header row; right-aligns columns named like numbers."""
    from rich import box
    from rich.table import Table

    # A rule under the header on a terminal; plain columns (awk/grep-friendly ASCII) elsewhere.
    style = box.SIMPLE_HEAD if sys.stdout.isatty() else None
    t = Table(box=style, title=title, title_justify="left", show_edge=False, pad_edge=False)
    for name in columns:
        numeric = name in NUMERIC_COLUMNS
        t.add_column(name, justify="right" if numeric else "left", no_wrap=True, overflow="fold")
    return t


NUMERIC_COLUMNS = {
    "PARTITION",
    "PARTITIONS",
    "REPLICATION",
    "LOG-START",
    "HIGH-WATERMARK",
    "MESSAGES",
    "COMMITTED",
    "LAG",
    "TOTAL-LAG",
    "MEMBERS",
    "GENERATION",
    "EPOCH",
}


def short_id(node_id: str | None) -> str:
    """A node id as tables show it: the first 12 hex digits, ``-`` for none."""
    return short_node_id(node_id)


def watch_options(command):
    """``--watch`` and ``--interval`` for a command that shows a view (see ``watch``)."""
    import click

    command = click.option(
        "--interval",
        type=click.FloatRange(min=0.1),
        default=None,
        metavar="SECONDS",
        help=f"Seconds between refreshes with --watch (default {WATCH_INTERVAL_S:g}).",
    )(command)
    return click.option(
        "--watch",
        "-w",
        is_flag=True,
        help="Refresh the view in place every --interval seconds until Ctrl-C.",
    )(command)


def check_watch_options(watching: bool, interval: float | None, as_json: bool) -> float:
    """The interval to watch with; a usage error for ``--interval`` without ``--watch`` or
    ``--watch`` with ``--json``."""
    import click

    if interval is not None and not watching:
        raise click.UsageError("--interval needs --watch")
    if watching and as_json:
        raise click.UsageError("--watch and --json cannot be combined")
    return WATCH_INTERVAL_S if interval is None else interval


def watch(render: Callable[[], Any], interval: float, title: str) -> None:
    """Show ``render()`` (a rich renderable) and refresh it every ``interval`` seconds until
    Ctrl-C, which returns normally (the command exits 0).

    On a terminal the view is redrawn in place (rich ``Live``); in a pipe or file each refresh
    is printed as a snapshot, after a blank line. Every view starts with a line naming the
    command, the interval and the time. The first ``render()`` raises as the command without
    ``--watch`` would (an unknown group: status 1); a later failure (a restarting cluster, a
    deleted group) is shown in place of the view, and the next refresh tries again.
    """
    from rich.console import Group
    from rich.markup import escape

    printer = Printer()

    def frame(body: Any) -> Any:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        hint = "" if printer.plain else "  (Ctrl-C to stop)"
        return Group(f"[dim]{escape(title)}  every {interval:g}s  {stamp}{hint}[/dim]", body)

    def body_or_error() -> Any:
        try:
            return render()
        except Exception as exc:  # shown in the view; the next refresh tries again
            text = " ".join(str(exc).split()) or type(exc).__name__
            return f"[red]error: {escape(text)}[/red]"

    try:
        first = frame(render())
        if printer.plain:
            printer.print(first)
            while True:
                time.sleep(interval)
                view = frame(body_or_error())
                sys.stdout.write("\n")
                printer.print(view)
        else:
            from rich.live import Live

            with Live(first, console=printer.console, auto_refresh=False) as live:
                while True:
                    time.sleep(interval)
                    live.update(frame(body_or_error()), refresh=True)
    except KeyboardInterrupt:
        return


def error_line(message: str) -> None:
    """Print ``error: <message>`` as one line on stderr."""
    text = " ".join(str(message).split()) or "unknown error"
    sys.stderr.write(f"error: {text}\n")
    sys.stderr.flush()


def debug_enabled() -> bool:
    """``RAYKAFKA_DEBUG=1``: show tracebacks and Ray's own startup output."""
    return os.environ.get("RAYKAFKA_DEBUG", "") not in ("", "0", "false", "no")


def silence_stdout() -> None:
    """The reader of stdout went away (``| head``): stop writing, and do not complain at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
