"""A restart just works: ``ray stop; ray start --head`` (every node gets a new id), then the
very first command succeeds; and with no cluster every command says how to get one.

Real ``ray start --head`` processes (tests/ray_head.py) and the real CLI, as a user runs them.
"""

from __future__ import annotations

import os
import time
import uuid

from tests.ray_head import start_ray_head
from tests.test_cli import fails, ok

#: The consumer's request_timeout_ms default: the first call after a restart must fit in it.
REQUEST_TIMEOUT_S = 30


def test_first_consume_after_a_cluster_restart_succeeds(tmp_path):
    data_dir = tmp_path / "data"
    topic = f"events-{uuid.uuid4().hex[:6]}"
    lines = [f"line-{i}" for i in range(12)]
    for run in ("first", "second"):
        (tmp_path / run).mkdir()
    head = start_ray_head(tmp_path / "first", data_dir=data_dir)
    try:
        ok(head.run("raykafka", "topics", "create", topic, "--partitions", "3"))
        ok(head.run("raykafka", "produce", topic, input="".join(f"{x}\n" for x in lines)))
    finally:
        head.stop()

    head = start_ray_head(tmp_path / "second", data_dir=data_dir)  # new node ids, same disk
    try:
        started = time.monotonic()
        out = ok(
            head.run(
                "raykafka",
                "consume",
                topic,
                "--from-beginning",
                "--max-messages",
                str(len(lines)),
                timeout=90,
            )
        )
        took_s = time.monotonic() - started
        print(f"first consume after the restart took {took_s:.1f} s")  # reported with -s
        assert sorted(out.split()) == sorted(lines)  # one partition's order is kept; across three, not
        assert took_s < REQUEST_TIMEOUT_S
        listed = ok(head.run("raykafka", "topics", "list"))
        assert topic in listed and "offline" not in listed
    finally:
        head.stop()


def test_without_a_cluster_every_command_gives_the_same_hint(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    # Ray finds "the last `ray start` on this machine" under its temp dir: an empty one has none.
    env["RAY_TMPDIR"] = str(tmp_path / "ray-tmp")
    (tmp_path / "ray-tmp").mkdir()
    commands = [
        ["topics", "list"],
        ["produce", "events"],
        ["consume", "events", "--max-messages", "1"],
        ["groups", "list"],
        ["status"],
    ]
    import subprocess

    said = set()
    for command in commands:
        result = subprocess.run(
            ["raykafka", *command], input="x\n", capture_output=True, text=True, env=env, timeout=60
        )
        line = fails(result)
        assert "ray start --head" in line and "--address local" in line, line
        said.add(line)
    assert len(said) == 1, said  # one message, whatever the command
    assert not list((tmp_path / "ray-tmp").iterdir())  # nothing started a Ray of its own
