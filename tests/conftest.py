"""Shared fixtures: one real local Ray per test session; a fresh namespace and data dir per test.

Every raykafka actor a test creates is detached and lives in the test's own
namespace, so the fixture kills them all afterwards; topics and groups never
leak between tests.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid

import pytest

# Storage tests run without Ray: import it lazily, only for the fixtures that need it.


_MULTI_NODE = {"active": False}  # set while tests/test_replication.py holds its own Cluster


def ensure_local_ray():
    """The session's local Ray; started again if a multi-node test module shut it down."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    return ray


@pytest.fixture(scope="session")
def ray_session():
    import ray

    yield ensure_local_ray()
    ray.shutdown()


def kill_namespace(namespace: str) -> None:
    import ray

    if not ray.is_initialized():  # its actors went with that Ray; auto-init would join another one
        return
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["namespace"] == namespace:
            with contextlib.suppress(ValueError):
                ray.kill(ray.get_actor(entry["name"], namespace=namespace), no_restart=True)


@pytest.fixture
def local_ray(ray_session):
    """The session's local Ray, started again if an earlier test shut it down (test_faults does)."""
    if not _MULTI_NODE["active"]:
        ensure_local_ray()
    return ray_session


@pytest.fixture
def rk(ray_session, tmp_path):
    """raykafka connected to a namespace and data directory of this test's own."""
    import raykafka

    if not _MULTI_NODE["active"]:
        ensure_local_ray()
    namespace = f"test-{uuid.uuid4().hex[:10]}"
    data_dir = tmp_path / "data"
    settings = raykafka.connect(namespace=namespace, data_dir=str(data_dir))
    yield settings
    kill_namespace(namespace)


@pytest.fixture
def topic_name():
    """A fresh topic name per call."""
    return lambda prefix="t": f"{prefix}-{uuid.uuid4().hex[:8]}"


def pytest_configure(config):
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory):
    """A real `ray start --head` cluster (token auth on) that subprocesses join; see tests/ray_head.py."""
    from tests.ray_head import start_ray_head

    tmp = tmp_path_factory.mktemp("ray-head")
    head = start_ray_head(tmp, data_dir=tmp / "data")
    yield head
    head.stop()


def raykafka_threads() -> dict[int, str]:
    """This process's producer sender and group heartbeat threads: ident -> name."""
    import threading

    return {t.ident: t.name for t in threading.enumerate() if t.name.startswith("raykafka-")}


@pytest.fixture(autouse=True)
def no_client_left_running(request):
    """Fail a test that leaves a producer's sender or a group member's heartbeat thread running.

    Such a thread outlives its test and keeps calling Ray: a member holds partitions nobody
    reads, and a call racing a later test's ``ray.shutdown()`` used to start a new Ray.
    """
    before = raykafka_threads()  # blamed on the test that started them, not on every later one
    yield
    deadline = time.monotonic() + 2.0  # close() has joined them; allow a slow exit
    while True:
        alive = [name for ident, name in raykafka_threads().items() if ident not in before]
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if alive:
        pytest.fail(f"{request.node.nodeid} left raykafka threads running (a client not closed): {alive}")
