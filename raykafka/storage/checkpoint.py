"""Small durable files: atomic replace with fsync, directory fsync, the log-start checkpoint.

The log start offset (moved by ``delete_records`` and retention) is the only log state
that is not derivable from the segment files, so it lives in its own file::

    log-start-offset.checkpoint   (text, ASCII)
        line 1: "raykafka-log-start-offset 1"   (format name and version)
        line 2: the offset, decimal

It is replaced atomically (write tmp, fsync, rename, fsync the directory), so after a
crash it holds either the old or the new value, never a mix.
"""

from __future__ import annotations

import os

LOG_START_CHECKPOINT = "log-start-offset.checkpoint"
_CHECKPOINT_HEADER = "raykafka-log-start-offset 1"
TMP_SUFFIX = ".tmp"


def fsync_dir(directory: str) -> None:
    """Make file creations, renames and unlinks in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data``: all or nothing, durable when this returns."""
    tmp = path + TMP_SUFFIX
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path) or ".")


def write_log_start_offset(directory: str, offset: int) -> None:
    atomic_write(os.path.join(directory, LOG_START_CHECKPOINT), f"{_CHECKPOINT_HEADER}\n{offset}\n".encode())


def read_log_start_offset(directory: str) -> int | None:
    """The checkpointed log start offset; None when absent or unreadable (then the first
    segment's base offset is used, which can only expose deleted-by-request records, never
    lose data)."""
    try:
        with open(os.path.join(directory, LOG_START_CHECKPOINT), "rb") as f:
            lines = f.read().decode("ascii").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    if len(lines) != 2 or lines[0] != _CHECKPOINT_HEADER or not lines[1].isdigit():
        return None
    return int(lines[1])
