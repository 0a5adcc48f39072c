"""GroupCoordinator: one named actor per consumer group, a thin shell over GroupState and OffsetsStore.

It decides who reads what (``raykafka.groups.membership``) and remembers how
far the group got (``raykafka.groups.offsets_store``, fsynced before a commit
is acknowledged). It is never on the data path: members fetch from partition
actors directly.

Background work: members silent past their session timeout are removed, and
partition counts of subscribed topics are re-read so new partitions get
assigned. After a restart the members are unknown; their next heartbeat is
answered "unknown member" and they rejoin, claiming what they still read.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
import warnings

import ray

from raykafka.actors.actor_logs import route_actor_logs
from raykafka.actors.naming import DEFAULT_NAMESPACE, TOPIC_MANAGER_NAME
from raykafka.clock import now_ms
from raykafka.errors import GroupNotEmpty, UnknownTopic
from raykafka.groups.commit_order import CommitOrder
from raykafka.groups.membership import GroupState, UnknownMember
from raykafka.groups.offsets_store import OffsetsStore
from raykafka.metrics import GroupMetrics
from raykafka.storage.layout import (
    Identity,
    adopt_legacy_layout,
    group_directory,
    namespace_cluster_id,
    namespace_root,
    open_owned_directory,
    resolve_data_dir,
)
from raykafka.types import GroupDescription, MemberDescription, TopicPartition

logger = logging.getLogger(__name__)

#: How often silent members are looked for.
EXPIRY_CHECK_INTERVAL_MS = 100
#: How often partition counts of subscribed topics are re-read.
METADATA_REFRESH_INTERVAL_MS = 2_000
#: How long describe waits for one partition actor's offsets.
OFFSETS_TIMEOUT_S = 5.0
#: Joins into an empty group wait this long for more members before the first rebalance, and
#: every further join in that window extends it by as much again (as Kafka's
#: group.initial.rebalance.delay.ms, 3 s there), so members started together (streams handed
#: to Ray tasks that start over a second on a busy node) are settled in one rebalance.
#: Later joins wait for the next tick. Members that say how many of them start together
#: (the ``n`` streams of one ``create_message_streams``) end the wait as soon as all have joined.
INITIAL_REBALANCE_DELAY_MS = 500
#: The first rebalance of an empty group happens at most this long after its first join.
INITIAL_REBALANCE_MAX_MS = 3_000
#: How often the consumer-lag gauges are refreshed.
LAG_METRIC_INTERVAL_MS = 2_000


#: How long a new coordinator waits for its group directory's lock (a previous process may
#: still be exiting).
GROUP_LOCK_WAIT_S = 2.0


class GroupCoordinator:
    def __init__(self, group_id: str, data_dir: str | None, namespace: str):
        route_actor_logs("group_coordinator")  # internal events: this process's log file, not drivers
        self.group_id = group_id
        self.namespace = namespace
        # Answer numbers keep growing across restarts of this actor (see GroupState).
        self.state = GroupState(group_id, first_seq=time.time_ns() // 1_000)
        node_data_dir = resolve_data_dir(data_dir)
        root = namespace_root(node_data_dir, namespace)
        if namespace == DEFAULT_NAMESPACE:
            adopt_legacy_layout(node_data_dir, root)  # groups written before namespaces are the default's
        directory = group_directory(root, group_id)
        # One owner per group directory (DirectoryLocked otherwise), for this process's lifetime.
        self._dir_lock = open_owned_directory(
            directory,
            Identity("group", namespace, namespace_cluster_id(root, namespace, uuid.uuid4().hex), group_id),
            wait_s=GROUP_LOCK_WAIT_S,
        )
        self.store = OffsetsStore(directory)
        self.commit_order = CommitOrder()
        with warnings.catch_warnings():
            # Ray's property reads its own deprecated ``actor_id``: a RayDeprecationWarning in
            # the driver's output for every new group (ray 2.60), about Ray, not this code.
            warnings.simplefilter("ignore", DeprecationWarning)
            restarted = ray.get_runtime_context().was_current_actor_reconstructed
        if restarted:
            # Restarted: members that have not rejoined yet may still be reading (see GroupState).
            self.state.recover(now_ms())
        self.lock = asyncio.Lock()
        self._background: asyncio.Task | None = None
        self._leaders: dict[str, list] = {}
        self.metrics = GroupMetrics(group_id)
        self._settle_at_ms = 0  # when a pending rebalance (joins collected) is due
        self._initial_until_ms: int | None = None  # set while the first joins into an empty group gather
        self._initial_expected = 0  # the largest cohort announced while they gather (0: none)
        self._generation_seen = 0

    def _start_background(self) -> None:
        if self._background is None:
            self._background = asyncio.get_running_loop().create_task(self._maintain())

    async def _topic_metadata(self, topic: str) -> dict | None:
        manager = ray.get_actor(TOPIC_MANAGER_NAME, namespace=self.namespace)
        try:
            return await manager.topic_metadata.remote(topic)
        except ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, UnknownTopic):
                return None
            raise

    async def _refresh_partition_counts(self) -> None:
        counts = {}
        for topic in sorted(self.state.subscribed_topics()):
            meta = await self._topic_metadata(topic)
            if meta is not None:
                counts[topic] = len(meta["leaders"])
                self._leaders[topic] = meta["leaders"]
        self.state.set_partition_counts(counts)

    def _count_rebalances(self) -> None:
        if self.state.generation != self._generation_seen:
            self.metrics.rebalances.inc(
                self.state.generation - self._generation_seen, {"group": self.group_id}
            )
            self._generation_seen = self.state.generation

    async def _maintain(self) -> None:
        last_refresh = 0
        last_lag = 0
        while True:
            await asyncio.sleep(EXPIRY_CHECK_INTERVAL_MS / 1000)
            self._count_rebalances()
            try:
                if now_ms() - last_lag >= LAG_METRIC_INTERVAL_MS and self.store.committed:
                    last_lag = now_ms()
                    for tp, lag in (await self._lag(dict(self.store.committed))).items():
                        self.metrics.set_lag(tp.topic, tp.partition, lag)
                async with self.lock:
                    if self.state.rebalance_pending and now_ms() >= self._settle_at_ms:
                        self.state.rebalance()  # every join since the last one, in one rebalance
                        self._initial_until_ms = None
                        self._initial_expected = 0
                    gone = self.state.expire(now_ms())
                    if gone:
                        logger.info("group %s: session timeout removed %s", self.group_id, gone)
                    if now_ms() - last_refresh >= METADATA_REFRESH_INTERVAL_MS and self.state.members:
                        await self._refresh_partition_counts()
                        last_refresh = now_ms()
            except Exception:
                logger.exception("group %s: maintenance failed", self.group_id)

    @staticmethod
    def _answer(
        answer, member_id: str, committed: dict, epochs: dict, pending_rebalance: bool = False
    ) -> dict:
        return {
            "member_id": member_id,
            "seq": answer.seq,
            "generation": answer.generation,
            "epoch": answer.epoch,
            "assigned": sorted(answer.assigned, key=lambda tp: (tp.topic, tp.partition)),
            # while joins are being collected every member polls quickly (see GroupMember)
            "pending": max(answer.pending, 1) if pending_rebalance else answer.pending,
            "committed": {tp: committed[tp] for tp in answer.assigned if tp in committed},
            # the leader epoch of the record each committed offset follows, where known (KIP-320)
            "committed_epochs": {tp: epochs[tp] for tp in answer.assigned if tp in epochs},
        }

    # -- membership ------------------------------------------------------------

    async def join(
        self,
        member_id: str,
        topics: list[str],
        node_id: str | None,
        owned: list[TopicPartition],
        session_timeout_ms: int,
        strategy: str,
        cohort_size: int | None = None,
    ) -> dict:
        """Add a member. ``cohort_size``: how many members were started together with this one
        (streams created in one call); while the first members of an empty group gather, the
        first rebalance comes as soon as that many have joined instead of after the delay."""
        self._start_background()
        async with self.lock:
            known = self.state.subscribed_topics()
            for topic in topics:
                if topic not in known and topic not in self.state.partition_counts:
                    meta = await self._topic_metadata(topic)
                    if meta is None:
                        raise UnknownTopic(f"topic {topic!r} does not exist; create it before subscribing")
                    self.state.partition_counts[topic] = len(meta["leaders"])
            was_empty = not self.state.members
            if was_empty:
                self._initial_expected = 0
            if cohort_size is not None and (was_empty or self._initial_until_ms is not None):
                self._initial_expected = max(self._initial_expected, cohort_size)
            joining = len(self.state.members) + (member_id not in self.state.members)
            gathered = 0 < self._initial_expected <= joining
            answer = self.state.join(
                member_id, topics, node_id, owned, session_timeout_ms, strategy, now_ms(), rebalance=gathered
            )
            if gathered:  # everyone announced is here: this answer already carries the assignment
                self._initial_until_ms = None
                self._initial_expected = 0
            else:
                if was_empty:
                    self._initial_until_ms = now_ms() + INITIAL_REBALANCE_MAX_MS
                if self._initial_until_ms is not None and self.state.rebalance_pending:
                    # announced members still to come: wait for them (up to the cap), else one delay
                    announced = self._initial_expected > 0
                    wait_ms = INITIAL_REBALANCE_MAX_MS if announced else INITIAL_REBALANCE_DELAY_MS
                    self._settle_at_ms = min(now_ms() + wait_ms, self._initial_until_ms)
                elif self._settle_at_ms < now_ms():
                    self._settle_at_ms = now_ms()  # the next maintenance tick
            logger.info(
                "group %s: %s joined (generation %d)", self.group_id, member_id, self.state.generation
            )
            return self._answer(
                answer, member_id, self.store.committed, self.store.epochs, self.state.rebalance_pending
            )

    async def heartbeat(self, member_id: str, owned: list[TopicPartition], applied_seq: int) -> dict | None:
        """The member's next answer, or None when it is unknown (it must rejoin)."""
        self._start_background()
        async with self.lock:
            try:
                answer = self.state.heartbeat(member_id, owned, applied_seq, now_ms())
            except UnknownMember:
                return None
            return self._answer(
                answer, member_id, self.store.committed, self.store.epochs, self.state.rebalance_pending
            )

    async def leave(self, member_id: str) -> None:
        async with self.lock:
            if self.state.leave(member_id):
                logger.info(
                    "group %s: %s left (generation %d)", self.group_id, member_id, self.state.generation
                )

    # -- offsets ---------------------------------------------------------------

    async def commit(
        self,
        member_id: str | None,
        offsets: dict[TopicPartition, int],
        order: tuple[str, int] | None = None,
        epochs: dict[TopicPartition, int] | None = None,
    ) -> bool:
        """Persist ``offsets`` (fsynced) if ``member_id`` may commit them; else StaleGeneration.
        ``epochs``: the leader epoch of the record each offset follows, where the client knows it
        (stored with the offset; a consumer resuming there checks the log was not truncated).

        ``order``: ``(client_id, seq)``, the client's commit number. A commit older than one
        already stored for that client is dropped (returns False): it arrived late, and must not
        move the group's offsets back (``raykafka.groups.commit_order``)."""
        self._start_background()
        async with self.lock:
            if order is not None and self.commit_order.is_stale(*order):
                return False
            self.state.check_commit(member_id, offsets)
            await asyncio.get_running_loop().run_in_executor(None, self.store.commit, offsets, epochs)
            if order is not None:
                self.commit_order.stored(*order)
            return True

    async def committed(self, tps: list[TopicPartition]) -> dict[TopicPartition, int | None]:
        return {TopicPartition(tp.topic, tp.partition): self.store.committed.get(tp) for tp in tps}

    # -- admin -----------------------------------------------------------------

    async def describe(self) -> GroupDescription:
        async with self.lock:
            members = [
                MemberDescription(
                    member_id=m.member_id,
                    node_id=m.node_id,
                    assignment=sorted(m.reading(), key=lambda tp: (tp.topic, tp.partition)),
                )
                for m in sorted(self.state.members.values(), key=lambda m: m.member_id)
            ]
            committed = dict(self.store.committed)
            state, generation = self.state.state(), self.state.generation
        return GroupDescription(
            group_id=self.group_id,
            state=state,
            generation=generation,
            members=members,
            committed=committed,
            lag=await self._lag(committed),
        )

    async def _lag(self, committed: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        """High watermark minus committed offset, for the partitions whose leader answers."""
        lag = {}
        for topic in sorted({tp.topic for tp in committed}):
            meta = await self._topic_metadata(topic)
            if meta is None:
                continue
            leaders = meta["leaders"]
            tps = [tp for tp in committed if tp.topic == topic and tp.partition < len(leaders)]
            ends = await asyncio.gather(
                *(asyncio.wait_for(leaders[tp.partition].offsets.remote(), OFFSETS_TIMEOUT_S) for tp in tps),
                return_exceptions=True,
            )
            for tp, found in zip(tps, ends, strict=True):
                if not isinstance(found, BaseException):
                    lag[tp] = max(0, found[1] - committed[tp])
        return lag

    async def pid(self) -> int:
        """This actor's process id (for operators, and for tests that kill it)."""
        return os.getpid()

    async def member_count(self) -> int:
        return len(self.state.members)

    async def destroy(self) -> None:
        """Delete the group's stored offsets (delete_group); refuses while members remain."""
        async with self.lock:
            if self.state.members:
                raise GroupNotEmpty(
                    f"group {self.group_id!r} has {len(self.state.members)} member(s); close its consumers "
                    f"(or wait for their session timeout) before deleting it"
                )
            if self._background is not None:
                self._background.cancel()
            self.store.destroy()
            self._dir_lock.release()
