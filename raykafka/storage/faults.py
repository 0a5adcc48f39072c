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

**Power loss.** While tracking, the layer records what a machine crash would keep:

* the fsynced length of every file: each fsync records the file's length as it was when
  the fsync started (bytes written during it may not be covered). A file created while
  tracking and never fsynced has fsynced length 0; a file that existed before tracking
  began counts as on disk as it is;
* which directory entries (files and directories created, renamed, linked, unlinked) an
  fsync of their directory made durable: a change counts as durable once an fsync of its
  directory *started* after it (for a rename: the destination's directory -- a journaling
  file system commits a rename as one transaction).

A simulated power loss of ``root`` (the storage engine stopped, abandoned or killed first)
then cuts every tracked file under ``root`` back to its fsynced length and undoes, newest
first, every entry change under ``root`` no directory fsync made durable: a created file or
directory disappears, an unlinked file comes back with its fsynced bytes, a renamed file
moves back to its old name and the file it replaced comes back. Files are cut by writing the
kept prefix to a new file renamed over the old name, so memory maps of the old file (a
reader's zero-copy slices) stay valid: no SIGBUS. Tracking goes on afterwards, counting what
is left under ``root`` as on disk. Simplifications, each harsher than or as harsh as a real
machine, never kinder, except the last two: a cut is always to the fsynced length (a real
disk may keep more); an undo whose target is gone is skipped; whole directories removed by
``shutil.rmtree`` (``PartitionLog.destroy``) or ``rmdir`` are not tracked and stay removed;
an entry change a process was killed between making and recording (microseconds) counts as
durable.

Two ways to track, one record of events (``_Records``: what is durable, and the cut and the
undo) behind both:

* In-process (the test drives the storage engine itself): ``track_power_loss()``, then
  ``simulate_power_loss(root)``.
* In running actors (other processes, other Ray nodes on this machine): a test lists path
  prefixes in ``<dir>/track-power-loss`` (``track_power_loss_in(faults_dir, prefix)``); a
  process with ``RAYKAFKA_TEST_FAULTS_DIR=<dir>`` then appends each event under them as one
  JSON line to ``<dir>/power-loss.journal``, and keeps the files an unlink or a rename takes
  away under ``<dir>/power-loss-stash/`` (a hard link: nothing is copied; a replay deletes the
  ones no undo can need any more). The test kills the process (SIGKILL, or its Ray node
  removed without grace) and calls ``simulate_power_loss_from_journal(faults_dir, root)``,
  which replays the journal and cuts ``root`` exactly as the in-process simulation does.
  Without that control file a process reads it once per operation and records nothing.

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
import json
import os
import shutil
import stat
import tempfile
import threading
import uuid
from collections.abc import Callable
from typing import NamedTuple

#: Operations a test can break.
OPERATIONS = ("fsync", "write", "open")
#: Control file under ``RAYKAFKA_TEST_FAULTS_DIR``: path prefixes whose power loss to record.
TRACK_POWER_LOSS_FILE = "track-power-loss"
#: What processes tracking power loss record there, one JSON event a line.
JOURNAL_FILE = "power-loss.journal"
#: Where they keep the files an unlink or a rename removed (for the undo).
STASH_DIR = "power-loss-stash"

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
    """Forget injected errors and stop tracking power loss (in-process)."""
    global ENABLED, _tracker, _records
    for faults in _injected.values():
        faults.clear()
    if _tracker is not None:
        shutil.rmtree(_tracker.stash, ignore_errors=True)
    _tracker = _records = None
    ENABLED = _CONTROL_DIR is not None


def check(op: str, path: str | os.PathLike) -> None:
    """Raise the OSError a test injected for ``op`` on ``path``, if any."""
    path = os.fspath(path)
    for prefix, error in _injected[op] + _from_control_dir(op):
        if path.startswith(prefix):
            raise OSError(error, f"{os.strerror(error)} (injected by a test)", path)


def _read_control_file(name: str) -> list[str]:
    if _CONTROL_DIR is None:
        return []
    try:
        with open(os.path.join(_CONTROL_DIR, name)) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def _from_control_dir(op: str) -> list[tuple[str, int]]:
    faults = []
    for line in _read_control_file(op):
        prefix, _, name = line.strip().rpartition(" ")
        if prefix and hasattr(errno_module, name):
            faults.append((prefix, getattr(errno_module, name)))
    return faults


# -- the file layer: system calls with their checks and power-loss records -------------------


def open_file(path: str | os.PathLike, flags: int, mode: int = 0o777) -> int:
    """``os.open``; an open for writing is checked (``open``) and a file it creates recorded."""
    if flags & _WRITE_FLAGS:
        check("open", path)
    recorder = _recorder(path)
    if recorder is None:
        return os.open(path, flags, mode)
    return recorder.open_file(os.fspath(path), flags, mode)


def fsync(fd: int, path: str | os.PathLike) -> None:
    """``os.fsync(fd)`` of the file or directory at ``path``: checked (``fsync``), and what it
    covered recorded."""
    check("fsync", path)
    recorder = _recorder(path)
    if recorder is None:
        os.fsync(fd)
    else:
        recorder.fsync(fd, os.fspath(path))


def replace(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """``os.replace`` (also used for ``os.rename``: the same system call on POSIX), recorded."""
    recorder = _recorder(src, dst)
    if recorder is None:
        os.replace(src, dst)
    else:
        recorder.replace(os.fspath(src), os.fspath(dst))


def unlink(path: str | os.PathLike) -> None:
    """``os.unlink``, recorded (FileNotFoundError as from ``os.unlink``)."""
    recorder = _recorder(path)
    if recorder is None:
        os.unlink(path)
    else:
        recorder.unlink(os.fspath(path))


def link(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """``os.link``: a new name for a file, recorded."""
    recorder = _recorder(dst)
    if recorder is None:
        os.link(src, dst)
    else:
        recorder.link(os.fspath(src), os.fspath(dst))


def mkdir(path: str | os.PathLike, mode: int = 0o777) -> None:
    """``os.mkdir``, recorded."""
    recorder = _recorder(path)
    if recorder is None:
        os.mkdir(path, mode)
    else:
        recorder.mkdir(os.fspath(path), mode)


# -- power loss -----------------------------------------------------------------------------


class PowerLoss(NamedTuple):
    """What a simulated power loss took away."""

    bytes_cut: int  # from files past their fsynced length
    entries_undone: int  # directory entry changes no directory fsync had made durable


def track_power_loss() -> None:
    """Start recording fsynced lengths and durable directory entries in this process (forgetting
    earlier records). Files that exist now count as on disk as they are."""
    global ENABLED, _tracker, _records
    if _tracker is not None:
        shutil.rmtree(_tracker.stash, ignore_errors=True)
    _records = _Records()
    _tracker = _Recorder(_records.apply, tempfile.mkdtemp(prefix="raykafka-power-loss-"))
    ENABLED = True


def simulate_power_loss(root: str | os.PathLike) -> PowerLoss:
    """Leave ``root`` as a machine crash would have left it (see the module docstring). The
    storage engine must be stopped first; tracking goes on, counting what is left as on disk."""
    if _records is None:
        raise RuntimeError("call faults.track_power_loss() before the storage engine writes")
    return _records.power_loss(_real(root))


def track_power_loss_in(faults_dir: str | os.PathLike, path_prefix: str | os.PathLike) -> None:
    """Make every process with ``RAYKAFKA_TEST_FAULTS_DIR=faults_dir`` record the power loss of
    the files under ``path_prefix`` from its next operation on (``<faults_dir>/track-power-loss``;
    remove that file to stop). Files that exist before count as on disk as they are."""
    with open(os.path.join(faults_dir, TRACK_POWER_LOSS_FILE), "a") as f:
        f.write(os.fspath(path_prefix) + "\n")


def simulate_power_loss_from_journal(faults_dir: str | os.PathLike, root: str | os.PathLike) -> PowerLoss:
    """Leave ``root`` as a machine crash would have left it, from what the processes tracking it
    journaled under ``faults_dir`` (``track_power_loss_in``). They must be dead first (SIGKILL,
    or their Ray node removed); a process that goes on writing under ``root`` is not covered.
    Later simulations count what is left under ``root`` now as on disk."""
    faults_dir, root = os.fspath(faults_dir), _real(root)
    records = _Records()
    journal = os.path.join(faults_dir, JOURNAL_FILE)
    with contextlib.suppress(FileNotFoundError), open(journal) as f:
        for line in f:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # the last line of a process killed while writing it
            records.apply(event)
    lost = records.power_loss(root)
    _append_line(journal, ["power_loss", root])  # the next replay forgets what came before
    return lost


def _real(path: str | os.PathLike) -> str:
    """``path`` with its directory resolved (one spelling per directory), the name kept."""
    head, tail = os.path.split(os.path.abspath(path))
    return os.path.join(os.path.realpath(head), tail)


def _key(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _append_line(path: str, event: list) -> None:
    """One ``write`` in append mode: lines from several processes never interleave."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (json.dumps(event) + "\n").encode())
    finally:
        os.close(fd)


_tracker: _Recorder | None = None  # in-process tracking: records to _records
_records: _Records | None = None
_journal_recorder: _Recorder | None = None  # this process's, once a control file asked


def _recorder(*paths: str | os.PathLike) -> _Recorder | None:
    """Who records an operation on ``paths``: this process's tracker, else the journal if the
    control directory's ``track-power-loss`` lists a prefix of one of them, else nobody."""
    if _tracker is not None:
        return _tracker
    if _CONTROL_DIR is None:
        return None
    prefixes = [line.strip() for line in _read_control_file(TRACK_POWER_LOSS_FILE) if line.strip()]
    if not any(os.fspath(p).startswith(prefix) for p in paths for prefix in prefixes):
        return None
    global _journal_recorder
    if _journal_recorder is None:
        journal = os.path.join(_CONTROL_DIR, JOURNAL_FILE)
        _journal_recorder = _Recorder(lambda event: _append_line(journal, event), None)
    return _journal_recorder


class _Recorder:
    """The system calls, each with the events that record it, handed to ``sink`` in the order
    they happened (a lock per process). Files an unlink or a rename removes are kept in
    ``stash`` (a hard link, else a copy) for the undo; None: ``<control dir>/power-loss-stash``."""

    def __init__(self, sink: Callable[[list], None], stash: str | None) -> None:
        self._sink = sink
        self._lock = threading.RLock()
        self._names = (f"{uuid.uuid4().hex[:12]}-{n}" for n in itertools.count())  # unique per event
        self._stash = stash

    @property
    def stash(self) -> str:
        if self._stash is None:
            assert _CONTROL_DIR is not None
            self._stash = os.path.join(_CONTROL_DIR, STASH_DIR)
            os.makedirs(self._stash, exist_ok=True)
        return self._stash

    def open_file(self, path: str, flags: int, mode: int) -> int:
        with self._lock:
            existed = bool(flags & os.O_CREAT) and os.path.lexists(path)
            fd = os.open(path, flags, mode)
            if flags & os.O_CREAT and not existed:
                self._sink(["create", _real(path), *_key(os.fstat(fd))])
            elif flags & os.O_TRUNC:
                self._sink(["synced", *_key(os.fstat(fd)), 0, _real(path)])
            return fd

    def fsync(self, fd: int, path: str) -> None:
        st = os.fstat(fd)  # what the fsync is sure to cover: the length before it starts
        directory = stat.S_ISDIR(st.st_mode)
        if directory:
            with self._lock:
                token = next(self._names)
                self._sink(["dir_fsync_started", token, _real(path)])
        os.fsync(fd)
        with self._lock:
            if directory:
                self._sink(["dir_fsync_done", token])
            else:
                self._sink(["synced", *_key(st), st.st_size, _real(path)])

    def replace(self, src: str, dst: str) -> None:
        with self._lock:
            removed = self._keep(dst)
            try:
                os.replace(src, dst)
            except BaseException:
                self._drop(removed)
                raise
            self._sink(["rename", _real(src), _real(dst), *removed])

    def unlink(self, path: str) -> None:
        with self._lock:
            removed = self._keep(path)
            try:
                os.unlink(path)
            except BaseException:
                self._drop(removed)
                raise
            self._sink(["unlink", _real(path), *removed])

    def link(self, src: str, dst: str) -> None:
        with self._lock:
            os.link(src, dst)
            self._sink(["create", _real(dst), None, None])

    def mkdir(self, path: str, mode: int) -> None:
        with self._lock:
            os.mkdir(path, mode)
            self._sink(["create", _real(path), None, None])

    def _keep(self, path: str) -> list:
        """Before ``path`` loses its name: ``[kept copy, dev, inode, link count]`` of the regular
        file there (the copy a hard link in the stash: nothing is read), Nones if none."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return [None, None, None, None]
        if not stat.S_ISREG(st.st_mode):
            return [None, None, None, None]
        kept = os.path.join(self.stash, next(self._names))
        try:
            os.link(path, kept)
        except OSError:  # another file system (EXDEV), or no hard links there
            shutil.copyfile(path, kept)
        return [kept, *_key(st), st.st_nlink]

    @staticmethod
    def _drop(removed: list) -> None:
        if removed[0] is not None:
            os.unlink(removed[0])


class _Change(NamedTuple):
    seq: int
    kind: str  # "create" (a file, directory or link), "rename", "unlink"
    directory: str  # whose fsync makes it durable
    path: str  # what was created or unlinked, or the rename's destination
    source: str | None  # the rename's source
    removed: tuple[str, int | None] | None  # (kept copy, fsynced length or None: all of it)


class _Records:
    """What a machine crash would keep, built from the events of ``_Recorder`` in their order;
    ``power_loss`` applies it to a directory tree. One implementation for both ways to track."""

    def __init__(self) -> None:
        self._seq = itertools.count()
        self._synced: dict[tuple[int, int], tuple[int, str]] = {}  # inode -> (fsynced length, path)
        self._pending: list[_Change] = []  # entry changes not yet durable, oldest first
        self._fsyncs: dict[str, tuple[int, str]] = {}  # directory fsyncs under way: token -> (mark, dir)

    def apply(self, event: list) -> None:
        kind, *args = event
        if kind == "synced":
            dev, ino, length, path = args
            self._synced[(dev, ino)] = (length, path)
        elif kind == "create":
            path, dev, ino = args
            if dev is not None:
                self._synced[(dev, ino)] = (0, path)
            self._record("create", path, None, None)
        elif kind == "dir_fsync_started":
            token, directory = args
            self._fsyncs[token] = (next(self._seq), directory)
        elif kind == "dir_fsync_done":
            if args[0] not in self._fsyncs:
                return  # its start was journaled before the journal this replay reads
            mark, directory = self._fsyncs.pop(args[0])
            durable = [c for c in self._pending if c.seq < mark and c.directory == directory]
            _discard_kept(durable)
            self._pending = [c for c in self._pending if c not in durable]
        elif kind in ("rename", "unlink"):
            if kind == "rename":
                source, path, kept, dev, ino, links = args
            else:
                path, kept, dev, ino, links = args
                source = None
            removed = None
            if kept is not None:
                # its record goes with its last name; untracked: on disk as it was
                length = self._synced.get((dev, ino), (None, ""))[0]
                if links == 1:
                    self._synced.pop((dev, ino), None)
                removed = (kept, length)
            self._record(kind, path, source, removed)
        elif kind == "power_loss":
            self._forget(args[0], self._pending)
        else:
            raise ValueError(f"unknown power-loss event {event!r}")

    def _record(self, kind: str, path: str, source: str | None, removed: tuple | None) -> None:
        change = _Change(next(self._seq), kind, os.path.dirname(path), path, source, removed)
        self._pending.append(change)

    def power_loss(self, root: str) -> PowerLoss:
        # Cut first: files restored below are new inodes whose numbers may have been freed by
        # files still in the records.
        bytes_cut = 0
        for directory, _dirs, names in os.walk(root):
            for name in names:
                path = os.path.join(directory, name)
                st = os.lstat(path)
                length = self._synced.get(_key(st), (None,))[0]
                if stat.S_ISREG(st.st_mode) and length is not None and st.st_size > length:
                    _keep_prefix(path, length, st)
                    bytes_cut += st.st_size - length
        lost = [c for c in self._pending if _under(c.path, root) or _under(c.source, root)]
        for change in reversed(lost):
            _undo(change)
        self._forget(root, lost)
        return PowerLoss(bytes_cut, len(lost))

    def _forget(self, root: str, changes: list[_Change]) -> None:
        """What is under ``root`` now is on disk: drop its records (and ``changes``' kept files)."""
        gone = [c for c in changes if _under(c.path, root) or _under(c.source, root)]
        _discard_kept(gone)
        self._pending = [c for c in self._pending if c not in gone]
        self._synced = {k: v for k, v in self._synced.items() if not _under(v[1], root)}


def _discard_kept(changes: list[_Change]) -> None:
    """The files ``changes`` kept for an undo that can no longer happen (the same decision at
    every replay of a journal, so a later one never needs them either)."""
    for change in changes:
        if change.removed is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(change.removed[0])


def _under(path: str | None, root: str) -> bool:
    return path is not None and path.startswith(root + os.sep)


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


def _removed_bytes(change: _Change) -> bytes:
    assert change.removed is not None
    kept, length = change.removed
    with open(kept, "rb") as f:
        return f.read() if length is None else f.read(length)


def _undo(change: _Change) -> None:
    path = change.path
    if change.kind == "create":
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    elif change.kind == "unlink":
        if change.removed is not None and not os.path.lexists(path):
            _write_file(path, _removed_bytes(change))
    elif change.kind == "rename":
        assert change.source is not None
        if not os.path.lexists(path) or not os.path.isdir(os.path.dirname(change.source)):
            return  # gone since, or its old directory is: not feasible, leave it
        os.replace(path, change.source)
        if change.removed is not None:
            _write_file(path, _removed_bytes(change))
