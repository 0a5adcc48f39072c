"""LeaderReplication: what a partition replica runs while it leads -- one pump per follower.

Each pump pushes the leader's log to one follower, in order, one request in
flight: ``follower.replicate(epoch, from_offset, frames, high_watermark)``
answers the follower's new log end. A pump starts from the leader's log end
(optimistic) and the follower's answer tells it where to really start, so the
same loop does steady-state streaming and catch-up after a restart.

Fan-out: when followers ask for the same range (they do, in steady state), the
frames are put in Ray's object store once and the same ObjectRef goes to every
follower -- one copy, not one per follower.

The in-sync set and the high watermark are ``raykafka.replication.isr``'s job.
Shrinking the ISR goes through the TopicManager first (``alter_isr``), so a
follower that misses acknowledged records can never be elected; growing it is
applied at once and reported after (the safe direction).
"""

from __future__ import annotations

import asyncio
import logging

import ray

from raykafka.actors.naming import TOPIC_MANAGER_NAME
from raykafka.clock import now_ms
from raykafka.errors import FencedLeader, NotLeader
from raykafka.replication.isr import ReplicaTracker
from raykafka.storage import LogOffsetOutOfRange

logger = logging.getLogger(__name__)

#: Bytes of log one replicate request carries at most.
REPLICA_FETCH_MAX_BYTES = 8 << 20
#: A follower idle this long gets an empty request: carries the high watermark, detects a dead follower.
KEEPALIVE_MS = 500
#: Pause before retrying a follower that failed or is not ready.
RETRY_BACKOFF_MS = 100
#: How often in-sync followers are checked for lag.
LAG_CHECK_INTERVAL_MS = 200


class LeaderReplication:
    def __init__(
        self,
        replica,  # the PartitionActor
        epoch: int,
        followers: dict,  # replica_id -> actor handle (None: the replica has no actor now)
        in_sync: list[str],
        *,
        high_watermark: int,
        lag_time_max_ms: int,
        replicate_timeout_ms: int,
    ):
        self.replica = replica
        self.epoch = epoch
        self.followers = dict(followers)
        self.replicate_timeout_ms = replicate_timeout_ms
        log = replica.log
        self.tracker = ReplicaTracker(
            replica.replica_id,
            self.followers,
            in_sync,
            leader_end=log.log_end_offset,
            high_watermark=max(high_watermark, log.log_start_offset),
            lag_time_max_ms=lag_time_max_ms,
            now_ms=now_ms(),
            # where this epoch began (become_leader recorded it): the end of every earlier one
            epoch_start_offset=replica.epochs.end_offset_for(epoch - 1, log.log_end_offset),
        )
        self.tracker.on_append(log.log_end_offset)
        self._appended = asyncio.Event()
        self._fanout: tuple[int, object] | None = None  # (from_offset, ObjectRef of frames)
        self._shrinking: set[str] = set()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._pump(f, h)) for f, h in self.followers.items()]
        self._tasks.append(loop.create_task(self._watch_lag()))

    @property
    def name(self) -> str:
        return f"{self.replica.topic}-{self.replica.partition}"

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._fanout = None

    def isr(self) -> list[str]:
        return sorted(self.tracker.isr)

    def on_append(self) -> None:
        """The log grew: maybe move the high watermark (no followers in sync), wake the pumps."""
        if self.tracker.on_append(self.replica.log.log_end_offset):
            self.replica.on_high_watermark(self.tracker.high_watermark)
        woken, self._appended = self._appended, asyncio.Event()
        woken.set()

    # -- the pumps ---------------------------------------------------------------

    def _frames_for(self, from_offset: int):
        if self._fanout is not None and self._fanout[0] == from_offset:
            return self._fanout[1]
        frames = self.replica.log.read(from_offset, REPLICA_FETCH_MAX_BYTES)
        ref = ray.put(frames)
        self._fanout = (from_offset, ref)
        return ref

    async def _pump(self, follower: str, handle) -> None:
        if handle is None:  # no actor yet (its node is gone): out of the ISR until a new term names one
            await self._shrink(follower, "it has no actor")
            return
        next_offset: int | None = None  # unknown until the follower answers
        while True:
            log = self.replica.log
            if next_offset is not None and next_offset >= log.log_end_offset:
                appended = self._appended
                try:
                    await asyncio.wait_for(appended.wait(), KEEPALIVE_MS / 1000)
                except TimeoutError:
                    pass  # send a keepalive: high watermark news, and a check the follower lives
            from_offset = log.log_end_offset if next_offset is None else next_offset
            leader_end = log.log_end_offset
            try:
                frames = self._frames_for(from_offset) if from_offset < leader_end else []
            except LogOffsetOutOfRange:
                # the follower is behind our log start (retention): it restarts at our log start
                from_offset = log.log_start_offset
                frames = self._frames_for(from_offset) if from_offset < leader_end else []
            try:
                follower_end = await asyncio.wait_for(
                    handle.replicate.remote(
                        self.epoch, from_offset, frames, self.tracker.high_watermark, log.log_start_offset
                    ),
                    self.replicate_timeout_ms / 1000,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                cause = getattr(exc, "cause", None)
                if isinstance(cause, FencedLeader):
                    logger.warning(
                        "%s: follower %s has a newer epoch; this leader was deposed", self.name, follower
                    )
                    self.replica.deposed()
                    return
                if not isinstance(cause, NotLeader):  # NotLeader here: the follower is not ready yet
                    await self._shrink(follower, f"{type(exc).__name__}: {exc}"[:200])
                next_offset = None
                await asyncio.sleep(RETRY_BACKOFF_MS / 1000)
                continue
            next_offset = follower_end
            hw_before = self.tracker.high_watermark
            if self.tracker.on_follower_ack(follower, follower_end, leader_end, now_ms()):
                logger.info("%s: %s rejoined the ISR at offset %d", self.name, follower, follower_end)
                self._report_isr()
            if self.tracker.high_watermark != hw_before:
                self.replica.on_high_watermark(self.tracker.high_watermark)

    async def _watch_lag(self) -> None:
        while True:
            await asyncio.sleep(LAG_CHECK_INTERVAL_MS / 1000)
            for follower in self.tracker.laggards(now_ms()):
                await self._shrink(follower, "lagging")

    # -- ISR changes through the TopicManager -----------------------------------

    async def _shrink(self, follower: str, why: str) -> None:
        if follower not in self.tracker.isr or follower in self._shrinking:
            return
        self._shrinking.add(follower)
        try:
            proposed = sorted(self.tracker.isr - {follower})
            while True:
                try:
                    await self._alter_isr(proposed)
                    break
                except FencedLeader:
                    self.replica.deposed()
                    return
                except Exception as exc:  # the manager is restarting: keep the old ISR (HW waits)
                    logger.info("%s: alter_isr failed (%s); retrying", self.name, exc)
                    await asyncio.sleep(RETRY_BACKOFF_MS / 1000)
            hw_before = self.tracker.high_watermark
            self.tracker.remove(follower)
            logger.warning("%s: %s left the ISR (%s); ISR now %s", self.name, follower, why, self.isr())
            if self.tracker.high_watermark != hw_before:
                self.replica.on_high_watermark(self.tracker.high_watermark)
        finally:
            self._shrinking.discard(follower)

    def _report_isr(self) -> None:
        async def report() -> None:
            for _ in range(50):
                try:
                    await self._alter_isr(self.isr())
                    return
                except FencedLeader:
                    self.replica.deposed()
                    return
                except Exception:
                    await asyncio.sleep(RETRY_BACKOFF_MS / 1000)

        self._tasks.append(asyncio.get_running_loop().create_task(report()))

    async def _alter_isr(self, isr: list[str]) -> None:
        manager = ray.get_actor(TOPIC_MANAGER_NAME, namespace=self.replica.namespace)
        try:
            await manager.alter_isr.remote(self.replica.topic, self.replica.partition, self.epoch, isr)
        except ray.exceptions.RayTaskError as exc:
            raise exc.cause if isinstance(exc.cause, FencedLeader) else exc from None
