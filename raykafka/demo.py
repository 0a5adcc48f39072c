"""The main job: start (or join) Ray, create a topic, produce and consume with the Kafka paper's API.

Run ``python -m raykafka.demo`` (or ``raykafka-demo``). With no Ray running it
starts a local one (the embedded default) and keeps data in
``~/.raykafka/data`` (``$RAYKAFKA_DATA_DIR`` overrides). Prints what happened
and the throughput. Each run uses a topic and a group of its own and deletes
them at the end, data included (``--keep`` keeps them).
"""

from __future__ import annotations

import argparse
import time
import uuid

import pyarrow as pa

import raykafka
from raykafka import Admin, Consumer, Message, MessageSet, Producer
from raykafka.api import record_builder
from raykafka.errors import GroupNotEmpty, TopicAlreadyExists, UnknownGroup

#: How long deleting the group waits for the consumer's leave to be seen.
LEAVE_WAIT_S = 10.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--topic",
        default=None,
        help="topic to use (default: a new demo-XXXXXXXX per run); one that exists is appended to and kept",
    )
    parser.add_argument("--messages", type=int, default=200_000, help="messages to produce in bulk")
    parser.add_argument("--message-bytes", type=int, default=200)
    parser.add_argument("--address", default=None, help="Ray address (default: running cluster or local)")
    parser.add_argument("--namespace", default="raykafka")
    parser.add_argument(
        "--keep", action="store_true", help="keep the topic and the group (default: delete them at the end)"
    )
    args = parser.parse_args(argv)

    run_id = uuid.uuid4().hex[:8]
    topic = args.topic or f"demo-{run_id}"
    group = f"demo-{run_id}"

    started = time.perf_counter()
    raykafka.connect(address=args.address, namespace=args.namespace)
    print(f"connected to Ray in {time.perf_counter() - started:.1f} s (namespace {args.namespace!r})")

    admin = Admin()
    try:
        admin.create_topic(topic, partitions=1)
        created = True
        print(f"created topic {topic!r} with 1 partition")
    except TopicAlreadyExists:
        created = False
        print(f"topic {topic!r} exists; appending to it")
    try:
        _run(admin, topic, group, args)
    finally:
        if args.keep:
            print(f"kept topic {topic!r} and group {group!r} (--keep)")
        else:
            _clean_up(admin, topic, group, delete_topic=created)
    return 0


def _run(admin: Admin, topic: str, group: str, args: argparse.Namespace) -> None:
    start_offset = admin.list_offsets(topic, 0, "latest")

    # The Kafka paper's producer call: a MessageSet of Messages.
    with Producer() as producer:
        first = producer.send(topic, MessageSet(Message(b"test message str"))).result(timeout=30)[0]
        print(f"sent 'test message str' -> {first.topic}[{first.partition}] offset {first.offset}")

        payload = b"x" * args.message_bytes
        t0 = time.perf_counter()
        for _ in range(args.messages):
            producer.send(topic, payload)
        producer.flush()
        produce_s = time.perf_counter() - t0
    print(
        f"produced {args.messages:,} x {args.message_bytes} B with send(): "
        f"{args.messages / produce_s:,.0f} msgs/s, "
        f"{args.messages * args.message_bytes / produce_s / 1e6:.1f} MB/s "
        f"({'compiled' if record_builder.COMPILED else 'pure-Python'} record builder)"
    )

    # The Kafka paper's consumer: message streams of a group, iterated; each message's payload.
    # A new group reads from the earliest offset; messages of earlier runs (an existing --topic)
    # are skipped.
    consumer = Consumer(group_id=group, auto_offset_reset="earliest")
    print(f"consuming in group {group!r}")
    try:
        streams = consumer.create_message_streams(topic, 1)
        total = args.messages + 1
        seen = 0
        t0 = time.perf_counter()
        for message in streams[0]:
            if message.offset < start_offset:
                continue
            payload = message.payload()
            if seen == 0:
                t0 = time.perf_counter()
                print(f"first message consumed: offset {message.offset} payload {payload!r}")
            seen += 1
            if seen == total:
                break
        consume_s = time.perf_counter() - t0
    finally:
        consumer.close()  # commits and leaves the group
    print(
        f"consumed {seen:,} messages from a message stream: {seen / consume_s:,.0f} msgs/s, "
        f"{seen * args.message_bytes / consume_s / 1e6:.1f} MB/s"
    )

    description = admin.describe_topic(topic)
    part = description.partitions[0]
    print(f"topic {topic!r}: log start {part.log_start_offset}, high watermark {part.high_watermark}")
    table = pa.table({"value": [b"batch-%d" % i for i in range(3)]})
    with Producer() as producer:
        metadata = producer.send_batch(topic, table).result(timeout=30)
    print(f"send_batch of an Arrow table landed at offsets {[m.offset for m in metadata]}")


def _clean_up(admin: Admin, topic: str, group: str, *, delete_topic: bool) -> None:
    """Delete this run's group and, when this run created it, its topic (the data with it)."""
    deadline = time.monotonic() + LEAVE_WAIT_S
    while True:
        try:
            admin.delete_group(group)
            break
        except UnknownGroup:  # the run stopped before the group had members or offsets
            break
        except GroupNotEmpty:  # the closed consumer's leave is still on its way
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    if delete_topic:
        admin.delete_topic(topic)
        print(f"deleted topic {topic!r} and group {group!r} (--keep keeps them)")
    else:
        print(f"deleted group {group!r}; kept topic {topic!r}, which this run did not create")


if __name__ == "__main__":
    raise SystemExit(main())
