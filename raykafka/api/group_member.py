"""GroupMember: a consumer's membership in a group -- joining, heartbeats, answers, leaving.

A background thread joins the group and heartbeats every
``heartbeat_interval_ms`` (every ``RECONCILE_HEARTBEAT_MS`` while part of the
member's target is still held by another member, so hand-overs are quick). It
never touches the consumer's fetchers: it leaves the latest answer for the
consumer's thread, which applies it at its next poll (commit and stop the
partitions not in it, start the new ones) and reports back what it reads.

Self-fencing: a member that has not heard from its coordinator for its session
timeout has probably been removed and its partitions handed on, so the consumer
stops reading everything until it has rejoined.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

import ray

from raykafka.api.connection import Settings, group_coordinator, submit, wait_answer
from raykafka.api.rpc import ACTOR_GONE, require_ray, unwrap
from raykafka.errors import RayKafkaError, RayNotConnected
from raykafka.types import TopicPartition

logger = logging.getLogger(__name__)

#: Heartbeat period while a hand-over is under way.
RECONCILE_HEARTBEAT_MS = 50


class GroupMember:
    def __init__(
        self,
        settings: Settings,
        group_id: str,
        topics: list[str],
        *,
        session_timeout_ms: int,
        heartbeat_interval_ms: int,
        strategy: str,
        request_timeout_ms: int,
        cohort_size: int | None = None,
        max_poll_interval_ms: int | None = None,
    ):
        """``cohort_size``: how many members start together with this one (see the coordinator's
        ``join``), None when unknown. ``max_poll_interval_ms``: a member whose consumer has not
        polled for that long leaves the group (Kafka's max.poll.interval.ms): its partitions go
        to members that read; it rejoins at its next poll. None: never."""
        self.group_id = group_id
        self.cohort_size = cohort_size
        self.topics = list(topics)
        self.member_id = f"{group_id}-{uuid.uuid4().hex[:12]}"
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.strategy = strategy
        self.request_timeout_ms = request_timeout_ms
        self.max_poll_interval_ms = max_poll_interval_ms
        self._last_poll = time.monotonic()
        self._left_idle = False  # left the group for not polling; rejoins at the next poll
        self._abandoned = False  # its consumer was dropped without close(): leave on the way out
        self.coordinator = group_coordinator(settings, group_id)
        self.node_id = ray.get_runtime_context().get_node_id()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._latest: dict | None = None  # newest answer not yet applied
        self._answered = threading.Event()  # set while _latest holds an answer
        self._owned: list[TopicPartition] = []
        self._applied_seq = 0
        self._applied_incarnation = 0
        self._incarnation = 0  # bumped at every (re)join: answer numbers restart with it
        self._joined = False
        self._last_ok = time.monotonic()
        # set once an answer came with nothing pending: the member has its first full assignment
        self.settled = False
        self.error: BaseException | None = None  # a fatal answer (e.g. UnknownTopic), raised by poll
        self._thread = threading.Thread(target=self._run, name=f"raykafka-heartbeat-{group_id}", daemon=True)
        self._thread.start()

    # -- the consumer's side -----------------------------------------------------

    def take_answer(self) -> dict | None:
        with self._lock:
            answer, self._latest = self._latest, None
            self._answered.clear()
            return answer

    def wait_for_answer(self, timeout_s: float) -> bool:
        """Block until an answer is waiting to be applied (a consumer with nothing to read yet
        starts the moment its assignment arrives), at most ``timeout_s``."""
        return self._answered.wait(timeout_s)

    def report(self, owned: list[TopicPartition], answer: dict | None) -> None:
        """What the consumer reads now, after applying ``answer`` (None: nothing applied);
        heartbeats at once."""
        with self._lock:
            self._owned = list(owned)
            if answer is not None:
                self._applied_seq = answer["seq"]
                self._applied_incarnation = answer["incarnation"]
        self._wake.set()

    def abandon(self) -> None:
        """Its consumer was garbage-collected without close() (a notebook cell run again): stop,
        and leave the group from the heartbeat thread (never block the collector)."""
        self._abandoned = True
        self._stopped.set()
        self._wake.set()

    def polled(self) -> bool:
        """The consumer polls. True when the member had left the group for not polling within
        max_poll_interval_ms: its partitions are lost (drop them without committing; other
        members read them now). It rejoins at once."""
        with self._lock:
            self._last_poll = time.monotonic()
            if not self._left_idle:
                return False
            self._left_idle = False
            self._joined = False
            self._latest = None
            self._answered.clear()
        self._wake.set()
        return True

    def _idle_too_long(self) -> bool:
        if self.max_poll_interval_ms is None:
            return False
        with self._lock:
            return (
                not self._left_idle and time.monotonic() - self._last_poll > self.max_poll_interval_ms / 1000
            )

    def _leave_idle(self) -> None:
        """Leave the group because the consumer stopped polling (or was dropped without close)."""
        with self._lock:
            self._left_idle = True
            self._joined = False
        logger.warning(
            "group %s: %s did not poll for max_poll_interval_ms=%d; it leaves the group (its partitions "
            "move to members that read) and rejoins at its next poll",
            self.group_id,
            self.member_id,
            self.max_poll_interval_ms,
        )
        self._leave("it did not poll")

    def _leave(self, why: str) -> None:
        try:  # from the heartbeat thread: through submit, which never starts a Ray (connection.py)
            wait_answer(submit(self.coordinator.leave, self.member_id), self.request_timeout_ms / 1000)
        except Exception as exc:  # the session timeout removes it anyway: it stops heartbeating
            logger.info("group %s: %s; leaving failed (%s)", self.group_id, why, exc)

    def fenced(self) -> bool:
        return time.monotonic() - self._last_ok > self.session_timeout_ms / 1000

    def close(self) -> None:
        """Stop heartbeating and leave the group (its partitions move at once)."""
        self._stopped.set()
        self._wake.set()
        self._thread.join(timeout=5)
        try:
            require_ray()
            ray.get(self.coordinator.leave.remote(self.member_id), timeout=self.request_timeout_ms / 1000)
        except Exception as exc:  # the session timeout removes us anyway
            logger.info(
                "group %s: leave failed (%s); the session timeout will remove %s",
                self.group_id,
                exc,
                self.member_id,
            )

    # -- the heartbeat thread ----------------------------------------------------

    def _run(self) -> None:
        try:
            self._heartbeat_until_stopped()
        finally:
            if self._abandoned and not self._left_idle:
                self._leave("its consumer was dropped without close()")

    def _heartbeat_until_stopped(self) -> None:
        while not self._stopped.is_set():
            if self._idle_too_long():
                self._leave_idle()
            if self._left_idle:  # until the consumer polls again (polled() wakes us)
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            answer = None
            try:
                answer = self._exchange()
            except RayNotConnected:  # this process left Ray (ray.shutdown): so does the member
                return
            except (*ACTOR_GONE, ray.exceptions.GetTimeoutError, TimeoutError) as exc:
                logger.info(
                    "group %s: coordinator unreachable (%s); retrying", self.group_id, type(exc).__name__
                )
            except ray.exceptions.RayTaskError as exc:
                cause = unwrap(exc)
                if isinstance(cause, RayKafkaError | ValueError | TypeError):  # an answer: e.g. UnknownTopic
                    self.error = cause
                    return
                # anything else went wrong in the coordinator (a transient error): try again
                logger.warning("group %s: heartbeat failed (%s); retrying", self.group_id, exc)
            except Exception as exc:  # a client-side failure (e.g. its Ray is gone): stop, report it
                logger.exception("group %s: heartbeat failed", self.group_id)
                self.error = exc
                return
            pending = answer is not None and answer["pending"] > 0
            quick = pending or not self._joined
            interval_ms = RECONCILE_HEARTBEAT_MS if quick else self.heartbeat_interval_ms
            self._wake.wait(interval_ms / 1000)
            self._wake.clear()

    def _exchange(self) -> dict | None:
        timeout_s = min(self.request_timeout_ms, self.session_timeout_ms) / 1000
        # The coordinator saw us no earlier than we sent this: count the session from here,
        # so we fence ourselves no later than it may remove us (not from when the answer came).
        sent = time.monotonic()
        with self._lock:
            owned = list(self._owned)
            applied = self._applied_seq if self._applied_incarnation == self._incarnation else 0
        if not self._joined:
            with self._lock:
                self._incarnation += 1
                self._latest = None
                self._answered.clear()
            # Calls from this thread go through submit: a ray.shutdown() in the user's thread
            # between a connected check and the call would otherwise start a new Ray from here.
            answer = wait_answer(
                submit(
                    self.coordinator.join,
                    self.member_id,
                    self.topics,
                    self.node_id,
                    owned,
                    self.session_timeout_ms,
                    self.strategy,
                    self.cohort_size,
                ),
                timeout_s,
            )
            self._joined = True
        else:
            heartbeat = submit(self.coordinator.heartbeat, self.member_id, owned, applied)
            answer = wait_answer(heartbeat, timeout_s)
            if answer is None:  # the coordinator restarted or removed us: rejoin now
                self._joined = False
                self._wake.set()
                return None
        with self._lock:
            answer["incarnation"] = self._incarnation
            self._latest = answer
            self._answered.set()
            self._last_ok = max(self._last_ok, sent)
            if answer["pending"] == 0:
                self.settled = True
        return answer
