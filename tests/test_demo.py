"""The README's demo: the main job, run as a user runs it (its own local Ray).

It leaves nothing behind -- its topic, its group and their data are deleted at the end --
unless asked to ``--keep`` them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from raykafka.api import record_builder
from raykafka.storage.layout import namespace_root

pytestmark = pytest.mark.slow


def run_demo(tmp_path, namespace: str, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
    """One run of the main job with its own local Ray, on ``tmp_path``'s data directory."""
    env = dict(os.environ, RAYKAFKA_DATA_DIR=str(tmp_path / "data"), RAY_ADDRESS="local", **extra_env)
    done = subprocess.run(
        [sys.executable, "-m", "raykafka.demo", "--messages", "3000", "--namespace", namespace, *args],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def names(out: str) -> tuple[str, str]:
    """The run's topic and group, as it printed them."""
    topic = re.search(r"created topic '(demo-[0-9a-f]{8})' with 1 partition", out)
    group = re.search(r"consuming in group '(demo-[0-9a-f]{8})'", out)
    assert topic and group, out
    return topic.group(1), group.group(1)


def on_disk(root: Path, topic: str, group: str) -> dict:
    """What the data directory holds of ``topic`` and ``group``."""
    topics_json = root / "metadata" / "topics.json"
    listed = json.loads(topics_json.read_text())["topics"] if topics_json.exists() else {}
    return {
        "listed": topic in listed,
        "replicas": sorted(str(p.relative_to(root)) for p in (root / "replicas").glob(f"{topic}-*")),
        "group": (root / "groups" / group).exists(),
    }


def test_demo_cleans_up_keeps_with_keep_and_runs_again_on_a_new_ray(tmp_path):
    namespace = f"demo-{uuid.uuid4().hex[:8]}"
    root = namespace_root(tmp_path / "data", namespace)
    done = run_demo(tmp_path, namespace, "--keep")
    out = done.stdout
    kept_topic, kept_group = names(out)
    assert f"sent 'test message str' -> {kept_topic}[0] offset 0" in out
    assert "first message consumed: offset 0 payload b'test message str'" in out
    assert "consumed 3,001 messages from a message stream" in out
    assert f"topic {kept_topic!r}: log start 0, high watermark 3001" in out
    assert "send_batch of an Arrow table landed at offsets [3001, 3002, 3003]" in out
    assert f"kept topic {kept_topic!r} and group {kept_group!r} (--keep)" in out
    # Ray relays actors' warnings to the driver: a user's first run should show none of ours
    # (the group coordinator once triggered Ray's RayDeprecationWarning about actor_id)
    assert "DeprecationWarning" not in out + done.stderr, (out + done.stderr)[-3000:]

    builder = "compiled" if record_builder.COMPILED else "pure-Python"  # the same install
    assert f"B/s ({builder} record builder)" in out
    kept = on_disk(root, kept_topic, kept_group)
    assert kept["listed"] and kept["group"] and kept["replicas"] == [f"replicas/{kept_topic}-0"], kept

    # More topics in the data directory, as a user's accumulates: re-creating their replicas
    # together on a new Ray takes seconds on 2 CPUs, which the manager must not call an outage.
    # On this new Ray (new node ids) the kept topic and group are there for the API too, and
    # the kept topic's replica is re-placed on the new node: list_offsets must find the new
    # leader instead of calling the old actor until it times out (it did, 2026-11-26).
    more = [f"more-{i}" for i in range(8)]
    create = (
        "import raykafka; raykafka.connect(namespace=%r)\n"
        "admin = raykafka.Admin()\nfor t in %r: admin.create_topic(t)\n"
        "print(admin.list_topics(), admin.list_groups(), admin.list_offsets(%r, 0, 'latest'))"
    )
    env = dict(os.environ, RAYKAFKA_DATA_DIR=str(tmp_path / "data"), RAY_ADDRESS="local")
    listed = subprocess.run(
        [sys.executable, "-c", create % (namespace, more, kept_topic)],
        check=True,
        timeout=240,
        env=env,
        capture_output=True,
        text=True,
    ).stdout
    assert kept_topic in listed and kept_group in listed and listed.rstrip().endswith(" 3004"), listed

    # Run again as a user does: another new local Ray, the same data directory, whose topics'
    # replicas are re-placed on the new node. This run uses the pure-Python record builder, as
    # an install without a C compiler does, and deletes what it made.
    again_done = run_demo(tmp_path, namespace, RAYKAFKA_NO_EXTENSIONS="1")
    again = again_done.stdout
    topic, group = names(again)
    assert topic != kept_topic and group != kept_group
    assert "B/s (pure-Python record builder)" in again
    # A restarted cluster is not an outage: the manager says it re-creates the replicas, not
    # "offline: no in-sync replica answers" -- it did, 2026-11-26, first while the replicas
    # waited to be re-created, then (2026-11-27, 42 lines for 9 partitions) while the
    # re-created actors started.
    assert "offline" not in again + again_done.stderr, (again + again_done.stderr)[-3000:]
    assert f"sent 'test message str' -> {topic}[0] offset 0" in again
    assert "consumed 3,001 messages from a message stream" in again
    assert f"topic {topic!r}: log start 0, high watermark 3001" in again
    assert f"deleted topic {topic!r} and group {group!r} (--keep keeps them)" in again

    # Nothing of the second run is left: no topic in the metadata, no replica directory, no
    # group directory. The first run's, kept, are still there.
    assert on_disk(root, topic, group) == {"listed": False, "replicas": [], "group": False}
    assert on_disk(root, kept_topic, kept_group) == kept
