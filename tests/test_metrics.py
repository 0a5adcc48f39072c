"""raykafka's metrics read back from the Prometheus endpoint of a real `ray start --head` node."""

from __future__ import annotations

import re
import sys
import textwrap
import time
import urllib.request
import uuid

import pytest

pytestmark = pytest.mark.slow

DRIVER = textwrap.dedent(
    """
    import sys, raykafka
    from raykafka import Admin, Consumer, Producer, TopicPartition
    raykafka.connect(namespace=sys.argv[1])
    topic, group, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
    Admin().create_topic(topic, partitions=1)
    with Producer() as producer:
        for i in range(n):
            producer.send(topic, b"x" * 100)
    consumer = Consumer(group_id=group, auto_offset_reset="earliest", heartbeat_interval_ms=200)
    consumer.subscribe([topic])
    seen = 0
    while seen < n:
        seen += consumer.poll_batch(timeout_s=1.0).num_rows
    consumer.commit()
    consumer.close()
    print("DONE", seen)
    """
)


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


def value(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(re.search(rf'{k}="{re.escape(v)}"', line) for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_reach_the_prometheus_endpoint(ray_head):
    namespace, topic, group, n = f"metrics-{uuid.uuid4().hex[:8]}", "metered", "mgroup", 500
    done = ray_head.run(sys.executable, "-c", DRIVER, namespace, topic, group, str(n), timeout=180)
    assert "DONE 500" in done.stdout, done.stderr[-2000:]
    wanted = {
        ("ray_raykafka_messages_in_total", "topic"): float(n),
        ("ray_raykafka_bytes_in_total", "topic"): None,  # present, positive
        ("ray_raykafka_messages_out_total", "topic"): None,
        ("ray_raykafka_log_end_offset", "topic"): float(n),
        ("ray_raykafka_high_watermark", "topic"): float(n),
        ("ray_raykafka_log_start_offset", "topic"): 0.0,
        ("ray_raykafka_produce_latency_ms_count", "topic"): None,
        ("ray_raykafka_fetch_latency_ms_count", "topic"): None,
        ("ray_raykafka_consumer_lag", "group"): 0.0,
        ("ray_raykafka_rebalances_total", "group"): None,
    }
    deadline = time.monotonic() + 90  # Ray exports metrics every few seconds
    missing = dict(wanted)
    text = ""
    while missing and time.monotonic() < deadline:
        text = scrape(ray_head.metrics_port)
        for (name, kind), expected in list(missing.items()):
            labels = {"topic": topic} if kind == "topic" else {"group": group}
            found = value(text, name, **labels)
            if found is not None and (found == expected if expected is not None else found > 0):
                del missing[(name, kind)]
        time.sleep(2)
    assert not missing, (
        f"not on the endpoint (or wrong): {sorted(missing)}\n"
        + "\n".join(line for line in text.splitlines() if "raykafka" in line)[:3000]
    )
    # messages out counts every record a consumer was handed, at least once
    assert value(text, "ray_raykafka_messages_out_total", topic=topic) >= n
