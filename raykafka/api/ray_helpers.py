"""``consume_in_ray``: the common Ray pattern -- N consumer tasks in one group running a function.

Each task iterates one MessageStream (one group member) and calls ``fn`` on
every Arrow table (or every Message with ``per_message=True``). Tasks are
retried by Ray when their worker process or node dies (``max_retries=-1``):
the retry joins the group as a new member, and the dead member's partitions
move to the others after its session timeout, from the last committed offsets
-- so every message is processed at least once.

Where a group starts: at its committed offsets; on partitions where it has none
(a new group), at ``auto_offset_reset`` -- ``"latest"`` (Kafka's default: only
records that arrive from then on) or ``"earliest"`` (everything the topic holds).

Progress: ``ConsumeJob.wait()`` shows the records the group has committed and its
lag while it waits, when ``progress`` is on (by default on a terminal and in a
notebook). ``track`` shows the same kind of line for a loop of your own, such as a
long ``Producer.send`` loop.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import ray

from raykafka.api.consumer import Consumer

#: Seconds between progress refreshes (each one asks the group and the topic once).
PROGRESS_INTERVAL_S = 1.0


def _run_stream(stream, fn: Callable, per_message: bool, max_messages: int) -> int:
    seen = 0
    try:
        if per_message:
            for message in stream:
                fn(message)
                seen += 1
        else:
            for table in stream.batches(max_messages=max_messages):
                fn(table)
                seen += table.num_rows
    finally:
        stream.close()  # commits (auto-commit) and leaves the group
    return seen


# -- progress display ------------------------------------------------------------------------------


def in_notebook() -> bool:
    """True in a Jupyter/IPython kernel (where stderr is not a terminal but a person watches)."""
    ipython = sys.modules.get("IPython")  # never imported here: a kernel has already done it
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def progress_wanted(progress: bool | None) -> bool:
    """``progress`` as given; ``None``: on when stderr is a terminal or in a notebook."""
    if progress is not None:
        return bool(progress)
    return in_notebook() or _stderr_is_terminal()


class _StatusLine:
    """One live status line: an HTML ``<progress>`` line updated in place in a notebook;
    elsewhere a rich progress bar on stderr (redrawn on a terminal; in a file or pipe only
    its last state is written, when it closes)."""

    def __init__(self, description: str):
        self.description = description
        self._handle = None
        self._rich = None
        self._task = None
        if in_notebook():
            from IPython.display import display

            self._handle = display(_Html(description, 0, None, ""), display_id=True)
        else:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            # a file or pipe gets one line at the end: wide enough for the whole status
            width = None if _stderr_is_terminal() else 120
            console = Console(file=sys.stderr, highlight=False, width=width)
            self._rich = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                console=console,
            )
            self._task = self._rich.add_task(description, total=None, status="")
            self._rich.start()

    def update(self, status: str, completed: float = 0, total: float | None = None) -> None:
        if self._rich is not None:
            self._rich.update(self._task, completed=completed, total=total, status=status)
        elif self._handle is not None:
            self._handle.update(_Html(self.description, completed, total, status))

    def close(self) -> None:
        if self._rich is not None:
            self._rich.stop()


class _Html:
    """What a notebook shows for a status line (text/plain for other frontends)."""

    def __init__(self, description: str, completed: float, total: float | None, status: str):
        self.description, self.completed, self.total, self.status = description, completed, total, status

    def __repr__(self) -> str:
        return f"{self.description}: {self.status}"

    def _repr_html_(self) -> str:
        from html import escape

        bar = (
            f'<progress value="{self.completed:.0f}" max="{self.total:.0f}"></progress> '
            if self.total
            else "<progress></progress> "
        )
        return f"<div><code>{escape(self.description)}</code> {bar}{escape(self.status)}</div>"


def _records(n: int) -> str:
    return f"{n:,} record{'' if n == 1 else 's'}"


def track(
    iterable: Iterable,
    description: str = "sending",
    *,
    total: int | None = None,
    progress: bool | None = None,
    unit: str = "records",
) -> Iterator:
    """Yield from ``iterable`` while showing how many items went by and their rate: a bar
    updated in place in a notebook, on stderr elsewhere (as ``consume_in_ray``'s). For long
    loops such as a ``Producer.send`` loop. ``progress``: ``None`` (default) shows it on a
    terminal or in a notebook, ``True`` always (a file gets its last state), ``False`` never.
    ``total`` (default ``len(iterable)`` when it has one) draws a bar.

    Example::

        from raykafka.api.ray_helpers import track

        with Producer() as producer:
            for line in track(lines, "producing to events"):
                producer.send("events", line)
    """
    if not progress_wanted(progress):
        yield from iterable
        return
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    line = _StatusLine(description)
    count = 0
    started = last = time.monotonic()
    try:
        for item in iterable:
            yield item
            count += 1
            now = time.monotonic()
            if now - last >= 0.2:
                last = now
                line.update(f"{count:,} {unit} ({count / (now - started):,.0f}/s)", count, total)
    finally:
        elapsed = max(time.monotonic() - started, 1e-9)
        line.update(f"{count:,} {unit} ({count / elapsed:,.0f}/s)", count, total or count or None)
        line.close()


@dataclass
class _GroupProgress:
    """How far a group got on a topic, from its committed offsets (what survives a task's death):
    records committed since the job started, and the lag (log end minus position) left."""

    admin: object
    topic: str
    group_id: str
    auto_offset_reset: str
    baseline: dict[int, int] = field(default_factory=dict)  # partition -> offset the job counts from

    @classmethod
    def start(cls, topic: str, group_id: str, auto_offset_reset: str) -> tuple[_GroupProgress, str]:
        """The job's starting point, and a sentence that says it."""
        from raykafka.api.admin import Admin

        self = cls(Admin(), topic, group_id, auto_offset_reset)
        ends = self._ends()
        committed = self._committed()
        for p, (start, end) in ends.items():
            if p in committed:
                self.baseline[p] = committed[p]
            else:
                self.baseline[p] = end if auto_offset_reset == "latest" else start
        new = [p for p in ends if p not in committed]
        waiting = sum(ends[p][1] - ends[p][0] for p in new)
        name = f"consume_in_ray: group {group_id!r}"
        if not new:
            return self, f"{name} goes on from its committed offsets in {topic!r}"
        if len(new) == len(ends):
            where = f"{name} has no committed offsets in {topic!r}"
        else:
            where = f"{name} has no committed offsets on {len(new)} of {len(ends)} partitions of {topic!r}"
        reset = f"auto_offset_reset={auto_offset_reset!r}"
        if auto_offset_reset == "latest":
            where += f": it starts at the log end ({reset}) and reads only records that arrive from now on"
            if waiting:
                where += (
                    f"; the {_records(waiting)} there are skipped (auto_offset_reset='earliest' reads them)"
                )
        elif auto_offset_reset == "earliest":
            where += f": it starts at the log start ({reset}), {_records(waiting)} to read"
        else:
            where += f": its tasks fail there with OffsetOutOfRange ({reset})"
        return self, where

    def _ends(self) -> dict[int, tuple[int, int]]:
        description = self.admin.describe_topic(self.topic)
        return {
            p.partition: (p.log_start_offset, p.high_watermark)
            for p in description.partitions
            if not p.offline and p.high_watermark >= 0
        }

    def _committed(self) -> dict[int, int]:
        from raykafka.errors import UnknownGroup

        try:
            group = self.admin.describe_group(self.group_id)
        except UnknownGroup:  # a new group: nothing committed yet
            return {}
        return {tp.partition: offset for tp, offset in group.committed.items() if tp.topic == self.topic}

    def snapshot(self) -> tuple[int, int]:
        """(records committed since the start, lag)."""
        ends = self._ends()
        committed = self._committed()
        done = lag = 0
        for p, (start, end) in ends.items():
            base = self.baseline.setdefault(p, start)  # a partition added meanwhile: from its start
            position = committed.get(p, base)
            done += max(0, position - base)
            lag += max(0, end - position)
        return done, lag


@dataclass
class ConsumeJob:
    """The running tasks of ``consume_in_ray``."""

    refs: list
    _progress: _GroupProgress | None = field(default=None, repr=False)

    def wait(self, timeout_s: float | None = None) -> int:
        """Wait for every task to end (streams end after ``timeout_s`` idle); total records seen.

        With progress on (see ``consume_in_ray``) a line shows the records the group committed
        so far and its lag while waiting, and the total at the end."""
        if self._progress is None:
            return sum(ray.get(self.refs, timeout=timeout_s))
        tracker = self._progress
        line = _StatusLine(f"consuming {tracker.topic}")
        started = time.monotonic()
        deadline = None if timeout_s is None else started + timeout_s
        try:
            while True:
                step = PROGRESS_INTERVAL_S
                if deadline is not None:
                    step = max(0.0, min(step, deadline - time.monotonic()))
                ready, _ = ray.wait(self.refs, num_returns=len(self.refs), timeout=step)
                if len(ready) == len(self.refs):
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    return sum(ray.get(self.refs, timeout=0))  # raises GetTimeoutError, as without progress
                try:
                    done, lag = tracker.snapshot()
                except Exception:  # the display must not end the wait: show it at the next refresh
                    continue
                line.update(f"{_records(done)} committed, lag {lag:,}", done, done + lag)
            total = sum(ray.get(self.refs))
            try:
                _, lag = tracker.snapshot()
                status = f"{_records(total)} processed, lag {lag:,}"
            except Exception:
                status = f"{_records(total)} processed"
            line.update(status, total, total or None)
            return total
        finally:
            line.close()

    def stop(self) -> None:
        """Cancel the tasks (their members leave after the session timeout at the latest)."""
        for ref in self.refs:
            ray.cancel(ref)


def consume_in_ray(
    topic: str,
    group_id: str,
    fn: Callable,
    num_consumers: int = 1,
    *,
    per_message: bool = False,
    timeout_s: float | None = None,
    max_messages: int = 10000,
    num_cpus: float = 1,
    auto_offset_reset: str = "latest",
    progress: bool | None = None,
    **consumer_config,
) -> ConsumeJob:
    """Run ``fn`` over ``topic`` with ``num_consumers`` Ray tasks in group ``group_id``.

    ``fn`` receives a ``pyarrow.Table`` of up to ``max_messages`` records (columns as
    ``poll_batch``), or each ``Message`` with ``per_message=True``. With ``timeout_s``
    a task ends after that long without a message; without it tasks run until
    ``stop()``.

    Where it starts: at the group's committed offsets; where it has none (a new group)
    at ``auto_offset_reset`` -- ``"latest"`` (the default, as Kafka's: only records
    that arrive from now on) or ``"earliest"`` (every record the topic holds).

    ``progress``: ``wait()`` shows the records the group committed so far and its lag
    (a bar in a notebook, on stderr elsewhere), and the start says where the group
    starts. ``None`` (default): on when stderr is a terminal or in a notebook.

    Extra keyword arguments configure each task's Consumer (``session_timeout_ms``,
    ``enable_auto_commit``, ...).

    Example::

        def handle(table):
            print(table.num_rows, "records")

        job = raykafka.consume_in_ray("events", "etl", handle, num_consumers=4,
                                      auto_offset_reset="earliest", timeout_s=30)
        print(job.wait(), "records processed")
    """
    if isinstance(num_consumers, bool) or not isinstance(num_consumers, int) or num_consumers < 1:
        raise ValueError(f"num_consumers must be an int >= 1, got {num_consumers!r}")
    if not callable(fn):
        raise TypeError("fn must be callable")
    streams = Consumer(
        group_id=group_id, auto_offset_reset=auto_offset_reset, **consumer_config
    ).create_message_streams(topic, num_consumers, timeout_s=timeout_s)
    tracker = None
    if progress_wanted(progress):
        try:
            tracker, where = _GroupProgress.start(topic, group_id, auto_offset_reset)
        except Exception as exc:  # progress is a display: never a reason not to consume
            where = f"(no progress: {type(exc).__name__}: {exc})"
        _say(where)
    task = ray.remote(_run_stream).options(max_retries=-1, num_cpus=num_cpus)
    refs = [task.remote(stream, fn, per_message, max_messages) for stream in streams]
    return ConsumeJob(refs, tracker)


def _say(text: str) -> None:
    """One line for the person watching: printed in a notebook, on stderr elsewhere."""
    if in_notebook():
        print(text, flush=True)
    else:
        print(text, file=sys.stderr, flush=True)
