"""The ``raykafka`` command line against a real ``ray start --head`` cluster with token auth
(the ``ray_head`` fixture), as a user would run it.

A ``raykafka`` subprocess pays ~2-3 s for Python, Ray's import and its client's start-up
before each command, so most commands run through one helper process joined to the cluster
(``cli``: tests/cli_runner.py), which calls the CLI's entry point as a function and captures
file descriptors 1 and 2 as a subprocess's pipes would. Real ``raykafka`` subprocesses remain
for what only they prove: the command on PATH, ``--address`` (the helper is connected
already), exit statuses of a real process, Ctrl-C, a terminal, and a second process (a
``consume`` of its own) seeing the topics the helper made. Each test chains several commands
and checks their output exactly where it means something. One namespace per module; topic
and group names are fresh per test. A few checks of the output formatting run in-process,
without Ray.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
import uuid

import pytest

from raykafka.cli import output
from raykafka.cli.topics import partition_table
from raykafka.types import (
    GroupDescription,
    MemberDescription,
    PartitionDescription,
    TopicDescription,
    TopicPartition,
)
from tests.cli_runner import CliRunner


@pytest.fixture(scope="module")
def ns():
    return f"cli-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def cli(ray_head):
    """One process running CLI commands in-process against ``ray_head`` (see the module docstring)."""
    runner = CliRunner(ray_head.env)
    yield runner
    runner.close()


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def rk(cli, ns, *args, input=None, timeout=120, text=True):
    """``raykafka --namespace ns *args``, run by the helper process."""
    return cli.run("--namespace", ns, *args, input=input, timeout=timeout, text=text)


def ok(result) -> str:
    assert result.returncode == 0, f"rc={result.returncode}\nstdout={result.stdout}\nstderr={result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


def fails(result, code: int = 1) -> str:
    """The failure contract: exit ``code``, exactly one stderr line ``error: ...``, no traceback."""
    assert result.returncode == code, (
        f"rc={result.returncode}\nstdout={result.stdout}\nstderr={result.stderr}"
    )
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def rows(text: str) -> list[list[str]]:
    """A table printed to a pipe: one whitespace-split list per line."""
    return [line.split() for line in text.splitlines() if line.strip()]


# -- without Ray ------------------------------------------------------------------------------


def test_usage_errors_and_unreachable_ray_are_one_line(ray_head, cli, ns):
    out = ok(ray_head.run("raykafka", "--help"))
    for command in ("topics", "produce", "consume", "groups", "status", "bench"):
        assert command in out

    assert "--config" in fails(rk(cli, ns, "topics", "create", "t", "--config", "retention.ms"), code=2)
    assert "--partitions" in fails(rk(cli, ns, "topics", "create", "t", "--partitions", "0"), code=2)
    # a real process's exit status
    assert "No such command" in fails(ray_head.run("raykafka", "--namespace", ns, "topcs", "list"), code=2)

    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    started = time.monotonic()
    line = fails(ray_head.run("raykafka", "--address", dead, "topics", "list"))
    assert f"cannot reach Ray at {dead}" in line
    assert time.monotonic() - started < 30
    # names and configs are checked (by the API's own rules) before connecting
    assert "bad/name" in fails(ray_head.run("raykafka", "--address", dead, "topics", "create", "bad/name"))
    assert "retention.ms" in fails(
        ray_head.run("raykafka", "--address", dead, "topics", "create", "t", "--config", "retention.ms=soon")
    )

    try:
        import raykafka.bench  # noqa: F401
    except ModuleNotFoundError:
        assert "raykafka.bench" in fails(ray_head.run("raykafka", "bench", "--quick"), code=2)


def test_json_keys_partitions_as_topic_colon_partition():
    tp = TopicPartition("orders", 3)
    group = GroupDescription("g", "Stable", 2, [MemberDescription("m1", "n1", [tp])], {tp: 10}, {tp: 4})
    assert output.jsonable(group) == {
        "group_id": "g",
        "state": "Stable",
        "generation": 2,
        "members": [
            {
                "member_id": "m1",
                "node_id": "n1",
                "assignment": [{"topic": "orders", "partition": 3, "offset": None}],
            }
        ],
        "committed": {"orders:3": 10},
        "lag": {"orders:3": 4},
    }


def test_partition_status_online_under_replicated_offline(monkeypatch):
    monkeypatch.setattr("sys.stdout.isatty", lambda: False)
    a, b = "a" * 56, "b" * 56
    d = TopicDescription(
        "t",
        [
            PartitionDescription(0, a, [a, b], 0, 5, isr_node_ids=[a, b]),
            PartitionDescription(1, b, [b, a], 2, 4, isr_node_ids=[b]),
            PartitionDescription(2, a, [a], -1, -1, isr_node_ids=[], offline=True),
        ],
        {},
    )
    from rich.console import Console

    console = Console(width=1000, no_color=True)
    with console.capture() as captured:
        console.print(partition_table(d, with_topic=True))
    head, *table = rows(captured.get())
    assert head == [
        "TOPIC",
        "PARTITION",
        "LEADER",
        "REPLICAS",
        "ISR",
        "LOG-START",
        "HIGH-WATERMARK",
        "MESSAGES",
        "STATUS",
    ]
    a12, b12 = a[:12], b[:12]
    assert table == [
        ["t", "0", a12, f"{a12},{b12}", f"{a12},{b12}", "0", "5", "5", "online"],
        ["t", "1", b12, f"{b12},{a12}", b12, "2", "4", "2", "under-replicated"],
        ["t", "2", a12, a12, "-", "-", "-", "-", "offline"],
    ]


# -- topics ---------------------------------------------------------------------------------


def test_topics_create_list_describe_alter_delete(cli, ns):
    topic = name("topic")
    assert ok(
        rk(cli, ns, "topics", "create", topic, "--partitions", "2", "--config", "retention.ms=60000")
    ) == (f"created topic {topic} (2 partitions, replication factor 1)\n")
    listed = rows(ok(rk(cli, ns, "topics", "list")))
    assert listed[0] == ["TOPIC", "PARTITIONS", "REPLICATION", "MESSAGES"]
    assert [topic, "2", "1", "0"] in listed[1:]

    described = json.loads(ok(rk(cli, ns, "topics", "describe", topic, "--json")))
    assert described["name"] == topic
    assert [p["partition"] for p in described["partitions"]] == [0, 1]
    for p in described["partitions"]:
        assert (p["log_start_offset"], p["high_watermark"]) == (0, 0)
        assert p["leader_node_id"] in p["replica_node_ids"]
    assert described["config"]["retention.ms"] == "60000"

    assert ok(
        rk(
            cli,
            ns,
            "topics",
            "alter",
            topic,
            "--config",
            "retention.ms=120000",
            "--config",
            "segment.bytes=1048576",
        )
    ) == (f"altered topic {topic}: retention.ms=120000, segment.bytes=1048576\n")
    human = rows(ok(rk(cli, ns, "topics", "describe", topic)))
    assert human[0] == ["Topic:", topic, "partitions:", "2", "replication", "factor:", "1"]
    assert ["retention.ms", "120000"] in human
    assert ["segment.bytes", "1048576"] in human
    assert [r[0] for r in human[2:4]] == ["0", "1"]  # the partition rows

    # errors: one line on stderr, status 1, no traceback
    assert "already exists" in fails(rk(cli, ns, "topics", "create", topic))
    assert "retention.ms" in fails(rk(cli, ns, "topics", "alter", topic, "--config", "retention.ms=soon"))
    assert "bad/name" in fails(rk(cli, ns, "topics", "create", "bad/name"))
    assert "no.such.key" in fails(rk(cli, ns, "topics", "create", name("t"), "--config", "no.such.key=1"))

    assert ok(rk(cli, ns, "topics", "delete", topic)) == f"deleted topic {topic}\n"
    assert topic not in [d["name"] for d in json.loads(ok(rk(cli, ns, "topics", "list", "--json")))]


def test_creating_an_existing_topic_names_the_commands_to_run(cli, ns):
    """The API's TopicAlreadyExists names Admin methods; the CLI's hint names CLI commands, which work."""
    topic = name("exists")
    ok(rk(cli, ns, "topics", "create", topic))
    line = fails(rk(cli, ns, "topics", "create", topic, "--partitions", "3"))
    assert line == (
        f"error: topic '{topic}' already exists; see it with `raykafka topics describe {topic}`, "
        f"or run `raykafka topics delete {topic}` first"
    )
    assert "describe_topic" not in line and "delete_topic" not in line
    ok(rk(cli, ns, "topics", "delete", topic))  # the hint's command, then the create works
    assert "(3 partitions," in ok(rk(cli, ns, "topics", "create", topic, "--partitions", "3"))
    ok(rk(cli, ns, "topics", "delete", topic))


# -- produce / consume ----------------------------------------------------------------------


def test_produce_then_consume_lines_keys_and_bytes(cli, ns, tmp_path):
    topic = name("lines")
    ok(rk(cli, ns, "topics", "create", topic))
    lines = [f"line {i} with spaces\tand a tab" for i in range(50)] + ["", "last"]
    # a file on stdin, with the progress bar forced on: it goes to stderr, never stdout
    path = tmp_path / "lines.txt"
    path.write_text("\n".join(lines) + "\n")
    produced = rk(cli, ns, "produce", topic, "--progress", input=path.read_bytes())  # a file on fd 0
    assert ok(produced) == ""
    assert produced.stderr.splitlines()[-1] == f"produced 52 messages to {topic} (partition 0: offsets 0-51)"

    # keys, and bytes that are not UTF-8 (a last line without a newline is a message too)
    keyed = rk(
        cli,
        ns,
        "produce",
        topic,
        "--key-separator",
        ":",
        input=b"k1:v1\nk2:v:2\nnokey\ncaf\xc3\xa9 \xff\xfe end",
        text=False,
    )
    assert keyed.returncode == 0, keyed.stderr
    assert keyed.stdout == b""
    assert keyed.stderr.decode() == f"produced 4 messages to {topic} (partition 0: offsets 52-55)\n"

    consumed = ok(rk(cli, ns, "consume", topic, "--from-beginning", "--max-messages", "52"))
    assert consumed == "".join(line + "\n" for line in lines)

    keys = ok(rk(cli, ns, "consume", topic, "--from-beginning", "-c", "56", "--print-key"))
    assert keys.splitlines()[50:] == [
        "\t",
        "\tlast",
        "k1\tv1",
        "k2\tv:2",
        "\tnokey",
        "\tcafé \ufffd\ufffd end",
    ]

    assert "does not exist" in fails(rk(cli, ns, "consume", "no-such-topic", "--timeout-ms", "100"))
    assert "does not exist" in fails(rk(cli, ns, "produce", "no-such-topic", input="x\n"))


# -- groups and status ----------------------------------------------------------------------


PUBLISH_TO_DRIVERS = """
import ray
from ray._private.utils import publish_error_to_driver
ray.init(logging_level="ERROR", log_to_driver=False)
gcs = ray._private.worker.global_worker.gcs_client
publish_error_to_driver("cli_test", "PUSHED TO EVERY DRIVER", gcs_client=gcs)
"""


def _read_lines(proc, count: int, timeout_s: float) -> list[str]:
    buffer = b""
    deadline = time.monotonic() + timeout_s
    while buffer.count(b"\n") < count:
        left = deadline - time.monotonic()
        assert left > 0, (
            f"got only {buffer!r}; stderr: {proc.stderr.read1() if proc.poll() is not None else ''}"
        )
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 65536)
            assert chunk, f"consume exited early (rc={proc.wait()}): {proc.stderr.read()!r}"
            buffer += chunk
    return buffer.decode().splitlines()


def test_group_consume_ctrl_c_commits_then_describe_status_delete(ray_head, cli, ns):
    topic, group = name("grouped"), name("g")
    ok(rk(cli, ns, "topics", "create", topic, "--partitions", "2"))
    values = [f"m{i}" for i in range(20)]
    ok(
        rk(
            cli,
            ns,
            "produce",
            topic,
            "--key-separator",
            "=",
            input="".join(f"k{i}={v}\n" for i, v in enumerate(values)),
        )
    )

    # runs until Ctrl-C, which commits what was printed and exits 0
    proc = subprocess.Popen(
        ["raykafka", "--namespace", ns, "consume", topic, "--group", group, "--from-beginning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ray_head.env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        printed = _read_lines(proc, len(values), timeout_s=90)
        # Ray prints messages the cluster pushes to drivers on stdout; the CLI must keep them off it
        ok(ray_head.run(sys.executable, "-c", PUBLISH_TO_DRIVERS))
        time.sleep(1.5)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert sorted(printed, key=lambda v: int(v[1:])) == values
    assert proc.stdout.read() == b""
    assert b"Traceback" not in proc.stderr.read()

    described = json.loads(ok(rk(cli, ns, "groups", "describe", group, "--json")))
    assert described["group_id"] == group
    assert described["members"] == []
    assert sum(described["committed"].values()) == len(values)
    assert set(described["committed"]) <= {f"{topic}:0", f"{topic}:1"}
    assert described["lag"] == {key: 0 for key in described["committed"]}

    human = rows(ok(rk(cli, ns, "groups", "describe", group)))
    assert human[0][:2] == ["Group:", group]
    assert human[1] == ["TOPIC", "PARTITION", "COMMITTED", "LAG", "MEMBER"]
    for row in human[2:]:
        assert row == [topic, row[1], str(described["committed"][f"{topic}:{row[1]}"]), "0", "-"]

    status = json.loads(ok(rk(cli, ns, "status", "--json")))
    assert any(n["alive"] and n["is_head"] and len(n["node_id"]) == 56 for n in status["nodes"])
    assert topic in [t["name"] for t in status["topics"]]
    assert status["offline_partitions"] == []
    [mine] = [g for g in status["groups"] if g["group_id"] == group]
    assert mine["committed"] == described["committed"]

    text = ok(rk(cli, ns, "status"))
    assert "Ray nodes: 1 alive, 0 dead" in text
    assert "Offline partitions: 0" in text
    status_rows = rows(text)
    assert [topic, "0"] in [r[:2] for r in status_rows] and [topic, "1"] in [r[:2] for r in status_rows]
    assert [group, described["state"], str(described["generation"]), "0", "0"] in status_rows

    assert ok(rk(cli, ns, "groups", "delete", group)) == f"deleted group {group}\n"
    listed = json.loads(ok(rk(cli, ns, "groups", "list", "--json")))
    assert isinstance(listed, list) and group not in [g["group_id"] for g in listed]


# -- --watch --------------------------------------------------------------------------------

WHOLE_NODE_ID = re.compile(r"\b[0-9a-f]{56}\b")


def _start(ray_head, ns, *args, stdout):
    """The CLI in the background, as from a shell: Ctrl-C (SIGINT) reaches it with its default handler."""
    return subprocess.Popen(
        ["raykafka", "--namespace", ns, *args],
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
        env={**ray_head.env, "TERM": "xterm-256color", "COLUMNS": "200", "LINES": "50"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _read_until(proc, fd: int, done, timeout_s: float, seen: bytearray) -> str:
    """Read ``fd`` into ``seen`` until ``done(text so far)``; fails on timeout or exit."""
    deadline = time.monotonic() + timeout_s
    while not done(seen.decode(errors="replace")):
        left = deadline - time.monotonic()
        assert left > 0, f"timed out; output so far: {seen.decode(errors='replace')[-3000:]!r}"
        ready, _, _ = select.select([fd], [], [], min(left, 1.0))
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # a pty whose other end has closed
                chunk = b""
            assert chunk, f"exited early (rc={proc.wait()}): {proc.stderr.read()!r}"
            seen += chunk
    return seen.decode(errors="replace")


def _ctrl_c(proc) -> str:
    """Send Ctrl-C; the watch must end with status 0 and no traceback. Returns stderr."""
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read().decode(errors="replace")
    assert code == 0, f"rc={code}, stderr: {err}"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    return err


def test_watch_options_are_checked_before_connecting(cli, ns):
    assert "--interval needs --watch" in fails(rk(cli, ns, "status", "--interval", "1"), code=2)
    assert "cannot be combined" in fails(rk(cli, ns, "groups", "describe", "g", "--watch", "--json"), code=2)
    assert "--interval" in fails(rk(cli, ns, "status", "--watch", "--interval", "0"), code=2)


def test_status_watch_redraws_in_a_terminal_until_ctrl_c(ray_head, cli, ns):
    topic = name("watched")
    ok(rk(cli, ns, "topics", "create", topic, "--partitions", "3"))
    primary, replica = pty.openpty()
    fcntl.ioctl(replica, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    proc = _start(ray_head, ns, "status", "--watch", "--interval", "0.5", stdout=replica)
    os.close(replica)
    try:
        seen = bytearray()
        # a live view on a terminal: redrawn in place, the topic's partitions in it
        text = _read_until(proc, primary, lambda t: t.count("every 0.5s") >= 3 and topic in t, 90, seen)
        assert "Ctrl-C to stop" in text
        assert "\x1b[" in text  # cursor movement: redrawn, not appended
        plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
        assert "Ray nodes: 1 alive, 0 dead" in plain
        assert re.search(rf"{re.escape(topic)}\s+2\s+[0-9a-f]{{12}}\s", plain), plain[-3000:]
        assert not WHOLE_NODE_ID.search(plain)  # tables show short node ids
        _ctrl_c(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(primary)


def test_group_describe_watch_shows_lag_change_until_ctrl_c(ray_head, cli, ns):
    topic, group = name("lagging"), name("g")
    ok(rk(cli, ns, "topics", "create", topic, "--partitions", "2"))
    ok(rk(cli, ns, "produce", topic, "-K", "=", input="".join(f"k{i}=v{i}\n" for i in range(10))))
    ok(rk(cli, ns, "consume", topic, "--group", group, "--from-beginning", "-c", "10"))

    # in a pipe: one plain snapshot per refresh
    proc = _start(
        ray_head, ns, "groups", "describe", group, "--watch", "--interval", "0.5", stdout=subprocess.PIPE
    )
    try:
        seen = bytearray()
        header = f"raykafka groups describe {group}  every 0.5s"
        text = _read_until(proc, proc.stdout.fileno(), lambda t: "total lag: 0" in t, 90, seen)
        assert text.startswith(header)
        assert "\x1b" not in text
        ok(rk(cli, ns, "produce", topic, input="late 1\nlate 2\nlate 3\n"))
        text = _read_until(proc, proc.stdout.fileno(), lambda t: "total lag: 3" in t, 60, seen)
        _ctrl_c(proc)
        text += proc.stdout.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    snapshots = [s for s in text.split("\n\n") if s.strip()]
    assert len(snapshots) >= 2 and all(s.startswith(header) for s in snapshots), text[-3000:]
    last = rows(snapshots[-1])
    assert last[1][:2] == ["Group:", group]
    assert last[2] == ["TOPIC", "PARTITION", "COMMITTED", "LAG", "MEMBER"]
    assert sum(int(r[3]) for r in last[3:]) == 3

    # an unknown group fails as without --watch: status 1, one line
    assert "nosuch" in fails(rk(cli, ns, "groups", "describe", "nosuch", "--watch"))
