"""The example jobs, submitted with the Ray job CLI to a real `ray start --head` cluster (token auth on).

A producer job ships examples/sample.log, a second one generates events, and a consumer job in a
group must see every one of them (its `CONSUMED <n>` line, also checked through `ray job logs`).
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
JOB_API_WAIT_S = 90
GENERATED = 1500
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def submit(ray_head, *entrypoint: str, timeout: float = 150):
    """`ray job submit --working-dir examples -- <entrypoint>`: waits for the job; the CLI result."""
    return ray_head.run(
        "ray", "job", "submit", "--working-dir", str(EXAMPLES), "--", *entrypoint, timeout=timeout
    )


def output(result) -> str:
    text = ""
    for part in (result.stdout, result.stderr):
        text += part.decode(errors="replace") if isinstance(part, bytes) else part or ""
    return ANSI.sub("", text)


@pytest.fixture(scope="module")
def job_cluster(ray_head):
    """``ray_head`` once its job API accepts submissions (the dashboard and its agent start after GCS)."""
    deadline = time.monotonic() + JOB_API_WAIT_S
    last = None
    while time.monotonic() < deadline:
        try:
            last = ray_head.run(
                "ray", "job", "submit", "--no-wait", "--entrypoint-num-cpus=0", "--", "true", timeout=30
            )
        except subprocess.TimeoutExpired as exc:
            last = exc
            continue
        if last.returncode == 0:
            return ray_head
        time.sleep(1)
    pytest.fail(
        f"the cluster's job API did not accept a submission within {JOB_API_WAIT_S} s "
        f"('No available agent' means the dashboard agent could not bind its HTTP port -- 52365 unless "
        f"`ray start --dashboard-agent-listen-port` is given -- e.g. because another Ray on this machine "
        f"holds it):\n{output(last)[-2000:]}"
    )


def wait_for_job(ray_head, job_id: str, timeout: float = 150) -> str:
    """Poll `ray job status` until the job ends; its final status (SUCCEEDED, FAILED, STOPPED).

    The CLI prints e.g. "Job 'x' succeeded" once the job ended (and only the state name before that).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = ray_head.run("ray", "job", "status", job_id, timeout=60)
        found = re.search(r"Job '[^']+' (succeeded|failed|stopped)", output(status))
        if found:
            return found.group(1).upper()
        time.sleep(1)
    raise AssertionError(f"job {job_id} still running after {timeout} s")


def job_logs(ray_head, job_id: str) -> str:
    logs = ray_head.run("ray", "job", "logs", job_id, timeout=60)
    assert logs.returncode == 0, output(logs)[-2000:]
    return logs.stdout


def test_producer_and_consumer_jobs(job_cluster):
    topic = f"jobs-{uuid.uuid4().hex[:8]}"
    namespace = f"jobs-{uuid.uuid4().hex[:6]}"
    log_lines = sum(1 for line in (EXAMPLES / "sample.log").read_text().splitlines() if line)
    expected = log_lines + GENERATED

    # two producer jobs at once (--no-wait): one ships the log file, one generates events
    producers = {f"ship-{topic}": ["--file", "sample.log"], f"gen-{topic}": ["--count", str(GENERATED)]}
    for job_id, source in producers.items():
        submitted = job_cluster.run(
            "ray",
            "job",
            "submit",
            "--no-wait",
            "--submission-id",
            job_id,
            "--working-dir",
            str(EXAMPLES),
            "--",
            "python",
            "producer_job.py",
            "--topic",
            topic,
            *source,
            "--partitions",
            "2",
            "--namespace",
            namespace,
            timeout=120,
        )
        assert submitted.returncode == 0, output(submitted)[-3000:]

    # the consumer job (waits for the topic to appear, then for every message) runs to its end
    consumed = submit(
        job_cluster,
        "python",
        "consumer_job.py",
        "--topic",
        topic,
        "--group",
        "jobs-test",
        "--expect",
        str(expected),
        "--timeout",
        "90",
        "--namespace",
        namespace,
    )
    assert consumed.returncode == 0, output(consumed)[-3000:]
    counts = [int(n) for n in re.findall(r"^CONSUMED (\d+)$", consumed.stdout, re.MULTILINE)]
    assert counts == [expected], output(consumed)[-3000:]
    assert "duplicates 0" in consumed.stdout

    # the same line through `ray job logs` (what an operator or CI would scrape)
    job_id = re.search(r"Job '([^']+)' submitted successfully", output(consumed))
    assert job_id, output(consumed)[-2000:]
    assert f"CONSUMED {expected}" in job_logs(job_cluster, job_id.group(1))

    states = []
    for job_id, source in producers.items():
        assert wait_for_job(job_cluster, job_id) == "SUCCEEDED", job_logs(job_cluster, job_id)[-3000:]
        logs = job_logs(job_cluster, job_id)
        count = log_lines if source[0] == "--file" else GENERATED
        assert f"PRODUCED {count}" in logs, logs[-3000:]
        states.append(re.search(r"to (created|existing) topic", logs).group(1))
    assert sorted(states) == ["created", "existing"]  # exactly one job created the topic
