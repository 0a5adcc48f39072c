"""A process for tests/storage/test_power_loss.py to kill, and the file operations both use.

Run as a script it executes each line read from stdin as Python (in this module's namespace)
and answers ``ok`` or ``error <exception>`` on stdout: the test drives the storage engine in
another process, as Ray drives a partition actor, with ``RAYKAFKA_TEST_FAULTS_DIR`` in its
environment, then SIGKILLs it. No Ray.
"""

from __future__ import annotations

import os
import sys

from raykafka.storage import faults
from raykafka.storage.checkpoint import fsync_dir


def write(path: str, data: bytes, *, fsync: bool, truncate: bool = False) -> None:
    """Append ``data`` to ``path`` (created if missing; emptied first if ``truncate``)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if truncate else os.O_APPEND)
    fd = faults.open_file(path, flags, 0o600)
    try:
        os.write(fd, data)
        if fsync:
            faults.fsync(fd, path)
    finally:
        os.close(fd)


def sync_dir(path: str) -> None:
    fsync_dir(path)


def main() -> None:
    namespace = globals()
    for line in sys.stdin:
        try:
            exec(compile(line, "<test>", "exec"), namespace)
            reply = "ok"
        except Exception as exc:
            reply = f"error {type(exc).__name__}: {exc}"
        print(reply.replace("\n", " "), flush=True)


if __name__ == "__main__":
    main()
