"""The chaos run's short mode (issue 15, item 4): a fixed seed's fault schedule on a real local
multi-node cluster -- every fault kind once -- and the checker's invariants over the whole
history: nothing acknowledged lost or moved, no offset served with two payloads, no duplicate,
no hole, no committed offset going backwards. Timings are reported, never asserted.

The run is ``python -m raykafka.chaos`` in a process of its own (it starts and shuts down its
own Ray cluster, apart from the test session's). On a failure the seed is in the message:
``python -m raykafka.chaos --short --seed <seed>`` replays the same schedule.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from raykafka.chaos.checker import check
from raykafka.chaos.history import History
from raykafka.chaos.schedule import FAULT_KINDS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SEED = 20261207
RUN_TIMEOUT_S = 540  # a stuck run is stopped (SIGTERM: it shuts its cluster down) and fails


@pytest.mark.timeout(RUN_TIMEOUT_S + 60)
def test_the_chaos_short_mode_keeps_every_invariant(tmp_path):
    out = tmp_path / "history.json"
    command = [sys.executable, "-m", "raykafka.chaos", "--short", "--seed", str(SEED), "--out", str(out)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    started = time.monotonic()
    run = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = run.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        run.send_signal(signal.SIGTERM)
        try:
            stdout, stderr = run.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            stdout, stderr = run.communicate()
        pytest.fail(f"chaos seed {SEED}: no verdict within {RUN_TIMEOUT_S} s\n{stderr[-4000:]}")
    print(f"chaos short mode, seed {SEED}: {time.monotonic() - started:.0f} s\n{stdout}")  # with -s
    assert run.returncode != 2 and out.exists(), (
        f"chaos seed {SEED}: the run failed (exit {run.returncode})\n{stderr[-6000:]}"
    )
    report = check(History.read(out))
    assert report.ok, f"chaos seed {SEED}: invariants violated\n{report.render()}"
    assert report.acknowledged > 0 and report.served >= report.acknowledged, report.render()
    assert len(report.faults) >= 8 and set(report.faults_by_kind) == set(FAULT_KINDS), report.render()
    assert run.returncode == 0, f"chaos seed {SEED}: exit {run.returncode}\n{stderr[-4000:]}"
