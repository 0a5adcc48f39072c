"""Test-only fault injection under the storage engine: off, and free, unless asked for.

Two tools, both for tests only.

**Errors.** Tests make chosen operations fail as a broken disk would -- an fsync with ``EIO``
(the "fsyncgate" case: Linux may report a lost write once and then let a retried fsync
succeed), a write with ``EIO``, ``ENOSPC`` or ``EROFS``, an open for writing with ``EROFS``
(a read-only disk) -- to prove the storage engine and the actors above it never turn such a
failure into a false success.

* In-process: ``inject("fsync", path_prefix, errno.EIO)``; ``clear()``. Operations:
  ``fsync`` (files and directories), ``write`` (appending to a segment), ``open`` (opening
  or creating a file for writing).
* In running actors (other processes): when ``RAYKAFKA_TEST_FAULTS_DIR`` is set in their
  environment (a test session sets it before Ray starts), every checked operation also
  reads ``<dir>/<op>`` if it exists: lines of ``<path prefix> <errno name>``. A test writes
  that file to break the disk under one replica directory, and removes it to heal it.

**Power loss** (in-process: the test drives the storage engine itself). After
``track_power_loss()`` the layer records what a machine crash would keep:

* the fsynced length of every file: each fsync records the file's length as it was when
  the fsync started (bytes written during it may not be covered). A file created while
  tracking and never fsynced has fsynced length 0; a file that existed before tracking
  began counts as on disk as it is;
* which directory entries (files and directories created, renamed, linked, unlinked) an
  fsync of their directory made durable: a change counts as durable once an fsync of its
  directory *started* after it (for a rename: the destination's directory -- a journaling
  file system commits a rename as one transaction).

``simulate_power_loss(root)`` (the storage engine stopped or abandoned first: its files
closed, its threads joined) then cuts every tracked file under ``root`` back to its fsynced
length and undoes, newest first, every entry change under ``root`` no directory fsync made
durable: a created file or directory disappears, an unlinked file comes back with its
fsynced bytes, a renamed file moves back to its old name and the file it replaced comes
back. Files are cut by writing the kept prefix to a new file renamed over the old name, so
memory maps of the old file (a reader's zero-copy slices) stay valid: no SIGBUS.
Simplifications, each harsher than or as harsh as a real machine, never kinder, except the
last: a cut is always to the fsynced length (a real disk may keep more); an undo whose
target is gone is skipped; whole directories removed by ``shutil.rmtree``
(``PartitionLog.destroy``) or ``rmdir`` are not tracked and stay removed.

The storage engine goes through this module only when ``ENABLED`` (a module constant read
at each call site: one attribute lookup when off)::

    fd = faults.open_file(path, flags, mode) if faults.ENABLED else os.open(path, flags, mode)
    if faults.ENABLED:
        faults.fsync(fd, path)      # check("fsync"), then fsync, then record what it covered
    else:
        os.fsync(fd)

``open_file``, ``fsync``, ``replace``, ``unlink``, ``link`` and ``mkdir`` are the system calls
with the checks and records around them; ``check(op, path)`` alone guards a write.
"""

from __future__ import annotations

import contextlib
import errno as errno_module
import itertools
import os
import shutil
import stat
import threading
from typing import NamedTuple

#: Operations a test can break.
OPERATIONS = ("fsync", "write", "open")

_CONTROL_DIR = os.environ.get("RAYKAFKA_TEST_FAULTS_DIR") or None
_injected: dict[str, list[tuple[str, int]]] = {op: [] for op in OPERATIONS}
ENABLED = _CONTROL_DIR is not None
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC


def inject(op: str, path_prefix: str | os.PathLike, error: int) -> None:
    """Make ``op`` fail with ``error`` (an errno) for every path under ``path_prefix``."""
    global ENABLED
    if op not in OPERATIONS:
        raise ValueError(f"op must be one of {OPERATIONS}, got {op!r}")
    _injected[op].append((os.fspath(path_prefix), error))
    ENABLED = True


def clear() -> None:
    """Forget injected errors and stop tracking power loss."""
    global ENABLED, _tracker
    for faults in _injected.values():
        faults.clear()
    _tracker = None
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


# -- the file layer: system calls with their checks and power-loss records -------------------


def open_file(path: str | os.PathLike, flags: int, mode: int = 0o777) -> int:
    """``os.open``; an open for writing is checked (``open``) and a file it creates recorded."""
    if flags & _WRITE_FLAGS:
        check("open", path)
    tracker = _tracker
    if tracker is None:
        return os.open(path, flags, mode)
    return tracker.open_file(os.fspath(path), flags, mode)


def fsync(fd: int, path: str | os.PathLike) -> None:
    """``os.fsync(fd)`` of the file or directory at ``path``: checked (``fsync``), and what it
    covered recorded."""
    check("fsync", path)
    tracker = _tracker
    if tracker is None:
        os.fsync(fd)
    else:
        tracker.fsync(fd, os.fspath(path))


def replace(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """``os.replace`` (also used for ``os.rename``: the same system call on POSIX), recorded."""
    tracker = _tracker
    if tracker is None:
        os.replace(src, dst)
    else:
        tracker.replace(os.fspath(src), os.fspath(dst))


def unlink(path: str | os.PathLike) -> None:
    """``os.unlink``, recorded (FileNotFoundError as from ``os.unlink``)."""
    tracker = _tracker
    if tracker is None:
        os.unlink(path)
    else:
        tracker.unlink(os.fspath(path))


def link(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """``os.link``: a new name for a file, recorded."""
    tracker = _tracker
    if tracker is None:
        os.link(src, dst)
    else:
        tracker.link(os.fspath(src), os.fspath(dst))


def mkdir(path: str | os.PathLike, mode: int = 0o777) -> None:
    """``os.mkdir``, recorded."""
    tracker = _tracker
    if tracker is None:
        os.mkdir(path, mode)
    else:
        tracker.mkdir(os.fspath(path), mode)


# -- power loss -----------------------------------------------------------------------------


def track_power_loss() -> None:
    """Start recording fsynced lengths and durable directory entries (forgetting earlier
    records). Files that exist now count as on disk as they are."""
    global ENABLED, _tracker
    _tracker = _PowerLossTracker()
    ENABLED = True


class PowerLoss(NamedTuple):
    """What ``simulate_power_loss`` took away."""

    bytes_cut: int  # from files past their fsynced length
    entries_undone: int  # directory entry changes no directory fsync had made durable


def simulate_power_loss(root: str | os.PathLike) -> PowerLoss:
    """Leave ``root`` as a machine crash would have left it (see the module docstring). The
    storage engine must be stopped first; tracking goes on, counting what is left as on disk."""
    if _tracker is None:
        raise RuntimeError("call faults.track_power_loss() before the storage engine writes")
    return _tracker.power_loss(_real(root))


def _real(path: str) -> str:
    """``path`` with its directory resolved (one spelling per directory), the name kept."""
    head, tail = os.path.split(os.path.abspath(path))
    return os.path.join(os.path.realpath(head), tail)


def _key(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


class _Change(NamedTuple):
    seq: int
    kind: str  # "create" (a file, directory or link), "rename", "unlink"
    directory: str  # whose fsync makes it durable
    path: str  # what was created or unlinked, or the rename's destination
    source: str | None  # the rename's source
    saved: bytes | None  # the fsynced bytes of the file an unlink or a rename removed


_tracker: _PowerLossTracker | None = None


class _PowerLossTracker:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._seq = itertools.count()
        self._synced: dict[tuple[int, int], tuple[int, str]] = {}  # inode -> (fsynced length, path)
        self._pending: list[_Change] = []  # entry changes not yet durable, oldest first

    # -- recording --

    def open_file(self, path: str, flags: int, mode: int) -> int:
        with self._lock:
            existed = bool(flags & os.O_CREAT) and os.path.lexists(path)
            fd = os.open(path, flags, mode)
            if flags & os.O_CREAT and not existed:
                self._created(path, _key(os.fstat(fd)))
            elif flags & os.O_TRUNC:
                self._synced[_key(os.fstat(fd))] = (0, _real(path))
            return fd

    def fsync(self, fd: int, path: str) -> None:
        st = os.fstat(fd)  # what the fsync is sure to cover: the length before it starts
        with self._lock:
            mark = next(self._seq)
        os.fsync(fd)
        with self._lock:
            if stat.S_ISDIR(st.st_mode):
                directory = _real(path)
                self._pending = [c for c in self._pending if c.seq > mark or c.directory != directory]
            else:
                self._synced[_key(st)] = (st.st_size, _real(path))

    def replace(self, src: str, dst: str) -> None:
        with self._lock:
            saved = self._saved_bytes(dst)
            os.replace(src, dst)
            dst = _real(dst)
            self._record("rename", os.path.dirname(dst), dst, _real(src), saved)

    def unlink(self, path: str) -> None:
        with self._lock:
            saved = self._saved_bytes(path)
            os.unlink(path)
            path = _real(path)
            self._record("unlink", os.path.dirname(path), path, None, saved)

    def link(self, src: str, dst: str) -> None:
        with self._lock:
            os.link(src, dst)
            dst = _real(dst)
            self._record("create", os.path.dirname(dst), dst, None, None)

    def mkdir(self, path: str, mode: int) -> None:
        with self._lock:
            os.mkdir(path, mode)
            self._created(path, None)

    def _created(self, path: str, key: tuple[int, int] | None) -> None:
        path = _real(path)
        if key is not None:
            self._synced[key] = (0, path)
        self._record("create", os.path.dirname(path), path, None, None)

    def _record(self, kind: str, directory: str, path: str, source: str | None, saved: bytes | None) -> None:
        self._pending.append(_Change(next(self._seq), kind, directory, path, source, saved))

    def _saved_bytes(self, path: str) -> bytes | None:
        """The fsynced bytes of the file at ``path`` that is about to lose this name (None for
        no file or a directory); its record goes with its last name."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        length = self._synced.get(_key(st), (st.st_size, ""))[0]  # untracked: on disk as it is
        if st.st_nlink == 1:
            self._synced.pop(_key(st), None)
        with open(path, "rb") as f:
            return f.read(length)

    # -- the power loss --

    def power_loss(self, root: str) -> PowerLoss:
        def under(path: str | None) -> bool:
            return path is not None and path.startswith(root + os.sep)

        with self._lock:
            # Cut first: files restored below are new inodes whose numbers may have been freed
            # by files still in the records.
            bytes_cut = 0
            for directory, _dirs, names in os.walk(root):
                for name in names:
                    path = os.path.join(directory, name)
                    st = os.lstat(path)
                    length = self._synced.get(_key(st), (None,))[0]
                    if stat.S_ISREG(st.st_mode) and length is not None and st.st_size > length:
                        _keep_prefix(path, length, st)
                        bytes_cut += st.st_size - length
            lost = [c for c in self._pending if under(c.path) or under(c.source)]
            for change in reversed(lost):
                _undo(change)
            self._pending = [c for c in self._pending if c not in lost]
            self._synced = {k: v for k, v in self._synced.items() if not under(v[1])}
            return PowerLoss(bytes_cut, len(lost))


def _keep_prefix(path: str, length: int, st: os.stat_result) -> None:
    """Cut ``path`` to ``length`` bytes in a new file renamed over it (old maps stay valid)."""
    tmp = path + ".power-loss"
    with open(path, "rb") as f:
        data = f.read(length)
    _write_file(tmp, data, stat.S_IMODE(st.st_mode))
    os.replace(tmp, path)


def _write_file(path: str, data: bytes, mode: int = 0o600) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with open(fd, "wb") as f:
        f.write(data)


def _undo(change: _Change) -> None:
    path = change.path
    if change.kind == "create":
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    elif change.kind == "unlink":
        if change.saved is not None and not os.path.lexists(path):
            _write_file(path, change.saved)
    elif change.kind == "rename":
        assert change.source is not None
        if not os.path.lexists(path) or not os.path.isdir(os.path.dirname(change.source)):
            return  # gone since, or its old directory is: not feasible, leave it
        os.replace(path, change.source)
        if change.saved is not None:
            _write_file(path, change.saved)
