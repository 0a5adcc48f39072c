"""``consume_in_ray``: the common Ray pattern -- N consumer tasks in one group running a function.

Each task iterates one MessageStream (one group member) and calls ``fn`` on
every Arrow table (or every Message with ``per_message=True``). Tasks are
retried by Ray when their worker process or node dies (``max_retries=-1``):
the retry joins the group as a new member, and the dead member's partitions
move to the others after its session timeout, from the last committed offsets
-- so every message is processed at least once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import ray

from raykafka.api.consumer import Consumer


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


@dataclass
class ConsumeJob:
    """The running tasks of ``consume_in_ray``."""

    refs: list

    def wait(self, timeout_s: float | None = None) -> int:
        """Wait for every task to end (streams end after ``timeout_s`` idle); total records seen."""
        return sum(ray.get(self.refs, timeout=timeout_s))

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
    **consumer_config,
) -> ConsumeJob:
    """Run ``fn`` over ``topic`` with ``num_consumers`` Ray tasks in group ``group_id``.

    ``fn`` receives a ``pyarrow.Table`` of up to ``max_messages`` records (columns as
    ``poll_batch``), or each ``Message`` with ``per_message=True``. With ``timeout_s``
    a task ends after that long without a message; without it tasks run until
    ``stop()``. Extra keyword arguments configure each task's Consumer
    (``auto_offset_reset``, ``session_timeout_ms``, ...).

    Example::

        def handle(table):
            print(table.num_rows, "records")

        job = raykafka.consume_in_ray("events", "etl", handle, num_consumers=4, timeout_s=30)
        print(job.wait(), "records processed")
    """
    if isinstance(num_consumers, bool) or not isinstance(num_consumers, int) or num_consumers < 1:
        raise ValueError(f"num_consumers must be an int >= 1, got {num_consumers!r}")
    if not callable(fn):
        raise TypeError("fn must be callable")
    streams = Consumer(group_id=group_id, **consumer_config).create_message_streams(
        topic, num_consumers, timeout_s=timeout_s
    )
    task = ray.remote(_run_stream).options(max_retries=-1, num_cpus=num_cpus)
    return ConsumeJob([task.remote(stream, fn, per_message, max_messages) for stream in streams])
