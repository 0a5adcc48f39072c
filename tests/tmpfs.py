"""A small tmpfs mounted for a test: a real disk that fills up. Needs root (CI runs as root);
skips with the reason where the mount is refused."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest


@contextlib.contextmanager
def mounted_tmpfs(path: Path, size_bytes: int):
    """Mount a tmpfs of ``size_bytes`` at ``path`` for the duration of the block."""
    path.mkdir(parents=True, exist_ok=True)
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mount.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs to fill a disk ({mount.stderr.strip() or 'mount failed'}); needs root"
        )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill_with_ballast(directory: Path, name: str = "ballast") -> Path:
    """Write a file until the device is full; returns it (delete it to free the space)."""
    ballast = directory / name
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        chunk = b"\0" * 4096
        while True:
            try:
                if os.write(fd, chunk) < len(chunk):
                    continue  # the last partial chunk: the next write says ENOSPC
            except OSError:
                break
    finally:
        os.close(fd)
    return ballast
