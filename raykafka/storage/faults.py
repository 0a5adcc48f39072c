"""Test-only fault injection under the storage engine: off, and free, unless asked for.

Tests make chosen operations fail as a broken disk would -- an fsync with ``EIO`` (the
"fsyncgate" case: Linux may report a lost write once and then let a retried fsync
succeed), a write with ``EIO`` or ``EROFS`` -- to prove the storage engine and the actors
above it never turn such a failure into a false success.

* In-process: ``inject("fsync", path_prefix, errno.EIO)``; ``clear()``.
* In running actors (other processes): when ``RAYKAFKA_TEST_FAULTS_DIR`` is set in their
  environment (a test session sets it before Ray starts), every checked operation also
  reads ``<dir>/<op>`` if it exists: lines of ``<path prefix> <errno name>``. A test writes
  that file to break the disk under one replica directory, and removes it to heal it.

The storage engine calls ``check(op, path)`` right before the real system call, only
when ``ENABLED`` (a module constant read at each call site: one attribute lookup when off).
"""

from __future__ import annotations

import errno as errno_module
import os

#: Operations a test can break.
OPERATIONS = ("fsync", "write")

_CONTROL_DIR = os.environ.get("RAYKAFKA_TEST_FAULTS_DIR") or None
_injected: dict[str, list[tuple[str, int]]] = {op: [] for op in OPERATIONS}
ENABLED = _CONTROL_DIR is not None


def inject(op: str, path_prefix: str | os.PathLike, error: int) -> None:
    """Make ``op`` fail with ``error`` (an errno) for every path under ``path_prefix``."""
    global ENABLED
    if op not in OPERATIONS:
        raise ValueError(f"op must be one of {OPERATIONS}, got {op!r}")
    _injected[op].append((os.fspath(path_prefix), error))
    ENABLED = True


def clear() -> None:
    global ENABLED
    for faults in _injected.values():
        faults.clear()
    ENABLED = _CONTROL_DIR is not None


def check(op: str, path: str | os.PathLike) -> None:
    """Raise the OSError a test injected for ``op`` on ``path``, if any."""
    path = os.fspath(path)
    for prefix, error in _injected[op] + _from_control_dir(op):
        if path.startswith(prefix):
            raise OSError(error, f"{os.strerror(error)} (injected by a test)", path)


def _from_control_dir(op: str) -> list[tuple[str, int]]:
    if _CONTROL_DIR is None:
        return []
    try:
        with open(os.path.join(_CONTROL_DIR, op)) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    faults = []
    for line in lines:
        prefix, _, name = line.strip().rpartition(" ")
        if prefix and hasattr(errno_module, name):
            faults.append((prefix, getattr(errno_module, name)))
    return faults
