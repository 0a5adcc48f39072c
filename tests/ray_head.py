"""A real ``ray start --head`` for tests that need a cluster other processes join
(the CLI, ``ray job submit``, notebooks, the metrics endpoint).

Started with ``--block`` in its own process group so that every process it
spawns (GCS, raylet, dashboard, agents, workers) is killed with the group at
the end -- ``ray stop`` would also kill the test session's own local Ray.
Token authentication stays on: clients get the cluster's token through
``RAY_AUTH_MODE=token`` + ``RAY_AUTH_TOKEN`` in ``env``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_S = 90


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RayHead:
    address: str  # GCS address, for ray.init / --address
    dashboard_url: str  # for ray job submit
    metrics_port: int
    env: dict  # environment for client subprocesses (token auth, addresses)
    process: subprocess.Popen
    log_path: Path

    def run(self, *args: str, input: str | None = None, timeout: float = 120, check: bool = False):
        """Run a command (e.g. the raykafka CLI) with the cluster's environment."""
        return subprocess.run(
            list(args),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            check=check,
        )

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


def _jobs_api_up(dashboard_url: str, env: dict) -> bool:
    """`ray status` answers before the job API does; a first `ray job submit` could be refused."""
    probe = subprocess.run(
        ["ray", "job", "list", f"--address={dashboard_url}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    return probe.returncode == 0


def _token() -> str:
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH", Path.home() / ".ray" / "auth_token"))
    if "RAY_AUTH_TOKEN" in os.environ:
        return os.environ["RAY_AUTH_TOKEN"]
    if not path.exists():  # first Ray on this machine: let Ray make one
        subprocess.run(
            [sys.executable, "-m", "ray.scripts.scripts", "get-auth-token", "--generate"],
            capture_output=True,
            check=False,
        )
    return path.read_text().strip() if path.exists() else ""


def start_ray_head(tmp_dir: Path, *, data_dir: Path, num_cpus: int = 2) -> RayHead:
    port, dashboard_port, metrics_port = free_port(), free_port(), free_port()
    log_path = tmp_dir / "ray-head.log"
    env = dict(os.environ)
    env.update({"RAYKAFKA_DATA_DIR": str(data_dir), "RAY_AUTH_MODE": "token"})
    token = _token()
    if token:
        env["RAY_AUTH_TOKEN"] = token
    cmd = [
        "ray",
        "start",
        "--head",
        "--block",
        "--disable-usage-stats",
        f"--port={port}",
        f"--dashboard-port={dashboard_port}",
        "--dashboard-host=127.0.0.1",
        f"--metrics-export-port={metrics_port}",
        f"--num-cpus={num_cpus}",
        f"--ray-client-server-port={free_port()}",
        # every Ray's dashboard agent binds 52365 by default; another Ray holding it means no jobs here
        f"--dashboard-agent-listen-port={free_port()}",
    ]
    with open(log_path, "w") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    address = f"127.0.0.1:{port}"
    dashboard_url = f"http://127.0.0.1:{dashboard_port}"
    head = RayHead(address, dashboard_url, metrics_port, env, process, log_path)
    env["RAY_ADDRESS"] = address
    env["RAY_API_SERVER_ADDRESS"] = dashboard_url
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ray start exited early:\n{log_path.read_text()[-3000:]}")
        probe = subprocess.run(
            ["ray", "status", f"--address={address}"], capture_output=True, text=True, env=env
        )
        if probe.returncode == 0 and _jobs_api_up(dashboard_url, env):
            return head
        time.sleep(1)
    head.stop()
    raise RuntimeError(f"ray head did not come up in {START_TIMEOUT_S} s:\n{log_path.read_text()[-3000:]}")
