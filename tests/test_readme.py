"""The README runs top to bottom: its Python and bash blocks, in order, as a user follows it.

The blocks are read with pytest-codeblocks (the ``dev`` extra), and a block marked
``<!--pytest.mark.skip(...)-->`` above it is not run. Only these are: installing (pip,
``.ci/run``), ``ray start --head`` and ``ray stop`` (this test starts a head of its own on
free ports, and ``ray stop`` would stop every Ray on the machine), and the two-minute
benchmark. Everything else runs against a real ``ray start --head`` with a fresh data
directory and the README's own namespace (the default, ``raykafka``: a head of its own, so
no other test's topics are there): each Python block as a script of its own, each bash
block with ``bash -e -o pipefail``, from the checkout's root.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest_codeblocks = pytest.importorskip("pytest_codeblocks")

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
#: What a skipped block may contain: the test runs everything else.
SKIPPABLE = re.compile(r"pip install|\.ci/run|ray start|ray stop|raykafka bench")
BLOCK_TIMEOUT_S = 180


def readme_blocks() -> list[tuple[object, bool]]:
    """The README's Python and bash blocks in order, each with whether it is marked skip."""
    blocks = []
    for block in pytest_codeblocks.extract_from_file(README):
        if block.syntax not in ("python", "bash", "sh"):
            continue
        marks = [eval(mark, {"sys": sys, "pytest": pytest}).mark for mark in block.marks]
        skipped = any(m.name == "skip" or (m.name == "skipif" and m.args and bool(m.args[0])) for m in marks)
        blocks.append((block, skipped))
    return blocks


def test_the_readme_skips_only_installs_ray_start_stop_and_the_benchmark():
    blocks = readme_blocks()
    assert len(blocks) >= 8
    for block, skipped in blocks:
        where = f"README.md line {block.lineno}"
        if skipped:
            assert SKIPPABLE.search(block.code), f"{where}: a skipped block must be one the test cannot run"
        else:
            assert not SKIPPABLE.search(block.code), f"{where}: the test never runs this; mark it skip"
        # stream loops end by themselves, so that the README runs to its end
        if "create_message_streams(" in block.code or "consume_in_ray(" in block.code:
            assert "timeout_s=" in block.code, f"{where}: a stream loop needs a timeout_s"


def test_the_readme_runs_top_to_bottom(tmp_path, monkeypatch):
    from tests import ray_head

    # The README submits no Ray job: don't wait for the head's job API (seconds on 2 CPUs).
    monkeypatch.setattr(ray_head, "_jobs_api_up", lambda dashboard_url, env: True)
    head = ray_head.start_ray_head(tmp_path, data_dir=tmp_path / "data")
    env = dict(head.env)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.pop("RAYKAFKA_NAMESPACE", None)  # the README's namespace: the default
    outputs = []
    try:
        for block, skipped in readme_blocks():
            if skipped:
                continue
            if block.syntax == "python":
                script = tmp_path / f"readme_line_{block.lineno}.py"
                script.write_text(block.code)
                command = [sys.executable, str(script)]
            else:
                command = ["bash", "-e", "-o", "pipefail", "-c", block.code]
            started = time.monotonic()
            done = subprocess.run(
                command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S
            )
            took = time.monotonic() - started
            print(f"README.md line {block.lineno} ({block.syntax}): {took:.1f} s")  # with -s
            assert done.returncode == 0, (
                f"README.md line {block.lineno} failed (exit {done.returncode}):\n{block.code}\n"
                f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
            )
            assert "Traceback" not in done.stderr, done.stderr[-3000:]
            outputs.append((block, done.stdout))
    finally:
        head.stop()

    said = "\n".join(out for _, out in outputs)
    assert "deleted topic 'demo-" in said  # the demo cleaned up after itself
    assert "b'test message str'" in said and "b'value'" in said  # the stream read both records
    assert "2 records processed" in said  # consume_in_ray from the earliest offset
    cli = next(out for block, out in outputs if "raykafka consume" in block.code)
    assert sorted(re.findall(r"^[1-5]$", cli, re.M)) == ["1", "2", "3", "4", "5"]  # raykafka consume
    assert "[] []" in said  # the Python clean-up left no topic and no group
    # ... and no data: every replica directory of the README's topics is gone
    replicas = tmp_path / "data" / "namespaces" / "raykafka" / "replicas"
    assert not replicas.exists() or not any(replicas.iterdir()), sorted(replicas.iterdir())
