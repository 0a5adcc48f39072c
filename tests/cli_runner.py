"""The ``raykafka`` CLI run many times in one process: its entry point called as a function.

A ``raykafka`` subprocess pays ~2-3 s per command (Python, Ray's import and its client's
start-up) before the command itself runs for milliseconds. ``CliRunner`` starts one helper
process (this file run as a script) with a cluster's environment; each ``run`` sends it an
argv and stdin and gets back what ``raykafka.cli.main(argv)`` did: the exit status it passed
to ``sys.exit``, and everything written to file descriptors 1 and 2 -- Python's ``sys.stdout``
and ``sys.stderr`` and anything Ray's C++ side writes -- as a subprocess's pipes would have
had it. Stdin is a file holding ``input`` on descriptor 0. The helper connects to Ray on its
first command that needs Ray, as the CLI does, and stays connected (Ray cannot be
re-initialized elsewhere in one process): a command given ``--address`` must run in a real
subprocess (``RayHead.run``), as must everything about signals, terminals, ``raykafka`` on
PATH, and what a process does at exit.
"""

from __future__ import annotations

import base64
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

START_TIMEOUT_S = 60


@dataclass
class Ran:
    """What ``subprocess.run(..., capture_output=True)`` would have returned."""

    args: list[str]
    returncode: int
    stdout: str | bytes
    stderr: str | bytes


class CliRunner:
    """A helper process that runs CLI commands in-process; ``env`` is the cluster's environment."""

    def __init__(self, env: dict):
        self._proc = subprocess.Popen(
            [sys.executable, "-u", os.path.abspath(__file__)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # Ray's output between commands: no command's
            env=env,
        )
        self._read_line(START_TIMEOUT_S)  # imported raykafka.cli: ready

    def run(self, *args: str, input: str | bytes | None = None, timeout: float = 120, text: bool = True):
        """``raykafka *args`` with ``input`` on stdin; stdout and stderr as str (``text=False``: bytes)."""
        data = input.encode() if isinstance(input, str) else (input or b"")
        request = {"argv": list(args), "input": base64.b64encode(data).decode("ascii")}
        self._proc.stdin.write(json.dumps(request).encode() + b"\n")
        self._proc.stdin.flush()
        answer = json.loads(self._read_line(timeout))
        out, err = (base64.b64decode(answer[k]) for k in ("stdout", "stderr"))
        if text:
            out, err = out.decode(), err.decode()
        return Ran(["raykafka", *args], answer["returncode"], out, err)

    def _read_line(self, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        line = b""
        fd = self._proc.stdout.fileno()
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise subprocess.TimeoutExpired("cli_runner", timeout)
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"the CLI runner exited (rc={self._proc.wait()})")
                line += chunk
        return line

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


# -- the helper process ------------------------------------------------------------------------


def _run_one(main, argv: list[str], stdin_bytes: bytes) -> dict:
    """``main(argv)`` with fds 0, 1, 2 on temporary files; restores them afterwards."""
    import io

    saved = {fd: os.dup(fd) for fd in (0, 1, 2)}
    saved_streams = sys.stdin, sys.stdout, sys.stderr
    files = [tempfile.TemporaryFile() for _ in range(3)]  # noqa: SIM115 - closed below
    files[0].write(stdin_bytes)
    files[0].seek(0)
    try:
        for fd, f in enumerate(files):
            os.dup2(f.fileno(), fd)
        # New streams on the redirected descriptors, as a fresh process has (not a tty).
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8")
        sys.stderr = io.TextIOWrapper(
            io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace", line_buffering=True
        )
        try:
            main(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (BrokenPipeError, ValueError):  # closed by the command (broken pipe handling)
                pass
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        for fd, old in saved.items():
            os.dup2(old, fd)
            os.close(old)
    outputs = []
    for f in files[1:]:
        f.seek(0)
        outputs.append(base64.b64encode(f.read()).decode("ascii"))
    for f in files:
        f.close()
    return {"returncode": code, "stdout": outputs[0], "stderr": outputs[1]}


def _serve() -> None:
    requests = os.fdopen(os.dup(0), "rb")
    answers = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)  # between commands nothing reads stdin or writes the answer channel
    os.dup2(devnull, 1)
    os.close(devnull)
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - the process's own stdout, on /dev/null
    from raykafka.cli import main

    answers.write(b"ready\n")
    answers.flush()
    for line in requests:
        request = json.loads(line)
        answer = _run_one(main, request["argv"], base64.b64decode(request["input"]))
        answers.write(json.dumps(answer).encode() + b"\n")
        answers.flush()


if __name__ == "__main__":
    _serve()
