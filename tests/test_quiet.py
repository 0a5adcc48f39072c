"""Quiet by default: raykafka's internal events reach its actors' log files and
``raykafka status``, never a user's script (a real ``ray start --head``; the driver runs with
Ray's default ``log_to_driver=True``, as a user's script or notebook does)."""

from __future__ import annotations

import json
import sys
import textwrap
import uuid
from pathlib import Path

from tests.test_cli import ok

#: A user's script: produce, crash the partition's actor (an internal event: the TopicManager
#: elects it again under a new epoch), produce and consume on.
DRIVER = textwrap.dedent(
    """
    import os, signal, sys, time
    import ray, raykafka
    from raykafka import Admin, Consumer, Producer, TopicPartition

    topic, namespace = sys.argv[1], sys.argv[2]
    raykafka.connect(namespace=namespace)
    admin = Admin()
    admin.create_topic(topic, partitions=1)
    with Producer() as producer:
        for i in range(5):
            producer.send(topic, f"a-{i}".encode()).result(30)
    manager = ray.get_actor("raykafka.topic_manager", namespace=namespace)
    leader = ray.get(manager.topic_metadata.remote(topic))["leaders"][0]
    os.kill(ray.get(leader.info.remote())["pid"], signal.SIGKILL)
    time.sleep(4)  # the manager notices, the actor restarts, a new epoch is installed
    with Producer() as producer:
        for i in range(5):
            producer.send(topic, f"b-{i}".encode()).result(60)
    consumer = Consumer(group_id="quiet", auto_offset_reset="earliest")
    consumer.subscribe([topic])
    values = []
    deadline = time.monotonic() + 60
    while len(values) < 10 and time.monotonic() < deadline:
        values += consumer.poll_batch(timeout_s=1.0).column("value").to_pylist()
    consumer.close()
    print("VALUES", b",".join(values).decode())
    time.sleep(2)  # let Ray's log monitor forward anything the actors wrote
    """
)

ACTOR_PREFIXES = ("(TopicManager", "(PartitionActor", "(GroupCoordinator", "(_PartitionActor")


def test_driver_sees_no_internal_events_and_status_shows_them(ray_head, tmp_path):
    namespace, topic = f"quiet-{uuid.uuid4().hex[:8]}", f"t-{uuid.uuid4().hex[:6]}"
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    result = ray_head.run(sys.executable, str(script), topic, namespace, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = [f"a-{i}" for i in range(5)] + [f"b-{i}" for i in range(5)]
    [values] = [line for line in result.stdout.splitlines() if line.startswith("VALUES ")]
    assert values.split(" ", 1)[1].split(",") == expected
    captured = (result.stdout + result.stderr).splitlines()
    noise = [line for line in captured if any(p in line for p in ACTOR_PREFIXES) or "raykafka." in line]
    assert noise == [], "\n".join(noise)

    # The event is where operators look: `raykafka status` and the manager's log file.
    status = json.loads(ok(ray_head.run("raykafka", "--namespace", namespace, "status", "--json")))
    events = [e["message"] for e in status["events"]]
    assert any(f"{topic}-0: leader" in m and "epoch" in m for m in events), events
    text = ok(ray_head.run("raykafka", "--namespace", namespace, "status"))
    assert "Recent events" in text
    logs = list(Path("/tmp/ray/session_latest/logs/raykafka").glob("topic_manager-*.log"))
    assert any(f"{topic}-0: leader" in p.read_text() for p in logs), logs
