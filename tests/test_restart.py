"""A restart just works: ``ray stop; ray start --head`` (every node gets a new id), then the
very first command succeeds; and with no cluster every command says how to get one.

Real ``ray start --head`` processes (tests/ray_head.py) and the real CLI: its entry point run
in a process of its own per cluster (tests/cli_runner.py: one Ray client start-up for several
commands), and as the ``raykafka`` command a user types.
"""

from __future__ import annotations

import os
import time
import uuid

from tests.cli_runner import CliRunner
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
    cli = CliRunner(head.env)
    try:
        ok(cli.run("topics", "create", topic, "--partitions", "3"))
        ok(cli.run("produce", topic, input="".join(f"{x}\n" for x in lines)))
    finally:
        cli.close()
        head.stop()

    head = start_ray_head(tmp_path / "second", data_dir=data_dir)  # new node ids, same disk
    try:
        # the first command on the restarted cluster, from a new process (a Ray client starting)
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

    # the first as the command a user types (a real process's exit status and stderr), the
    # others by the CLI's entry point in one process (one Python and Ray import for four)
    results = [
        subprocess.run(
            ["raykafka", *commands[0]], input="x\n", capture_output=True, text=True, env=env, timeout=60
        )
    ]
    cli = CliRunner(env)
    try:
        results += [cli.run(*command, input="x\n", timeout=60) for command in commands[1:]]
    finally:
        cli.close()
    said = set()
    for result in results:
        line = fails(result)
        assert "ray start --head" in line and "--address local" in line, line
        said.add(line)
    assert len(said) == 1, said  # one message, whatever the command
    assert not list((tmp_path / "ray-tmp").iterdir())  # nothing started a Ray of its own
