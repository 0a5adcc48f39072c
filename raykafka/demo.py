"""The main job: start (or join) Ray, create a topic, produce and consume with the Kafka paper's API.

Run ``python -m raykafka.demo`` (or ``raykafka-demo``). With no Ray running it
starts a local one (the embedded default) and keeps data in
``~/.raykafka/data`` (``$RAYKAFKA_DATA_DIR`` overrides). Prints what happened
and the throughput.
"""

from __future__ import annotations

import argparse
import time
import uuid

import pyarrow as pa

import raykafka
from raykafka import Admin, Consumer, Message, MessageSet, Producer
from raykafka.api import record_builder
from raykafka.errors import TopicAlreadyExists


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topic", default="topic1")
    parser.add_argument("--messages", type=int, default=200_000, help="messages to produce in bulk")
    parser.add_argument("--message-bytes", type=int, default=200)
    parser.add_argument("--address", default=None, help="Ray address (default: running cluster or local)")
    parser.add_argument("--namespace", default="raykafka")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    raykafka.connect(address=args.address, namespace=args.namespace)
    print(f"connected to Ray in {time.perf_counter() - started:.1f} s (namespace {args.namespace!r})")

    admin = Admin()
    try:
        admin.create_topic(args.topic, partitions=1)
        print(f"created topic {args.topic!r} with 1 partition")
    except TopicAlreadyExists:
        print(f"topic {args.topic!r} exists; appending to it")
    start_offset = admin.list_offsets(args.topic, 0, "latest")

    # The Kafka paper's producer call: a MessageSet of Messages.
    with Producer() as producer:
        first = producer.send(args.topic, MessageSet(Message(b"test message str"))).result(timeout=30)[0]
        print(f"sent 'test message str' -> {first.topic}[{first.partition}] offset {first.offset}")

        payload = b"x" * args.message_bytes
        t0 = time.perf_counter()
        for _ in range(args.messages):
            producer.send(args.topic, payload)
        producer.flush()
        produce_s = time.perf_counter() - t0
    print(
        f"produced {args.messages:,} x {args.message_bytes} B with send(): "
        f"{args.messages / produce_s:,.0f} msgs/s, "
        f"{args.messages * args.message_bytes / produce_s / 1e6:.1f} MB/s "
        f"({'compiled' if record_builder.COMPILED else 'pure-Python'} record builder)"
    )

    # The Kafka paper's consumer: message streams of a group, iterated; each message's payload.
    # A group of its own per run reads from the earliest offset and skips older runs' messages.
    consumer = Consumer(group_id=f"demo-{uuid.uuid4().hex[:8]}", auto_offset_reset="earliest")
    streams = consumer.create_message_streams(args.topic, 1)
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
    consumer.close()
    print(
        f"consumed {seen:,} messages from a message stream: {seen / consume_s:,.0f} msgs/s, "
        f"{seen * args.message_bytes / consume_s / 1e6:.1f} MB/s"
    )

    description = admin.describe_topic(args.topic)
    part = description.partitions[0]
    print(f"topic {args.topic!r}: log start {part.log_start_offset}, high watermark {part.high_watermark}")
    table = pa.table({"value": [b"batch-%d" % i for i in range(3)]})
    with Producer() as producer:
        metadata = producer.send_batch(args.topic, table).result(timeout=30)
    print(f"send_batch of an Arrow table landed at offsets {[m.offset for m in metadata]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
