"""``raykafka produce TOPIC``: one message per stdin line.

Lines are read as bytes and sent as they are, minus their ``\\n`` (a ``\\r`` before
it stays; an empty line is an empty message; a last line without ``\\n`` is a
message too). With ``--key-separator SEP`` the bytes before the first SEP are the
key and the rest the value; a line without SEP has no key (as kcat ``-K``).

Results are gathered without holding a future per message: futures are kept in
send order and retired from the front once done (the producer's buffer bounds how
many can be pending), tallying count and offset range per partition for the
summary printed on stderr.
"""

from __future__ import annotations

import os
import stat
import sys
from collections import deque

import click

from raykafka.cli.topics import check_topic

#: stdin files at least this large get a progress bar (when stderr is a terminal).
PROGRESS_MIN_BYTES = 1 << 20
#: Retire completed futures every this many sends.
RETIRE_EVERY = 1024


class _Tally:
    """Per-partition count and offset range of acknowledged messages."""

    def __init__(self) -> None:
        self.count = 0
        self.ranges: dict[int, list[int]] = {}  # partition -> [first, last, count]
        self.pending: deque = deque()  # futures in send order, not yet tallied

    def retire_done(self) -> None:
        pending = self.pending
        while pending and pending[0].done():
            self.add(pending.popleft())

    def drain(self) -> None:
        """Tally every pending future (call after the producer was flushed)."""
        while self.pending:
            self.add(self.pending.popleft())

    def add(self, future) -> None:
        for meta in future.result():
            self.count += 1
            entry = self.ranges.get(meta.partition)
            if entry is None:
                self.ranges[meta.partition] = [meta.offset, meta.offset, 1]
            else:
                entry[0] = min(entry[0], meta.offset)
                entry[1] = max(entry[1], meta.offset)
                entry[2] += 1

    def summary(self, topic: str) -> str:
        noun = "message" if self.count == 1 else "messages"
        if not self.ranges:
            return f"produced {self.count} {noun} to {topic}"
        parts = ", ".join(
            f"partition {p}: offsets {first}-{last}" if first != last else f"partition {p}: offset {first}"
            for p, (first, last, _count) in sorted(self.ranges.items())
        )
        return f"produced {self.count} {noun} to {topic} ({parts})"


def _stdin_size() -> int | None:
    """Bytes left to read on stdin when it is a regular file, else None."""
    try:
        st = os.fstat(sys.stdin.fileno())
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    try:
        position = os.lseek(sys.stdin.fileno(), 0, os.SEEK_CUR)
    except OSError:
        position = 0
    return max(0, st.st_size - position)


@click.command(short_help="Send stdin lines to TOPIC, one message each.")
@click.argument("topic")
@click.option(
    "--key-separator",
    "-K",
    metavar="SEP",
    default=None,
    help="Split each line at the first SEP: key before it, value after (taken literally; "
    "for a tab use $'\\t').",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar on stderr. Default: on when stdin is a file of >= 1 MiB and stderr a terminal.",
)
@click.pass_context
def produce(ctx, topic: str, key_separator: str | None, progress: bool | None) -> None:
    """Send one message per stdin line to TOPIC; prints a summary (count, offsets) on stderr."""
    if key_separator == "":
        raise click.BadParameter("must not be empty", ctx, param_hint="--key-separator")
    check_topic(topic)
    ctx.obj.connect()
    from raykafka import Producer

    separator = key_separator.encode("utf-8") if key_separator is not None else None
    size = _stdin_size()
    if progress is None:
        progress = size is not None and size >= PROGRESS_MIN_BYTES and sys.stderr.isatty()
    tally = _Tally()
    producer = Producer()
    try:
        producer.partitions_for(topic)  # UnknownTopic before reading anything (interactive use)
        if progress:
            _produce_with_progress(producer, topic, separator, tally, size)
        else:
            _produce_lines(producer, topic, separator, tally, None)
    except KeyboardInterrupt:  # Ctrl-C: what was read is still sent; report it, then exit 130
        producer.close()
        tally.drain()
        click.echo(tally.summary(topic), err=True)
        raise
    finally:
        producer.close()
    tally.drain()
    click.echo(tally.summary(topic), err=True)


def _produce_with_progress(producer, topic, separator, tally, size) -> None:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from raykafka.cli.output import stderr_console

    columns = [
        TextColumn("producing"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[messages]} messages"),
    ]
    with Progress(*columns, console=stderr_console(), transient=False) as bar:
        task = bar.add_task("produce", total=size, messages=0)
        _produce_lines(
            producer,
            topic,
            separator,
            tally,
            lambda nbytes, count: bar.update(task, completed=nbytes, messages=count),
        )
        bar.update(task, completed=size)


def _produce_lines(producer, topic: str, separator: bytes | None, tally: _Tally, report) -> None:
    pending = tally.pending
    send = producer.send
    read_bytes = 0
    sent = 0
    for line in sys.stdin.buffer:
        read_bytes += len(line)
        if line.endswith(b"\n"):
            line = line[:-1]
        key = None
        if separator is not None:
            head, found, rest = line.partition(separator)
            if found:
                key, line = head, rest
        pending.append(send(topic, line, key=key))
        sent += 1
        if sent % RETIRE_EVERY == 0:
            tally.retire_done()
            if report is not None:
                report(read_bytes, sent)
    producer.flush()
    if report is not None:
        report(read_bytes, sent)
