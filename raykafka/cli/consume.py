"""``raykafka consume TOPIC``: print message values, one per line, like kcat.

Without ``--group`` the consumer has no group (``group_id=None``) and is assigned
every partition of the topic, starting at the earliest offset with
``--from-beginning``, else at the log end. With ``--group G`` it subscribes in G
(``auto_offset_reset`` earliest with ``--from-beginning``, else latest -- only for
partitions G has no committed offset for, as in Kafka) and commits what it printed
when it stops.

It stops after ``--max-messages N``, after ``--timeout-ms T`` without a message
(counted from when the consumer has partitions to read, so a group join does not
eat into it), or on Ctrl-C / SIGTERM -- all three exit 0 after committing.
"""

from __future__ import annotations

import signal
import sys
import time

import click

from raykafka.cli.output import silence_stdout
from raykafka.cli.topics import check_topic

#: Most records taken per poll_batch.
POLL_BATCH = 10_000
#: Longest single wait in the poll loop (keeps Ctrl-C and the silence clock responsive).
POLL_STEP_S = 0.5
#: With --timeout-ms: how long to wait for the group to hand this consumer partitions before the
#: silence clock starts anyway (another member may hold them all).
GROUP_JOIN_GRACE_S = 15.0


class _StopFlag:
    """Set by SIGTERM; the poll loop checks it every step (raising from the handler could land
    inside Ray's Cython code, which does not expect it)."""

    def __init__(self) -> None:
        self.set = False

    def __call__(self, signum, frame) -> None:
        self.set = True


@click.command(short_help="Print messages of TOPIC, one value per line.")
@click.argument("topic")
@click.option(
    "--group",
    "-g",
    "group_id",
    metavar="GROUP",
    default=None,
    help="Consume as a member of GROUP and commit on exit (default: no group, all partitions).",
)
@click.option(
    "--from-beginning",
    is_flag=True,
    help="Start at the earliest offset (with --group: where GROUP has no committed offset).",
)
@click.option(
    "--max-messages",
    "-c",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Exit after N messages.",
)
@click.option("--print-key", "-k", is_flag=True, help="Prefix each value with its key and a tab.")
@click.option(
    "--timeout-ms",
    type=click.IntRange(min=0),
    default=None,
    metavar="T",
    help="Exit after T ms without a message (default: run until Ctrl-C).",
)
@click.pass_context
def consume(
    ctx,
    topic: str,
    group_id: str | None,
    from_beginning: bool,
    max_messages: int | None,
    print_key: bool,
    timeout_ms: int | None,
) -> None:
    """Print each message's value of TOPIC on its own line (UTF-8, invalid bytes replaced)."""
    check_topic(topic)
    if group_id is not None:
        from raykafka.topic_config import validate_group_id

        validate_group_id(group_id)
    ctx.obj.connect()
    from raykafka import Admin, Consumer, TopicPartition

    reset = "earliest" if from_beginning else "latest"
    if group_id is None:
        description = Admin().describe_topic(topic)  # UnknownTopic / InvalidTopicName here
        consumer = Consumer(group_id=None, auto_offset_reset=reset, enable_auto_commit=False)
        consumer.assign([TopicPartition(topic, p.partition) for p in description.partitions])
    else:
        consumer = Consumer(group_id=group_id, auto_offset_reset=reset, enable_auto_commit=True)
        consumer.subscribe([topic])

    stop = _StopFlag()
    previous = signal.signal(signal.SIGTERM, stop)
    error: BaseException | None = None
    try:
        _loop(consumer, max_messages, print_key, timeout_ms, grouped=group_id is not None, stop=stop)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # the reader went away (`| head`): a normal way to stop
        silence_stdout()
    except BaseException as exc:
        error = exc
    finally:
        signal.signal(signal.SIGTERM, previous)
    try:
        if group_id is not None and error is None:
            consumer.commit()
    finally:
        consumer.close()
    if error is not None:
        raise error


def _loop(
    consumer,
    max_messages: int | None,
    print_key: bool,
    timeout_ms: int | None,
    grouped: bool,
    stop: _StopFlag,
) -> None:
    out = sys.stdout.buffer
    remaining = max_messages
    silence_s = None if timeout_ms is None else timeout_ms / 1000
    started = time.monotonic()
    last_activity: float | None = None if grouped else started
    while (remaining is None or remaining > 0) and not stop.set:
        now = time.monotonic()
        if last_activity is None and (consumer.assignment() or now - started >= GROUP_JOIN_GRACE_S):
            last_activity = now  # the silence clock starts once there is something to read
        wait = POLL_STEP_S
        if silence_s is not None and last_activity is not None:
            left = last_activity + silence_s - now
            if left <= 0:
                return
            wait = min(wait, left)
        batch = consumer.poll_batch(max_messages=min(remaining or POLL_BATCH, POLL_BATCH), timeout_s=wait)
        if batch.num_rows == 0:
            continue
        last_activity = time.monotonic()
        values = batch.column("value").to_pylist()
        keys = batch.column("key").to_pylist() if print_key else None
        lines = []
        for i, value in enumerate(values):
            text = _text(value)
            if keys is not None:
                text = _text(keys[i]) + b"\t" + text
            lines.append(text)
        lines.append(b"")
        out.write(b"\n".join(lines))
        out.flush()
        if remaining is not None:
            remaining -= batch.num_rows


def _text(data: bytes | None) -> bytes:
    """Bytes as UTF-8 text, invalid sequences replaced with U+FFFD; None as empty."""
    if not data:
        return b""
    try:
        data.decode("utf-8")
        return data
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace").encode("utf-8")
