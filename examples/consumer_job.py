"""Consume a raykafka topic in a consumer group until --expect messages were seen, or a timeout.

Runs as a Ray job against a running cluster (see examples/README.md)::

    ray job submit --working-dir examples -- python consumer_job.py --topic events --group g1 --expect 10000

It joins the cluster it runs in (``raykafka.connect()``), waits for the topic to exist,
reads from the group's committed offsets (from the earliest offset when the group has
none), commits what it read, and prints a summary plus one machine-checkable line::

    CONSUMED <n>

``<n>`` counts distinct (partition, offset) pairs. The exit status is 0 when at least
``--expect`` messages were seen (any number with ``--expect 0``), else 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

import raykafka
from raykafka import Admin, Consumer


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", default="consumer-job")
    parser.add_argument("--expect", type=int, default=0, help="stop once this many messages were seen")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up after this many seconds")
    parser.add_argument("--namespace", default="raykafka", help="raykafka's Ray namespace")
    parser.add_argument("--print", type=int, default=3, dest="show", help="print the first N values")
    return parser.parse_args(argv)


def wait_for_topic(topic: str, deadline: float) -> bool:
    admin = Admin()
    while time.monotonic() < deadline:
        if topic in admin.list_topics():
            return True
        time.sleep(0.5)
    return False


def main(argv=None) -> int:
    args = parse_args(argv)
    raykafka.connect(namespace=args.namespace)  # joins the cluster this job runs in
    started = time.monotonic()
    deadline = started + args.timeout
    if not wait_for_topic(args.topic, deadline):
        print(f"consumer: topic {args.topic!r} did not appear within {args.timeout:g} s", file=sys.stderr)
        print("CONSUMED 0", flush=True)
        return 1

    seen: set[tuple[int, int]] = set()
    per_partition: Counter[int] = Counter()
    duplicates = 0
    consumer = Consumer(group_id=args.group, auto_offset_reset="earliest", enable_auto_commit=False)
    try:
        consumer.subscribe([args.topic])
        while time.monotonic() < deadline and (args.expect == 0 or len(seen) < args.expect):
            table = consumer.poll_batch(max_messages=10_000, timeout_s=1.0)
            if table.num_rows == 0:
                if args.expect == 0 and seen:
                    break  # no target: stop at the first quiet second after data
                continue
            partitions = table.column("partition").to_pylist()
            offsets = table.column("offset").to_pylist()
            if len(seen) < args.show:
                for value in table.column("value").to_pylist()[: args.show - len(seen)]:
                    print(f"  {value[:120].decode('utf-8', 'replace')}")
            for p, o in zip(partitions, offsets, strict=True):
                if (p, o) in seen:
                    duplicates += 1
                else:
                    seen.add((p, o))
                    per_partition[p] += 1
            consumer.commit()
    finally:
        consumer.close()
    elapsed = time.monotonic() - started
    n = len(seen)
    layout = ", ".join(f"p{p}={c}" for p, c in sorted(per_partition.items()))
    print(f"consumer: group {args.group!r} consumed {n} messages from {args.topic!r} in {elapsed:.2f} s "
          f"({layout or 'none'}; duplicates {duplicates}; expected {args.expect})")
    print(f"CONSUMED {n}", flush=True)
    return 0 if n >= args.expect else 1


if __name__ == "__main__":
    sys.exit(main())
