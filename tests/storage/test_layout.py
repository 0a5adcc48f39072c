"""The on-disk layout: namespaces apart, one owner per directory, identities checked, the
layout before namespaces moved. No Ray."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from raykafka.storage.layout import (
    DirectoryLock,
    DirectoryLocked,
    Identity,
    IdentityMismatch,
    adopt_legacy_layout,
    check_identity,
    claim_legacy_replica,
    group_directory,
    namespace_cluster_id,
    namespace_root,
    open_owned_directory,
    read_identity,
    replica_directory,
)


def replica_identity(namespace: str = "ns", cluster: str | None = "c1", owner: str = "t-0/r1") -> Identity:
    return Identity("replica", namespace, cluster, owner)


def test_namespaces_get_their_own_directories(tmp_path):
    a, b = namespace_root(tmp_path, "raykafka"), namespace_root(tmp_path, "typo")
    assert a != b
    assert a.parent == b.parent == tmp_path / "namespaces"
    # any Ray namespace string maps into one directory level, never outside
    for odd in ("..", ".", "a/b", "../../etc", "x y"):
        root = namespace_root(tmp_path, odd)
        assert root.parent == tmp_path / "namespaces", odd
        assert root.name not in (".", "..")
    assert replica_directory(a, "t", 0, "r1") != replica_directory(b, "t", 0, "r1")
    with pytest.raises(ValueError):
        group_directory(a, "../other")
    with pytest.raises(ValueError):
        replica_directory(a, "..", 0, "x/../../y")


def test_second_lock_is_refused_until_the_first_is_released(tmp_path):
    first = DirectoryLock(tmp_path / "d", "first").acquire()
    with pytest.raises(DirectoryLocked, match="in use by another owner"):
        DirectoryLock(tmp_path / "d", "second").acquire()
    first.release()
    second = DirectoryLock(tmp_path / "d", "second").acquire()
    assert second.held
    second.release()


def _hold_lock(path: str, ready, done) -> None:
    lock = DirectoryLock(path, "child").acquire()
    ready.set()
    done.wait(30)
    lock.release()


def test_lock_held_by_another_process_and_freed_when_it_dies(tmp_path):
    ctx = multiprocessing.get_context("fork")
    ready, done = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_hold_lock, args=(str(tmp_path / "d"), ready, done))
    child.start()
    assert ready.wait(30)
    try:
        with pytest.raises(DirectoryLocked, match=f"pid={child.pid}"):
            DirectoryLock(tmp_path / "d", "parent").acquire(wait_s=0.3)
    finally:
        child.kill()  # a crash, not a release: the kernel drops the lock
        child.join(30)
    DirectoryLock(tmp_path / "d", "parent").acquire().release()


def test_identity_written_once_then_checked(tmp_path):
    d = tmp_path / "r"
    lock = open_owned_directory(d, replica_identity())
    assert read_identity(d) == replica_identity()
    lock.release()
    # the same owner opens it again
    open_owned_directory(d, replica_identity()).release()
    for other, what in (
        (replica_identity(namespace="typo"), "namespace"),
        (replica_identity(owner="t-0/r2"), "owner"),
        (Identity("group", "ns", "c1", "t-0/r1"), "kind"),
        (replica_identity(cluster="c2"), "cluster"),
    ):
        with pytest.raises(IdentityMismatch, match=what):
            open_owned_directory(d, other)
        assert not DirectoryLock(d, "probe").acquire().release()  # a refused opener left no lock


def test_identity_without_cluster_id_is_completed(tmp_path):
    d = tmp_path / "r"
    check_identity(d, replica_identity(cluster=None))
    assert read_identity(d).cluster_id is None
    check_identity(d, replica_identity(cluster="c1"))
    assert read_identity(d).cluster_id == "c1"


def test_newer_layout_is_refused(tmp_path):
    d = tmp_path / "r"
    d.mkdir()
    (d / "meta.properties").write_text(
        "version=99\nkind=replica\nnamespace=ns\ncluster.id=c1\nowner=t-0%2Fr1\n"
    )
    with pytest.raises(IdentityMismatch, match="newer raykafka"):
        check_identity(d, replica_identity())


def test_cluster_id_is_created_once(tmp_path):
    root = namespace_root(tmp_path, "ns")
    assert namespace_cluster_id(root, "ns", "first") == "first"
    assert namespace_cluster_id(root, "ns", "second") == "first"
    with pytest.raises(IdentityMismatch):
        namespace_cluster_id(root, "other", "x")


def test_legacy_layout_moves_into_the_adopting_namespace(tmp_path):
    (tmp_path / "metadata").mkdir()
    (tmp_path / "metadata" / "topics.json").write_text('{"topics": {}}')
    (tmp_path / "groups" / "g1").mkdir(parents=True)
    (tmp_path / "groups" / "g1" / "00000000000000000000.log").write_bytes(b"x")
    old_replica = tmp_path / "replicas" / "t-0" / "r1"
    old_replica.mkdir(parents=True)
    (old_replica / "00000000000000000000.log").write_bytes(b"data")
    root = namespace_root(tmp_path, "raykafka")

    assert adopt_legacy_layout(tmp_path, root) == ["metadata", "groups/g1"]
    assert (root / "metadata" / "topics.json").read_text() == '{"topics": {}}'
    assert (root / "groups" / "g1" / "00000000000000000000.log").read_bytes() == b"x"
    assert not (tmp_path / "metadata").exists() and not (tmp_path / "groups").exists()
    assert adopt_legacy_layout(tmp_path, root) == []  # idempotent

    target = replica_directory(root, "t", 0, "r1")
    assert not claim_legacy_replica(tmp_path, target, "t", 0, "other")
    assert claim_legacy_replica(tmp_path, target, "t", 0, "r1")
    assert (target / "00000000000000000000.log").read_bytes() == b"data"
    assert not (tmp_path / "replicas").exists()
    assert not claim_legacy_replica(tmp_path, target, "t", 0, "r1")


def test_legacy_directory_never_overwrites_a_new_one(tmp_path):
    root = namespace_root(tmp_path, "raykafka")
    (root / "metadata").mkdir(parents=True)
    (root / "metadata" / "topics.json").write_text("new")
    (tmp_path / "metadata").mkdir()
    (tmp_path / "metadata" / "topics.json").write_text("old")
    assert adopt_legacy_layout(tmp_path, root) == []
    assert (root / "metadata" / "topics.json").read_text() == "new"
    assert (tmp_path / "metadata" / "topics.json").read_text() == "old"
    assert os.path.isdir(tmp_path / "metadata")
