"""Small durable files: atomic replace with fsync, directory fsync, offset checkpoints.

Two offsets of a log are not derivable from its segment files, so each lives in a file
of its own, in one format::

    log-start-offset.checkpoint   the log start (moved by delete_records and retention)
    recovery-point.checkpoint     every offset below it is known fsynced (Kafka's
                                  recovery-point-offset-checkpoint): recovery after an
                                  unclean stop CRC-scans only what lies at or past it
        line 1: "raykafka-<name> 1"   (format name and version)
        line 2: the offset, decimal

Each is replaced atomically (write tmp, fsync, rename, fsync the directory), so after a
crash it holds either the old or the new value, never a mix.
"""

from __future__ import annotations

import os

from . import faults
from .permissions import FILE_MODE

LOG_START_CHECKPOINT = "log-start-offset.checkpoint"
RECOVERY_POINT_CHECKPOINT = "recovery-point.checkpoint"
TMP_SUFFIX = ".tmp"


def fsync_dir(directory: str) -> None:
    """Make file creations, renames and unlinks in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if faults.ENABLED:
            faults.fsync(fd, directory)
        else:
            os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data``: all or nothing, durable when this returns."""
    tmp = path + TMP_SUFFIX
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = faults.open_file(tmp, flags, FILE_MODE) if faults.ENABLED else os.open(tmp, flags, FILE_MODE)
    try:
        if faults.ENABLED:
            faults.check("write", tmp)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if faults.ENABLED:
            faults.fsync(fd, tmp)
        else:
            os.fsync(fd)
    finally:
        os.close(fd)
    if faults.ENABLED:
        faults.replace(tmp, path)
    else:
        os.replace(tmp, path)
    fsync_dir(os.path.dirname(path) or ".")


def _header(file_name: str) -> str:
    return f"raykafka-{file_name.removesuffix('.checkpoint')} 1"


def write_offset_checkpoint(directory: str, file_name: str, offset: int) -> None:
    atomic_write(os.path.join(directory, file_name), f"{_header(file_name)}\n{offset}\n".encode())


def read_offset_checkpoint(directory: str, file_name: str) -> int | None:
    """The checkpointed offset; None when absent or unreadable."""
    try:
        with open(os.path.join(directory, file_name), "rb") as f:
            lines = f.read().decode("ascii").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    if len(lines) != 2 or lines[0] != _header(file_name) or not lines[1].isdigit():
        return None
    return int(lines[1])


def write_log_start_offset(directory: str, offset: int) -> None:
    write_offset_checkpoint(directory, LOG_START_CHECKPOINT, offset)


def read_log_start_offset(directory: str) -> int | None:
    """The checkpointed log start offset; None when absent or unreadable (then the first
    segment's base offset is used, which can only expose deleted-by-request records, never
    lose data)."""
    return read_offset_checkpoint(directory, LOG_START_CHECKPOINT)
