"""The README's first command: the main job, run as a user runs it (its own local Ray)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from raykafka.api import record_builder

pytestmark = pytest.mark.slow


def run_demo(tmp_path, namespace: str, **extra_env: str) -> subprocess.CompletedProcess:
    """One run of the main job with its own local Ray, on ``tmp_path``'s data directory."""
    env = dict(os.environ, RAYKAFKA_DATA_DIR=str(tmp_path / "data"), RAY_ADDRESS="local", **extra_env)
    done = subprocess.run(
        [sys.executable, "-m", "raykafka.demo", "--messages", "3000", "--namespace", namespace],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_demo_runs_end_to_end_and_again_on_a_new_ray(tmp_path):
    namespace = f"demo-{uuid.uuid4().hex[:8]}"
    done = run_demo(tmp_path, namespace)
    out = done.stdout
    assert "created topic 'topic1' with 1 partition" in out
    assert "sent 'test message str' -> topic1[0] offset 0" in out
    assert "first message consumed: offset 0 payload b'test message str'" in out
    assert "consumed 3,001 messages from a message stream" in out
    assert "topic 'topic1': log start 0, high watermark 3001" in out
    assert "send_batch of an Arrow table landed at offsets [3001, 3002, 3003]" in out
    # Ray relays actors' warnings to the driver: a user's first run should show none of ours
    # (the group coordinator once triggered Ray's RayDeprecationWarning about actor_id)
    assert "DeprecationWarning" not in out + done.stderr, (out + done.stderr)[-3000:]

    builder = "compiled" if record_builder.COMPILED else "pure-Python"  # the same install
    assert f"B/s ({builder} record builder)" in out

    # More topics in the data directory, as a user's accumulates: re-creating their replicas
    # together on a new Ray takes seconds on 2 CPUs, which the manager must not call an outage.
    more = [f"more-{i}" for i in range(8)]
    create = "import raykafka; raykafka.connect(namespace=%r)\nfor t in %r: raykafka.Admin().create_topic(t)"
    env = dict(os.environ, RAYKAFKA_DATA_DIR=str(tmp_path / "data"), RAY_ADDRESS="local")
    subprocess.run([sys.executable, "-c", create % (namespace, more)], check=True, timeout=240, env=env)

    # Run again as a user does: a new local Ray (new node ids), the same data directory. The
    # topic's replica is re-placed on the new node; the job must find the new leader instead
    # of calling the old actor until it times out (list_offsets did, 2026-11-26). This run
    # uses the pure-Python record builder, as an install without a C compiler does.
    again_done = run_demo(tmp_path, namespace, RAYKAFKA_NO_EXTENSIONS="1")
    again = again_done.stdout
    assert "B/s (pure-Python record builder)" in again
    # A restarted cluster is not an outage: the manager says it re-creates the replicas, not
    # "offline: no in-sync replica answers" -- it did, 2026-11-26, first while the replicas
    # waited to be re-created, then (2026-11-27, 42 lines for 9 partitions) while the
    # re-created actors started.
    assert "offline" not in again + again_done.stderr, (again + again_done.stderr)[-3000:]
    assert "topic 'topic1' exists; appending to it" in again
    assert "sent 'test message str' -> topic1[0] offset 3004" in again
    assert "consumed 3,001 messages from a message stream" in again
    assert "topic 'topic1': log start 0, high watermark 6005" in again
