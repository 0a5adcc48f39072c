"""Connecting to Ray and finding raykafka's actors: ``connect`` and the settings it leaves.

``connect`` is optional: every API object calls ``ensure_connected`` on first
use. The settings (namespace, data_dir, auto_create_topics) are process-wide
and travel inside picklable objects (a MessageStream) so that a Ray task or
actor on another node talks to the same topics.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
import time
from dataclasses import dataclass

import ray
from ray.exceptions import RayTaskError

from raykafka.actors.naming import DEFAULT_NAMESPACE, TOPIC_MANAGER_NAME, group_actor_name
from raykafka.api.rpc import ACTOR_GONE, RETRY_BACKOFF_S, require_ray, timed_out, unwrap

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    """What ``connect`` decided; carried by objects handed to other processes."""

    namespace: str = DEFAULT_NAMESPACE
    data_dir: str | None = None
    auto_create_topics: bool = False
    address: str | None = None


_lock = threading.Lock()
_settings: Settings | None = None


def connect(
    address: str | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    data_dir: str | None = None,
    auto_create_topics: bool = False,
) -> Settings:
    """Attach this process to Ray and to raykafka's actors in ``namespace``.

    If Ray is already initialized, that Ray is used. Otherwise
    ``ray.init(address=address)``: with ``address=None`` Ray joins a running
    cluster when one is reachable (``RAY_ADDRESS`` or a local ``ray start``
    head), else starts a local Ray -- the embedded default. Ray's token
    authentication is honoured as Ray does (``RAY_AUTH_TOKEN``,
    ``RAY_AUTH_TOKEN_PATH``); raykafka never turns it off.

    ``data_dir`` is where partition actors keep segments on their node (default
    ``$RAYKAFKA_DATA_DIR``, else ``~/.raykafka/data`` resolved on each node). It
    is fixed when the TopicManager is first created in the namespace.

    Example::

        import raykafka
        raykafka.connect(namespace="raykafka")
    """
    if not isinstance(namespace, str) or not namespace:
        raise ValueError("namespace must be a non-empty str")
    if data_dir is not None and not isinstance(data_dir, str | os.PathLike):
        raise TypeError(f"data_dir must be a path, got {type(data_dir).__name__}")
    global _settings
    if data_dir is None:
        data_dir = os.environ.get("RAYKAFKA_DATA_DIR")
    if data_dir is not None:
        data_dir = os.path.abspath(os.path.expanduser(os.fspath(data_dir)))
    settings = Settings(namespace, data_dir, bool(auto_create_topics), address)
    with _lock:
        ensure_ray(settings)
        _settings = settings
    return settings


def ensure_ray(settings: Settings) -> None:
    """Initialize Ray for ``settings`` unless this process already has it."""
    if not ray.is_initialized():
        ray.init(address=settings.address, namespace=settings.namespace)


def current_settings() -> Settings:
    """The settings of the last ``connect``, connecting with defaults on first use."""
    if _settings is None:
        return connect()
    ensure_ray(_settings)
    return _settings


def topic_manager(settings: Settings):
    """The TopicManager handle for ``settings``' namespace, created (detached) on first use."""
    from raykafka.actors.topic_manager import TopicManager

    return _control_actor(TopicManager, TOPIC_MANAGER_NAME, settings, settings.data_dir, settings.namespace)


def group_coordinator(settings: Settings, group_id: str):
    """The GroupCoordinator of ``group_id``, created (detached) on first use; safe when many race."""
    from raykafka.actors.group_coordinator import GroupCoordinator

    return _control_actor(
        GroupCoordinator,
        group_actor_name(group_id),
        settings,
        group_id,
        settings.data_dir,
        settings.namespace,
    )


def _control_actor(cls, name: str, settings: Settings, *args):
    """A named, detached, restartable actor on the head node (its state lives on that disk);
    ``get_if_exists`` makes concurrent first uses from many processes meet the same one."""
    ensure_ray(settings)
    return (
        ray.remote(cls)
        .options(
            name=name,
            namespace=settings.namespace,
            lifetime="detached",
            get_if_exists=True,
            num_cpus=0,
            max_restarts=-1,
            max_task_retries=0,
            scheduling_strategy=_head_node_strategy(),
        )
        .remote(*args)
    )


def _head_node_strategy():
    """Pin the manager to the head node: its metadata lives on that node's disk."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    for node in ray.nodes():
        if node.get("Alive") and "node:__internal_head__" in node.get("Resources", {}):
            return NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
    return "DEFAULT"


# -- calls that never start a Ray ----------------------------------------------------------------

#: The lock ``ray.init`` and ``ray.shutdown`` hold while they connect or disconnect this process
#: (Ray private API: without it a plain lock, and the window below is back).
try:
    from ray._private.worker import _connect_or_shutdown_lock as _RAY_CONNECT_LOCK
except ImportError:  # pragma: no cover - another Ray
    _RAY_CONNECT_LOCK = threading.RLock()

#: How often a wait on an answer checks that Ray is still connected.
_CONNECTED_CHECK_S = 0.1


def submit(method, *args) -> concurrent.futures.Future:
    """``method.remote(*args)`` if this process is connected to Ray, else RayNotConnected; the
    answer as a ``concurrent.futures.Future``. Never starts or joins a Ray.

    Ray's auto-init starts (or joins) a Ray on any ``.remote()`` or ``ray.get`` made while not
    connected. A check followed by the call leaves a window: a ``ray.shutdown()`` in another
    thread between the two, and the call starts a new Ray -- from a producer's sender thread,
    racing the user's own next ``ray.init``. Ray holds one lock while it connects or shuts down;
    the check and the call are made holding it, so no shutdown can come between them (nor tear
    the core worker down under the submission). The answer is awaited through its future,
    which, unlike ``ray.get``, never auto-inits."""
    with _RAY_CONNECT_LOCK:
        require_ray()
        return method.remote(*args).future()


def wait_answer(future: concurrent.futures.Future, timeout_s: float):
    """The result of a ``submit``: raises what the call raised, ``TimeoutError`` after
    ``timeout_s``, RayNotConnected as soon as Ray is shut down (its answer may never come)."""
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        try:
            return future.result(timeout=max(0.0, min(remaining, _CONNECTED_CHECK_S)))
        except concurrent.futures.TimeoutError:
            if remaining <= _CONNECTED_CHECK_S:
                raise
            require_ray()


def call_connected(method, *args, timeout_s: float, what: str = "request"):
    """An idempotent call through ``submit``: retried while its actor is restarting, until
    ``timeout_s`` (then RequestTimedOut); a raykafka error raised in the actor is raised as is.
    ``rpc.call`` without its leader logic, for threads that must never start a Ray."""
    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise timed_out(what, timeout_s, last)
        future = submit(method, *args)
        try:
            return wait_answer(future, remaining)
        except concurrent.futures.TimeoutError:
            continue
        except RayTaskError as exc:
            raise unwrap(exc) from None
        except ACTOR_GONE as exc:
            last = exc
        time.sleep(min(RETRY_BACKOFF_S, max(0.0, deadline - time.monotonic())))
