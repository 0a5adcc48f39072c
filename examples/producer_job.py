"""Ship a log file (one message per line) or N generated events to a raykafka topic.

Runs as a Ray job against a running cluster (see examples/README.md)::

    ray job submit --working-dir examples -- python producer_job.py --topic logs --file app.log
    ray job submit --working-dir examples -- python producer_job.py --topic events --count 10000

It joins the cluster it runs in (``raykafka.connect()``), creates the topic when it is
missing, sends, flushes, and prints a summary plus one machine-checkable line::

    PRODUCED <n>
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import raykafka
from raykafka import Admin, Producer
from raykafka.errors import TopicAlreadyExists


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topic", required=True)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", help="a text file to ship, one message per line (empty lines skipped)")
    source.add_argument("--count", type=int, help="generate this many JSON events instead")
    parser.add_argument("--partitions", type=int, default=3, help="partitions when the topic is created")
    parser.add_argument("--namespace", default="raykafka", help="raykafka's Ray namespace")
    parser.add_argument(
        "--key-separator",
        default=None,
        help="with --file: the part of a line before this separator is the message key",
    )
    parser.add_argument("--chunk", type=int, default=5000, help="messages per send_batch")
    return parser.parse_args(argv)


def lines_of(path: str, separator: str | None):
    with open(path, "rb") as f:
        for raw in f:
            line = raw.rstrip(b"\r\n")
            if not line:
                continue
            if separator is not None and separator.encode() in line:
                key, value = line.split(separator.encode(), 1)
                yield key, value
            else:
                yield None, line


def generated(count: int):
    kinds = ("click", "view", "purchase", "login")
    for i in range(count):
        user = f"user-{i % 97}"
        event = {"id": i, "user": user, "kind": kinds[i % len(kinds)], "ts_ms": time.time_ns() // 1_000_000}
        yield user.encode(), json.dumps(event, separators=(",", ":")).encode()


def ensure_topic(topic: str, partitions: int) -> str:
    try:
        Admin().create_topic(topic, partitions=partitions)
        return "created"
    except TopicAlreadyExists:
        return "existing"


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.count is not None and args.count < 0:
        print("--count must be >= 0", file=sys.stderr)
        return 2
    raykafka.connect(namespace=args.namespace)  # joins the cluster this job runs in
    state = ensure_topic(args.topic, args.partitions)
    records = lines_of(args.file, args.key_separator) if args.file else generated(args.count)

    started = time.monotonic()
    sent = 0
    with Producer(linger_ms=5) as producer:
        futures = []
        for key, value in records:
            futures.append(producer.send(args.topic, value, key=key))
            sent += 1
            if len(futures) >= args.chunk:  # bound what we hold; errors surface early
                futures[-1].result(timeout=60)
                futures.clear()
        producer.flush()
        for future in futures:
            future.result(timeout=60)
    elapsed = time.monotonic() - started
    source = f"file {args.file}" if args.file else "generated events"
    rate = sent / elapsed if elapsed > 0 else float("inf")
    print(
        f"producer: sent {sent} messages from {source} to {state} topic {args.topic!r} "
        f"(namespace {args.namespace!r}) in {elapsed:.2f} s ({rate:,.0f} msg/s)"
    )
    print(f"PRODUCED {sent}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
