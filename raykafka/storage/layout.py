"""Where raykafka keeps things on a node, who owns each directory, and how that is checked.

The layout (docs/FORMAT.md section 0 draws it)::

    <data_dir>/namespaces/<namespace>/          one Ray namespace's data on this node
        meta.properties                         kind=namespace, the cluster id
        metadata/                               the TopicManager's (head node)
        groups/<group_id>/                      one GroupCoordinator's committed offsets
        replicas/<topic>-<partition>/<replica_id>/   one PartitionActor's log

A namespace is part of every path, so two namespaces on one ``data_dir`` never see each
other's topics, groups or records. Every owned directory carries an identity file,
``meta.properties`` (Kafka's ``meta.properties`` in each log directory is the anchor):
format version, kind, namespace, the cluster id the TopicManager created once, and the
owner (``topic-partition/replica_id``, a group id). It is written when the directory is
created and checked on every open; a directory that names another namespace, owner or
cluster is refused (``IdentityMismatch``), never adopted.

Every owned directory is also locked for its owner's lifetime with
``flock(LOCK_EX | LOCK_NB)`` on ``<dir>/.lock`` (Kafka's ``.lock`` per log directory):
a second opener -- another namespace's actor, a zombie of a re-placed replica, a second
Ray cluster on the machine -- fails at once with ``DirectoryLocked``. The kernel drops
the lock when the owning process dies, so a restarted owner finds it free.

The layout before namespaces (``<data_dir>/metadata``, ``groups``, ``replicas`` directly
under the data directory) is migrated by renames: metadata and groups into the default
namespace (``adopt_legacy_layout``), each replica directory by the replica that owns it
(replica ids are unique, so the owner is known; ``claim_legacy_replica``).

Pure: files only, no Ray.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from . import faults
from .checkpoint import atomic_write, fsync_dir
from .errors import StorageError
from .permissions import FILE_MODE, make_dirs

#: The layout's version, written in every identity file; a newer one is refused.
LAYOUT_VERSION = 1
IDENTITY_FILE = "meta.properties"
LOCK_FILE = ".lock"
#: Serializes moves out of the pre-namespace layout between processes on one node.
MIGRATION_LOCK_FILE = ".layout-migration.lock"
NAMESPACES_DIR = "namespaces"
#: The names the layout before namespaces put directly under the data directory.
LEGACY_DIRS = ("metadata", "groups", "replicas")


class DirectoryLocked(StorageError):
    """Another process (or another owner in this one) holds the directory's lock."""


class IdentityMismatch(StorageError):
    """A directory's identity file names another namespace, owner, cluster or a newer format."""


@dataclass(frozen=True)
class Identity:
    """What ``meta.properties`` says about a directory."""

    kind: str  # "namespace" | "metadata" | "group" | "replica"
    namespace: str
    cluster_id: str | None
    owner: str  # "" for namespace/metadata; the group id; "<topic>-<partition>/<replica_id>"
    version: int = LAYOUT_VERSION

    def render(self) -> bytes:
        lines = [
            "# raykafka directory identity: checked on every open (docs/FORMAT.md)",
            f"version={self.version}",
            f"kind={self.kind}",
            f"namespace={_quote(self.namespace)}",
            f"cluster.id={self.cluster_id or ''}",
            f"owner={_quote(self.owner)}",
        ]
        return ("\n".join(lines) + "\n").encode()

    @classmethod
    def parse(cls, text: str, path: Path) -> Identity:
        fields = {}
        for line in text.splitlines():
            if line.strip() and not line.startswith("#"):
                key, sep, value = line.partition("=")
                if not sep:
                    raise IdentityMismatch(f"{path}: unreadable line {line!r}; remove the file to adopt it")
                fields[key.strip()] = value.strip()
        try:
            return cls(
                kind=fields["kind"],
                namespace=_unquote(fields["namespace"]),
                cluster_id=fields.get("cluster.id") or None,
                owner=_unquote(fields.get("owner", "")),
                version=int(fields["version"]),
            )
        except (KeyError, ValueError) as exc:
            raise IdentityMismatch(
                f"{path}: incomplete identity ({exc}); remove the file to adopt it"
            ) from None


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def _unquote(text: str) -> str:
    return urllib.parse.unquote(text)


# -- paths --------------------------------------------------------------------------------


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """The data directory on THIS node: explicit, else $RAYKAFKA_DATA_DIR, else ~/.raykafka/data."""
    chosen = data_dir or os.environ.get("RAYKAFKA_DATA_DIR") or "~/.raykafka/data"
    return Path(chosen).expanduser().resolve()


def namespace_root(data_dir: Path, namespace: str) -> Path:
    """``<data_dir>/namespaces/<namespace>``; any Ray namespace string maps to one safe name."""
    if not namespace:
        raise ValueError("namespace must be a non-empty str")
    name = _quote(namespace)
    if name in (".", ".."):
        name = name.replace(".", "%2E")
    return Path(data_dir) / NAMESPACES_DIR / name


def metadata_directory(root: Path) -> Path:
    return root / "metadata"


def group_directory(root: Path, group_id: str) -> Path:
    """``<root>/groups/<group_id>``, never outside ``<root>/groups``."""
    base = (root / "groups").resolve()
    path = (base / group_id).resolve()
    if path.parent != base:
        raise ValueError(f"group directory {path} would lie outside {base}")
    return path


def replica_directory(root: Path, topic: str, partition: int, replica_id: str) -> Path:
    """``<root>/replicas/<topic>-<partition>/<replica_id>``, never outside ``<root>/replicas``.

    ``<topic>-<partition>`` is at most 249 + 1 + 4 characters (Kafka's limits), within a
    file name's 255; the replica id gets a level of its own for that reason.
    """
    base = (root / "replicas").resolve()
    path = (base / f"{topic}-{partition}" / replica_id).resolve()
    if path.parent.parent != base:  # a validated topic name cannot do this; refuse anyway
        raise ValueError(f"replica directory {path} would lie outside {base}")
    return path


def replica_owner(topic: str, partition: int, replica_id: str) -> str:
    return f"{topic}-{partition}/{replica_id}"


# -- identity -----------------------------------------------------------------------------


def read_identity(directory: Path) -> Identity | None:
    path = Path(directory) / IDENTITY_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return Identity.parse(text, path)


def check_identity(directory: Path, expected: Identity) -> Identity:
    """Write ``expected`` into a directory that has no identity yet; else check it matches.

    A stored identity without a cluster id (adopted from the layout before identities) takes
    ``expected``'s. Raises IdentityMismatch naming what differs and what to do."""
    directory = Path(directory)
    stored = read_identity(directory)
    adopting = (
        stored is not None
        and stored.cluster_id is None
        and (stored.kind, stored.namespace, stored.owner)
        == (expected.kind, expected.namespace, expected.owner)
    )
    if stored is None or adopting:
        make_dirs(directory)
        atomic_write(str(directory / IDENTITY_FILE), expected.render())
        return expected
    if stored.version > LAYOUT_VERSION:
        raise IdentityMismatch(
            f"{directory} was written by a newer raykafka (layout version {stored.version}, this one "
            f"reads {LAYOUT_VERSION}); upgrade raykafka on this node"
        )
    for what, have, want in (
        ("kind", stored.kind, expected.kind),
        ("namespace", stored.namespace, expected.namespace),
        ("owner", stored.owner, expected.owner),
    ):
        if have != want:
            raise IdentityMismatch(
                f"{directory} belongs to {what} {have!r}, not {want!r}; it is not this owner's data"
            )
    if expected.cluster_id and stored.cluster_id and stored.cluster_id != expected.cluster_id:
        raise IdentityMismatch(
            f"{directory} belongs to raykafka cluster {stored.cluster_id} of namespace "
            f"{stored.namespace!r}, not {expected.cluster_id}: its metadata was lost or it was "
            f"copied from elsewhere; move it away to start this replica empty"
        )
    return stored


def namespace_cluster_id(root: Path, namespace: str, proposed: str) -> str:
    """The cluster id recorded in ``root``'s identity, recording ``proposed`` if none is.

    Creation is race-free between processes: the identity is linked into place, so the
    first writer wins and everyone else reads its id."""
    make_dirs(root)
    stored = read_identity(root)
    if stored is None:
        tmp = root / f"{IDENTITY_FILE}.{os.getpid()}.{time.monotonic_ns()}.tmp"
        atomic_write(str(tmp), Identity("namespace", namespace, proposed, "").render())
        try:
            if faults.ENABLED:
                faults.link(tmp, root / IDENTITY_FILE)
            else:
                os.link(tmp, root / IDENTITY_FILE)
            fsync_dir(str(root))
        except FileExistsError:
            pass
        finally:
            with contextlib.suppress(FileNotFoundError):
                _unlink(tmp)
        stored = read_identity(root)
    assert stored is not None
    if stored.kind != "namespace" or stored.namespace != namespace:
        raise IdentityMismatch(f"{root} belongs to namespace {stored.namespace!r}, not {namespace!r}")
    if stored.cluster_id is None:
        raise IdentityMismatch(f"{root}/{IDENTITY_FILE} has no cluster id; remove the file to adopt it")
    return stored.cluster_id


# -- locks --------------------------------------------------------------------------------


class DirectoryLock:
    """An exclusive ``flock`` on ``<directory>/.lock`` (or ``file_name``), held until ``release``.

    ``acquire`` retries for ``wait_s`` (a previous owner may still be exiting), then raises
    DirectoryLocked; with ``blocking`` it waits as long as it takes (a short critical section
    of another process). flock locks belong to an open file description, so a second
    DirectoryLock on the same directory in the same process is refused too."""

    def __init__(self, directory: Path, owner: str, file_name: str = LOCK_FILE):
        self.directory = Path(directory)
        self.owner = owner
        self.file_name = file_name
        self._fd: int | None = None

    def acquire(self, wait_s: float = 0.0, retry_s: float = 0.1, *, blocking: bool = False) -> DirectoryLock:
        make_dirs(self.directory)
        deadline = time.monotonic() + wait_s
        fd = _open_for_write(self.directory / self.file_name)
        if blocking:
            fcntl.flock(fd, fcntl.LOCK_EX)
        while not blocking:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                if time.monotonic() >= deadline:
                    holder = _read_holder(fd)
                    os.close(fd)
                    raise DirectoryLocked(
                        f"{self.directory} is in use by another owner ({holder or 'unknown process'}); "
                        f"{self.owner} cannot open it. Two owners of one directory would overwrite each "
                        f"other's data"
                    ) from None
                time.sleep(retry_s)
        # Who holds it, for the message a second opener gets (informational only).
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid={os.getpid()} owner={self.owner}\n".encode(), 0)
        self._fd = fd
        return self

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the description drops the flock


def _read_holder(fd: int) -> str:
    try:
        return os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        return ""


def open_owned_directory(directory: Path, identity: Identity, wait_s: float = 0.0) -> DirectoryLock:
    """Lock ``directory`` for ``identity``'s owner, then check (or write) its identity.

    The lock comes first: a directory is only ever checked or written by its one owner."""
    lock = DirectoryLock(directory, f"{identity.kind} {identity.owner or identity.namespace}".strip())
    lock.acquire(wait_s)
    try:
        check_identity(directory, identity)
    except BaseException:
        lock.release()
        raise
    return lock


# -- the layout before namespaces ----------------------------------------------------------


def legacy_layout_present(data_dir: Path) -> bool:
    return any((Path(data_dir) / name).is_dir() for name in ("metadata", "groups"))


def adopt_legacy_layout(data_dir: Path, root: Path) -> list[str]:
    """Move ``<data_dir>/metadata`` and ``<data_dir>/groups/*`` into ``root`` (the default
    namespace's directory), each only where ``root`` has none yet. Returns what moved.

    Replica directories are not moved here: each replica claims its own when it opens
    (``claim_legacy_replica``), on whichever node holds it."""
    data_dir = Path(data_dir)
    moved: list[str] = []
    if not legacy_layout_present(data_dir):
        return moved
    lock = _migration_lock_acquire(data_dir)
    try:
        old_meta = data_dir / "metadata"
        if old_meta.is_dir() and not metadata_directory(root).exists():
            make_dirs(root)
            _rename(old_meta, metadata_directory(root))
            moved.append("metadata")
        old_groups = data_dir / "groups"
        if old_groups.is_dir():
            make_dirs(root / "groups")
            for entry in sorted(old_groups.iterdir()):
                target = root / "groups" / entry.name
                if entry.is_dir() and not target.exists():
                    _rename(entry, target)
                    moved.append(f"groups/{entry.name}")
            _rmdir_if_empty(old_groups)
        if moved:
            fsync_dir(str(root))
            fsync_dir(str(data_dir))
    finally:
        lock.release()
    return moved


def claim_legacy_replica(data_dir: Path, target: Path, topic: str, partition: int, replica_id: str) -> bool:
    """Move this replica's directory from the layout before namespaces to ``target`` if it is
    there and ``target`` is not. Returns whether it moved."""
    data_dir = Path(data_dir)
    old = data_dir / "replicas" / f"{topic}-{partition}" / replica_id
    if not old.is_dir() or target.exists():
        return False
    lock = _migration_lock_acquire(data_dir)
    try:
        if not old.is_dir() or target.exists():
            return False
        make_dirs(target.parent)
        _rename(old, target)
        fsync_dir(str(target.parent))
        _rmdir_if_empty(old.parent)
        _rmdir_if_empty(old.parent.parent)
        return True
    finally:
        lock.release()


def _migration_lock_acquire(data_dir: Path) -> DirectoryLock:
    """A blocking lock on ``<data_dir>/.layout-migration.lock``: another process's renames are
    a short critical section, worth waiting for."""
    return DirectoryLock(data_dir, "layout migration", MIGRATION_LOCK_FILE).acquire(blocking=True)


def _open_for_write(path: Path) -> int:
    flags = os.O_RDWR | os.O_CREAT
    return faults.open_file(path, flags, FILE_MODE) if faults.ENABLED else os.open(path, flags, FILE_MODE)


def _rename(src: Path, dst: Path) -> None:
    if faults.ENABLED:
        faults.replace(src, dst)  # rename(2) either way; the callers checked dst is free
    else:
        os.rename(src, dst)


def _unlink(path: Path) -> None:
    if faults.ENABLED:
        faults.unlink(path)
    else:
        os.unlink(path)


def _rmdir_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass  # not empty (or gone): leave it
