"""PartitionActor: one replica of one topic partition, a thin async shell over a PartitionLog.

It owns the replica directory on its node's disk and is the only writer of it.
A replica is the partition's *leader* or a *follower*, as the TopicManager
says (``become_leader`` / ``become_follower``, with a leader epoch); after a
(re)start it is neither until the manager has told it (it asks at once).

Leader: offsets are assigned here, in each producer's send order
(``raykafka.actors.sequencing``); appends are validated at the boundary
(``max.message.bytes`` on the whole payload, then every byte of it:
``storage.records.decode_record_batch``) before a byte is written; followers are fed by
``raykafka.actors.replication``. Consumers see only records below the high
watermark (held by every in-sync replica); a fetch there waits on an event
until it moves or ``max_wait_ms`` passes (long poll), at most
``MAX_WAITING_FETCHES`` at once (``FetchThrottled`` beyond). ``acks="all"`` waits for
the high watermark; ``NotEnoughReplicas`` when fewer than
``min.insync.replicas`` are in sync.

Follower: appends the leader's frames verbatim after checking the leader's
epoch (an older epoch is a deposed leader: ``FencedLeader``). When it becomes a
follower it first truncates whatever it holds beyond the end of its last
epoch in the new leader's log (KIP-101), so a deposed leader drops exactly the
records that were never replicated.

Retention and time-based flushing run in the background; fsyncs run in a
thread so the event loop keeps serving. A restart loses all memory; the
constructor rebuilds everything from disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import time

import ray

from raykafka import storage
from raykafka.actors.actor_logs import route_actor_logs
from raykafka.actors.naming import TOPIC_MANAGER_NAME
from raykafka.actors.replication import LeaderReplication
from raykafka.actors.sequencing import MAX_BATCHES_PER_REQUEST, Sequencer, attempt
from raykafka.clock import now_ms
from raykafka.errors import (
    CorruptRecord,
    FencedLeader,
    FencedLeaderEpoch,
    FetchThrottled,
    InvalidRecord,
    LogDirFailed,
    LogTruncated,
    MessageTooLarge,
    NotEnoughReplicas,
    NotEnoughReplicasAfterAppend,
    NotLeader,
    OffsetOutOfRange,
    RequestTimedOut,
    StorageFull,
)
from raykafka.metrics import PartitionMetrics
from raykafka.storage import CorruptBatch, LogOffsetOutOfRange, PartitionLog, iter_frames
from raykafka.storage.checkpoint import write_log_start_offset
from raykafka.storage.framing import ATTR_LOG_APPEND_TIME
from raykafka.storage.layout import (
    Identity,
    claim_legacy_replica,
    namespace_root,
    open_owned_directory,
    replica_directory,
    replica_owner,
    resolve_data_dir,
)
from raykafka.storage.leader_epochs import LeaderEpochCache
from raykafka.storage.records import (
    InvalidRecordBatch,
    decode_record_batch,
    max_timestamp_ms,
)
from raykafka.topic_config import config_value, to_log_config

logger = logging.getLogger(__name__)

#: How often retention and flush.ms are checked.
DEFAULT_MAINTENANCE_INTERVAL_MS = 1_000
#: ``append``'s request without a producer: (producer_id, seq, first_unacked, acks, timeout_ms, sync,
#: leader_epoch); a request of the first six (no leader epoch) is not fenced.
DEFAULT_APPEND_REQUEST = (None, 0, None, 1, 30_000, False, None)
#: ``(producer_id, producer_epoch, sequence)`` of a batch of a producer without idempotence.
NO_PRODUCER = (storage.NO_PRODUCER,) * 3
#: Kafka's replica.lag.time.max.ms is 30 s; a short one lets acks="all" go on soon after a follower dies.
DEFAULT_REPLICA_LAG_TIME_MAX_MS = 3_000
#: A replicate call that takes longer counts as a failed follower.
DEFAULT_REPLICATE_TIMEOUT_MS = 2_000
#: How long a (re)started replica waits between attempts to learn its role.
REGISTER_RETRY_MS = 200
#: How long a new replica waits for its directory's lock before giving up (a previous owner's
#: process may still be exiting, e.g. on a node Ray is removing).
DIRECTORY_LOCK_WAIT_S = 2.0
#: Calls one partition actor runs at once (Ray's default for an async actor, stated: the
#: TopicManager creates partition actors with it); Ray queues the calls beyond it.
MAX_CONCURRENCY = 1000
#: Long-polling fetches that may wait at once. A fetch beyond them is answered FetchThrottled
#: at once, so consumers can never hold every slot: appends, replication and admin calls always
#: find one of MAX_CONCURRENCY's.
MAX_WAITING_FETCHES = MAX_CONCURRENCY // 2


class PartitionActor:
    """See the module docstring. Created, placed and told its role by the TopicManager."""

    def __init__(
        self,
        topic: str,
        partition: int,
        replica_id: str,
        data_dir: str | None,
        config: dict[str, str],
        namespace: str,
        maintenance_interval_ms: int = DEFAULT_MAINTENANCE_INTERVAL_MS,
        replica_lag_time_max_ms: int = DEFAULT_REPLICA_LAG_TIME_MAX_MS,
        replicate_timeout_ms: int = DEFAULT_REPLICATE_TIMEOUT_MS,
        cluster_id: str | None = None,
        max_waiting_fetches: int = MAX_WAITING_FETCHES,
    ):
        route_actor_logs("partition")  # internal events: this process's log file, not drivers
        self.topic = topic
        self.partition = partition
        self.replica_id = replica_id
        self.namespace = namespace
        self.name = f"{topic}-{partition}"
        node_data_dir = resolve_data_dir(data_dir)
        self.directory = replica_directory(
            namespace_root(node_data_dir, namespace), topic, partition, replica_id
        )
        if claim_legacy_replica(node_data_dir, self.directory, topic, partition, replica_id):
            logger.warning(
                "%s: moved replica %s into namespace %r's directory", self.name, replica_id, namespace
            )
        # The one owner of this directory for the life of this process (DirectoryLocked otherwise:
        # the TopicManager re-creates this actor with back-off).
        self._dir_lock = open_owned_directory(
            self.directory,
            Identity("replica", namespace, cluster_id, replica_owner(topic, partition, replica_id)),
            wait_s=DIRECTORY_LOCK_WAIT_S,
        )
        started = time.monotonic()
        self.log = PartitionLog(self.directory, to_log_config(config))
        self.open_seconds = time.monotonic() - started
        self.epochs = LeaderEpochCache(self.directory)
        # Recovery may have cut the log below epochs the cache recorded (a power loss): forget them,
        # or a consumer's truncation check would find records of an epoch that are gone.
        self.epochs.truncate_from(self.log.log_end_offset)
        self._apply_config(config)
        self.replica_lag_time_max_ms = replica_lag_time_max_ms
        self.replicate_timeout_ms = replicate_timeout_ms
        self.max_waiting_fetches = max_waiting_fetches
        self._waiting_fetches = 0  # long polls waiting now (fetch)
        self.role = "unknown"
        self.leader_epoch = self.epochs.latest_epoch
        self.high_watermark = self.log.log_start_offset
        self.leader_id: str | None = None
        self._leading: LeaderReplication | None = None
        self._hw_moved = asyncio.Event()
        self._sequencer = Sequencer(self.name, lambda: self.log.producer_state)
        self.metrics = PartitionMetrics(topic, partition)
        if self.log.recovery_truncated_bytes:
            logger.warning(
                "%s: recovery cut %d bytes (torn or damaged frames, %d later segment(s) past a hole); "
                "log ends at offset %d",
                self.name,
                self.log.recovery_truncated_bytes,
                self.log.recovery_lost_segments,
                self.log.log_end_offset,
            )
            self.metrics.recovered(self.log.recovery_truncated_bytes, self.log.recovery_lost_segments)
        # Everything alive now (Ray, pyarrow, this module: ~73k objects) is long-lived: keep it out
        # of the cyclic collector, whose full pass over it stalled the loop ~19 ms here (measured in
        # an actor process; 0.0007 ms once frozen) -- a latency spike for every call waiting.
        gc.freeze()
        loop = asyncio.get_running_loop()  # Ray runs an async actor's constructor on its loop
        self._tasks = [
            loop.create_task(self._maintain(maintenance_interval_ms)),
            loop.create_task(self._register()),
        ]

    def _apply_config(self, config: dict[str, str]) -> None:
        self.config = dict(config)
        self.max_message_bytes = config_value(config, "max.message.bytes")
        self.log_append_time = config_value(config, "message.timestamp.type") == "LogAppendTime"
        self.min_insync_replicas = config_value(config, "min.insync.replicas")

    # -- roles -----------------------------------------------------------------

    async def _register(self) -> None:
        """Ask the TopicManager for this replica's role until it has one (it calls become_*)."""
        while self.role == "unknown":
            try:
                manager = ray.get_actor(TOPIC_MANAGER_NAME, namespace=self.namespace)
                await manager.replica_ready.remote(self.topic, self.partition, self.replica_id)
            except Exception as exc:  # the manager is (re)starting
                logger.info("%s: waiting for the topic manager (%s)", self.name, type(exc).__name__)
            if self.role == "unknown":
                await asyncio.sleep(REGISTER_RETRY_MS / 1000)

    async def become_leader(self, epoch: int, followers: dict, in_sync: list[str]) -> int:
        """Lead from ``epoch`` on, replicating to ``followers`` ({replica_id: handle}).

        Returns the log end."""
        self._require_healthy_disk()
        if epoch < self.leader_epoch:
            raise FencedLeader(f"{self.name}: epoch {epoch} is older than {self.leader_epoch}")
        if self.role == "leader" and epoch == self.leader_epoch:
            return self.log.log_end_offset
        if self.role != "leader":
            # A new term here: the cached answers may name offsets another leader truncated, so
            # start a new baseline before taking appends. A leader that only gets a new epoch
            # (a follower was added or re-placed) keeps its log and so its answers: a retry of
            # a batch it appended is answered, not stored twice.
            await self._sequencer.reset()
        self._stop_leading()
        # The epoch is on disk before this replica acts as its leader: if recording it fails (a
        # disk fault), this replica has no role and answers so; the TopicManager sends it again.
        self.role = "unknown"
        self.epochs.assign(epoch, self.log.log_end_offset)
        self.role, self.leader_epoch, self.leader_id = "leader", epoch, self.replica_id
        self._leading = LeaderReplication(
            self,
            epoch,
            followers,
            in_sync,
            high_watermark=self.high_watermark,
            lag_time_max_ms=self.replica_lag_time_max_ms,
            replicate_timeout_ms=self.replicate_timeout_ms,
        )
        self.on_high_watermark(self._leading.tracker.high_watermark)  # alone in the ISR: all of the log
        logger.info(
            "%s: leader for epoch %d at log end %d (ISR %s)",
            self.name,
            epoch,
            self.log.log_end_offset,
            self._leading.isr(),
        )
        return self.log.log_end_offset

    async def become_follower(self, epoch: int, leader_id: str, leader) -> int:
        """Follow ``leader`` from ``epoch`` on, truncating what the leader never had; returns the log end."""
        self._require_healthy_disk()
        if epoch < self.leader_epoch:
            raise FencedLeader(f"{self.name}: epoch {epoch} is older than {self.leader_epoch}")
        self._stop_leading()
        my_epoch = self.epochs.latest_epoch
        if my_epoch >= 0 and self.log.log_end_offset > self.log.log_start_offset:
            end_of_my_epoch = await leader.epoch_end_offset.remote(my_epoch)
            if end_of_my_epoch < self.log.log_end_offset:
                logger.warning(
                    "%s: truncating %d..%d (not in the new leader's log)",
                    self.name,
                    end_of_my_epoch,
                    self.log.log_end_offset,
                )
                self._truncate(end_of_my_epoch)
        self.role, self.leader_epoch, self.leader_id = "follower", epoch, leader_id
        return self.log.log_end_offset

    def deposed(self) -> None:
        """A newer leader exists (learned from a follower or the manager): stop leading, ask for a role."""
        if self.role != "leader":
            return
        self._stop_leading()
        self.role = "unknown"
        self._tasks.append(asyncio.get_running_loop().create_task(self._register()))

    def _stop_leading(self) -> None:
        if self._leading is not None:
            self._leading.stop()
            self._leading = None

    def _truncate(self, offset: int) -> None:
        if offset < self.log.log_start_offset:
            offset = self.log.log_start_offset
        self.log.truncate_to(offset)
        self.epochs.truncate_from(self.log.log_end_offset)
        self.high_watermark = min(self.high_watermark, self.log.log_end_offset)

    def _require_healthy_disk(self) -> None:
        if self.log.failure is not None:
            raise self._disk_failed(self.log.failure)

    def _require_leader(self) -> None:
        if self.role != "leader":
            raise NotLeader(
                f"replica {self.replica_id} of {self.name} is {self.role}, not the leader "
                f"(epoch {self.leader_epoch}); refresh metadata and retry"
            )

    def on_high_watermark(self, high_watermark: int) -> None:
        """Called by LeaderReplication when the high watermark moves: wakes long polls and acks=all."""
        if high_watermark > self.high_watermark:
            self.high_watermark = high_watermark
            moved, self._hw_moved = self._hw_moved, asyncio.Event()
            moved.set()

    # -- produce (leader) --------------------------------------------------------

    async def append(self, payload, request: tuple = DEFAULT_APPEND_REQUEST):
        """Append one record batch, or a produce request's list of them, in order.

        ``payload`` is the Arrow IPC message of one batch in RECORD_SCHEMA: the answer is
        ``(base_offset, log_append_time_ms or -1)``, or the batch's error is raised. A list
        of them is answered with a list holding, per batch, that pair or the exception that
        rejected that batch (nothing of it written; the others are appended). One call per
        batch costs ~1 ms of CPU on each side here, so a producer with a backlog groups its
        batches (docs/PERFORMANCE.md).

        ``request`` is ``(producer_id, seq, first_unacked, acks, timeout_ms, sync, leader_epoch)``
        in one argument: Ray serializes each argument on its own, and seven small arguments made a
        one-record append reach the actor ~1.5 ms later than two (docs/PERFORMANCE.md).

        With a ``producer_id``, batches are appended in ``seq`` order per producer (a list
        holds ``seq, seq + 1, ...``; ``first_unacked``: the producer's lowest unanswered seq,
        see sequencing). An idempotent producer's ``producer_id`` is ``(id, epoch)``, the id a
        63-bit int: its batches carry them in their frame headers and a batch stored already
        is answered with its offsets, not stored again, here or on any later leader. Any other
        ``producer_id`` is only ordered. ``acks="all"`` answers once every in-sync replica
        holds the batches. ``sync`` forces an fsync first (group-committed with every append
        waiting). ``leader_epoch``: the epoch in the producer's metadata; a deposed leader (the
        producer knows a newer epoch) acknowledges nothing (see ``_check_client_epoch``).
        """
        producer_id, seq, first_unacked, acks, timeout_ms, sync, leader_epoch = (*request, None)[:7]
        started = time.perf_counter()
        single = not isinstance(payload, list)
        payloads = [payload] if single else payload
        if not payloads or len(payloads) > MAX_BATCHES_PER_REQUEST:
            raise ValueError(
                f"a produce request carries 1 to {MAX_BATCHES_PER_REQUEST} batches, got {len(payloads)}"
            )
        self._require_leader()
        self._check_client_epoch(leader_epoch)
        idempotent = isinstance(producer_id, tuple)
        pid, producer_epoch = producer_id if idempotent else (producer_id, None)
        if idempotent and not (type(pid) is int and 0 <= pid < 1 << 63 and type(producer_epoch) is int):
            raise ValueError(f"an idempotent producer is (63-bit int id, int epoch), got {producer_id!r}")

        def append_one(payload, sequence: int | None = None):
            if acks == "all":  # per batch: a retry of a batch stored already is answered even so
                self._require_min_insync()
            return self._append_now(payload, (pid, producer_epoch, sequence) if idempotent else NO_PRODUCER)

        appends = [functools.partial(append_one, p) for p in payloads]
        if producer_id is None:
            results = [attempt(append) for append in appends]
        else:
            first = seq if first_unacked is None else first_unacked
            results = await self._sequencer.run(pid, producer_epoch, seq, first, appends, timeout_ms)
        appended = [r for r in results if not isinstance(r, Exception)]
        if appended:
            end = max(r[2] for r in appended)
            if sync or self.log.flush_due():
                await self._sync_through(end)
            if acks == "all":
                await self._wait_replicated(end, timeout_ms)
            self.metrics.appended(
                sum(r[2] - r[0] for r in appended),
                sum(len(p) for p, r in zip(payloads, results, strict=True) if not isinstance(r, Exception)),
                (time.perf_counter() - started) * 1000,
            )
        answers = [r if isinstance(r, Exception) else (r[0], r[1]) for r in results]
        if single:
            if isinstance(answers[0], Exception):
                raise answers[0]
            return answers[0]
        return answers

    def _require_min_insync(self) -> None:
        if self._isr_below_min():  # (not leading any more: _append_now says NotLeader)
            raise NotEnoughReplicas(
                f"{self.name}: {self._leading.tracker.in_sync_count()} replica(s) in sync, fewer than "
                f"min.insync.replicas={self.min_insync_replicas}; nothing was written. Retry when the "
                f"followers are back, or produce with acks=1"
            )

    def _append_now(self, payload, producer: tuple = NO_PRODUCER) -> tuple[int, int, int]:
        """Append one batch; ``producer``: an idempotent producer's ``(id, epoch, sequence)``."""
        self._require_leader()  # may have changed while this append waited for its turn
        # Bounds before anything else: max.message.bytes caps the whole payload (headers, Arrow's
        # framing; Kafka's record batch limit), then every byte is validated (decode_record_batch).
        if len(payload) > self.max_message_bytes:
            raise MessageTooLarge(
                f"a batch of {len(payload)} bytes exceeds max.message.bytes={self.max_message_bytes} of "
                f"topic {self.topic!r}; nothing of this batch was written. Send smaller batches or raise "
                f"the limit with alter_topic_config"
            )
        try:
            batch = decode_record_batch(payload)
            max_ts = max_timestamp_ms(batch) if batch.num_rows else -1
        except InvalidRecordBatch as exc:
            raise InvalidRecord(f"{self.name}: rejected append, nothing of it was written: {exc}") from None
        count = batch.num_rows
        if count == 0:
            raise InvalidRecord("an append needs at least one record")
        if self.log_append_time:
            first_ts = max_ts = now_ms()
            attributes = ATTR_LOG_APPEND_TIME
        else:
            first_ts = batch.column(2)[0].as_py()
            attributes = 0
        try:
            base = self.log.append(
                payload,
                record_count=count,
                first_timestamp_ms=first_ts,
                max_timestamp_ms=max_ts,
                attributes=attributes,
                leader_epoch=self.leader_epoch,
                producer_id=producer[0],
                producer_epoch=producer[1],
                sequence=producer[2],
            )
        except storage.StorageFull as exc:
            raise StorageFull(f"{self.name}: {exc}") from None
        except storage.LogDirFailed as exc:
            raise self._disk_failed(exc) from None
        self._leading.on_append()
        return base, (max_ts if self.log_append_time else -1), base + count

    async def _wait_replicated(self, end: int, timeout_ms: int) -> None:
        """Until every in-sync replica holds the offsets below ``end`` and they are at least
        ``min.insync.replicas`` (Kafka's ``checkEnoughReplicasReachOffset``). When the ISR shrank
        below that after the append -- also when the shrink is what moved the high watermark
        past ``end``: the leader alone has the batch -- NotEnoughReplicasAfterAppend."""
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            if self.high_watermark >= end and not self._isr_below_min():
                return
            if self.role != "leader":
                raise NotLeader(f"{self.name}: lost leadership before the batch was replicated; retry")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RequestTimedOut(f"{self.name}: in-sync replicas did not confirm within {timeout_ms} ms")
            moved = self._hw_moved
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(moved.wait(), min(remaining, 0.5))
            if self._isr_below_min():
                raise NotEnoughReplicasAfterAppend(
                    f"{self.name}: the ISR shrank below min.insync.replicas={self.min_insync_replicas} "
                    f"after the append; the batch is in the leader's log but not acknowledged (an "
                    f"idempotent producer's retry is answered, not stored again)"
                )

    def _isr_below_min(self) -> bool:
        return self._leading is not None and self._leading.tracker.in_sync_count() < self.min_insync_replicas

    async def _sync_through(self, offset: int) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.log.sync_through, offset)
        except storage.LogDirFailed as exc:
            raise self._disk_failed(exc) from None

    def _disk_failed(self, exc: storage.LogDirFailed) -> LogDirFailed:
        """The disk under this replica failed: it stops leading and acknowledging for good (its
        health answer says "failed", so the TopicManager elects another in-sync replica)."""
        if self.role != "failed":
            logger.error("%s: replica %s failed: %s", self.name, self.replica_id, exc)
            self._stop_leading()
            self.role = "failed"
        return LogDirFailed(f"{self.name}: replica {self.replica_id}'s data directory failed ({exc}); retry")

    # -- replicate (follower) ------------------------------------------------------

    async def replicate(
        self, epoch: int, from_offset: int, frames, leader_high_watermark: int, leader_log_start: int
    ) -> int:
        """Append the leader's frames that continue this log; returns this replica's log end.

        Frames this replica already holds (a retried request) are skipped; at a gap
        nothing is appended and the answer tells the leader where to resend from.
        """
        if epoch < self.leader_epoch:
            raise FencedLeader(
                f"{self.name}: a leader of epoch {epoch} was deposed (now {self.leader_epoch})"
            )
        self._require_healthy_disk()
        if self.role != "follower" or epoch != self.leader_epoch:
            raise NotLeader(f"{self.name}: replica {self.replica_id} is not following epoch {epoch} yet")
        if self.log.log_end_offset < leader_log_start:
            self._reset_to(leader_log_start)  # what we miss is gone from the leader too
        for buf in frames:
            view = memoryview(buf).cast("B")
            start = None
            pos = 0
            for header, _ in iter_frames(view, verify=False):
                if header.base_offset == self.log.log_end_offset:
                    start = pos
                    break
                if header.base_offset > self.log.log_end_offset:
                    return self.log.log_end_offset  # a gap: the leader resends from our end
                pos += header.frame_length  # held already
            if start is None:
                continue
            tail = view[start:]
            for header, _ in iter_frames(tail, verify=False):
                if header.leader_epoch > self.epochs.latest_epoch:
                    self.epochs.assign(header.leader_epoch, header.base_offset)
            try:
                self.log.append_frames(tail)  # checks every CRC and offset before writing
            except storage.LogDirFailed as exc:
                raise self._disk_failed(exc) from None
        if self.log.flush_due():
            # The topic's flush policy holds on followers per replicate call as on the leader: with
            # flush.messages=1 (or flush.ms=0) the new log end is on this disk before the leader
            # hears of it, so an acks="all" acknowledgement is on every in-sync replica's disk.
            await self._sync_through(self.log.log_end_offset)
        self.high_watermark = min(max(self.high_watermark, leader_high_watermark), self.log.log_end_offset)
        if leader_log_start > self.log.log_start_offset:  # delete_records and retention follow the leader
            self.log.delete_records(min(leader_log_start, self.log.log_end_offset))
        return self.log.log_end_offset

    def _reset_to(self, offset: int) -> None:
        """Start over, empty, at ``offset`` (this replica is behind the leader's log start)."""
        logger.warning(
            "%s: restarting the replica empty at offset %d (behind the leader's log start)", self.name, offset
        )
        self.log.close()
        write_log_start_offset(str(self.directory), offset)
        self.log = PartitionLog(self.directory, to_log_config(self.config))  # opens empty at the checkpoint
        self.high_watermark = offset

    async def epoch_end_offset(self, epoch: int) -> int:
        """Where ``epoch`` ended in this replica's log (for a follower's truncation)."""
        return self.epochs.end_offset_for(epoch, self.log.log_end_offset)

    # -- consume (leader) ----------------------------------------------------------

    async def fetch(self, offset: int, max_bytes: int, max_wait_ms: int, epochs: tuple | None = None):
        """Whole frames below the high watermark from the batch holding ``offset`` on:
        ``(frames, log_start, high_watermark)``. At the high watermark, waits up to
        ``max_wait_ms`` for it to move (long poll), unless ``max_waiting_fetches`` wait
        already: FetchThrottled then, at once. OffsetOutOfRange outside ``[log_start, log_end]``.

        ``epochs``: ``(leader_epoch, last_fetched_epoch)`` as the client knows them (either may
        be None): the leader epoch in its metadata (fencing, see ``_check_client_epoch``) and
        the epoch of the record at ``offset - 1``. When that epoch ended below ``offset`` in
        this log, the log was truncated under the client: LogTruncated says where (KIP-320).
        """
        self._require_leader()
        if epochs is not None:
            self._check_client_epoch(epochs[0])
            self._check_truncation(offset, epochs[1])
        self._check_offset(offset)
        if offset >= self.high_watermark and max_wait_ms > 0:
            if self._waiting_fetches >= self.max_waiting_fetches:
                raise FetchThrottled(
                    f"{self.name}: {self._waiting_fetches} long polls are waiting already; retry shortly"
                )
            self._waiting_fetches += 1
            try:
                moved = self._hw_moved
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(moved.wait(), max_wait_ms / 1000)
            finally:
                self._waiting_fetches -= 1
            self._require_leader()
        if offset >= self.high_watermark:
            return [], self.log.log_start_offset, self.high_watermark
        started = time.perf_counter()
        try:
            frames = self.log.read(offset, max_bytes, max_offset=self.high_watermark)
        except LogOffsetOutOfRange:  # retention or delete_records moved the start meanwhile
            self._check_offset(offset)
            raise
        except CorruptBatch as exc:
            raise CorruptRecord(
                f"{self.name} at offset {offset}: stored data failed its CRC and was not returned ({exc}); "
                f"seek past it or restore the replica"
            ) from None
        self.metrics.fetched(*_count_frames(frames, offset), (time.perf_counter() - started) * 1000)
        return frames, self.log.log_start_offset, self.high_watermark

    def _check_client_epoch(self, client_epoch: int | None) -> None:
        """A request's leader epoch must be this leader's: an older one comes from stale metadata
        (FencedLeaderEpoch: refresh), a newer one means this replica was deposed and does not
        know it yet (NotLeader): it must not serve or acknowledge anything."""
        if client_epoch is None or client_epoch == self.leader_epoch:
            return
        if client_epoch < self.leader_epoch:
            raise FencedLeaderEpoch(
                f"{self.name}: request for leader epoch {client_epoch}, the leader's is {self.leader_epoch}; "
                f"refresh metadata"
            )
        raise NotLeader(
            f"{self.name}: replica {self.replica_id} is at epoch {self.leader_epoch}, the client knows "
            f"epoch {client_epoch}: a newer leader exists"
        )

    def _check_truncation(self, offset: int, last_fetched_epoch: int | None) -> None:
        if last_fetched_epoch is None or last_fetched_epoch < 0 or offset <= self.log.log_start_offset:
            return
        if last_fetched_epoch > self.leader_epoch:
            raise NotLeader(f"{self.name}: the client read epoch {last_fetched_epoch}, newer than this one")
        end = self.epochs.end_offset_for(last_fetched_epoch, self.log.log_end_offset)
        if end < offset:
            divergent = max(end, self.log.log_start_offset)
            raise LogTruncated(
                f"{self.name}: the log was truncated at offset {divergent} below the position {offset} "
                f"(records of epoch {last_fetched_epoch} end there now)",
                divergent,
                earliest=self.log.log_start_offset,
                latest=self.high_watermark,
            )

    def _check_offset(self, offset: int) -> None:
        start, end = self.log.log_start_offset, self.log.log_end_offset
        if not start <= offset <= end:
            raise OffsetOutOfRange(
                f"offset {offset} is outside {self.name}'s range [{start}, {end}]; "
                f"seek to an offset in range or use auto_offset_reset",
                earliest=start,
                latest=self.high_watermark,
            )

    # -- offsets and admin -----------------------------------------------------

    async def offsets(self) -> tuple[int, int]:
        """``(log_start_offset, high_watermark)``: the range consumers can read."""
        self._require_leader()
        return self.log.log_start_offset, self.high_watermark

    async def list_offset(self, spec: str | int) -> int:
        """``"earliest"``, ``"latest"`` (the high watermark), or the first offset with
        timestamp >= ``spec`` (else the high watermark)."""
        self._require_leader()
        if spec == "earliest":
            return self.log.log_start_offset
        if spec == "latest":
            return self.high_watermark
        found = self.log.offset_for_timestamp(int(spec))
        if found is None or found >= self.high_watermark:
            return self.high_watermark
        return max(found, self.log.log_start_offset)

    async def delete_records(self, before_offset: int) -> int:
        """Move the log start to ``before_offset`` (at most the high watermark); returns the new log start."""
        self._require_leader()
        if not 0 <= before_offset <= self.high_watermark:
            raise OffsetOutOfRange(
                f"delete_records offset {before_offset} is past the end of {self.name} "
                f"({self.high_watermark}); give an offset <= {self.high_watermark}",
                earliest=self.log.log_start_offset,
                latest=self.high_watermark,
            )
        try:
            return self.log.delete_records(before_offset)
        except LogOffsetOutOfRange:
            return self.log.log_start_offset

    async def update_config(self, config: dict[str, str]) -> None:
        self._apply_config(config)
        self.log.update_config(to_log_config(config))

    async def apply_retention(self) -> int:
        return self.log.apply_retention(max_offset=self.high_watermark)

    async def flush(self) -> None:
        await self._sync_through(self.log.log_end_offset)

    @ray.method(concurrency_group="control")
    async def health(self) -> tuple[str, int]:
        """``(role, epoch)``, answered on the actor's own control loop (a concurrency group with
        its own thread), so a leader whose main loop is saturated by produce traffic still
        answers the TopicManager's liveness check and is not deposed for being busy."""
        return self.role, self.leader_epoch

    async def state(self) -> dict:
        """Role, epoch, offsets, (leader) ISR and long polls waiting, for operators and tests."""
        return {
            "role": self.role,
            "epoch": self.leader_epoch,
            "log_start_offset": self.log.log_start_offset,
            "log_end_offset": self.log.log_end_offset,
            "high_watermark": self.high_watermark,
            "flushed_offset": self.log.flushed_offset,
            "isr": self._leading.isr() if self._leading is not None else None,
            "producers": len(self.log.producer_state),
            "waiting_fetches": self._waiting_fetches,
        }

    async def info(self) -> dict:
        """Diagnostics: process id, node, directory, sizes, role, how long the log took to open."""
        return {
            **(await self.state()),
            "pid": os.getpid(),
            "node_id": ray.get_runtime_context().get_node_id(),
            "replica_id": self.replica_id,
            "directory": str(self.directory),
            "size_bytes": self.log.size_bytes,
            "segments": len(self.log.segment_base_offsets),
            "open_seconds": self.open_seconds,
        }

    async def destroy(self) -> None:
        """Delete this replica's data (topic deletion, reassignment); the caller kills the actor next."""
        self._stop_leading()
        for task in self._tasks:
            task.cancel()
        self.role = "deleted"
        self.log.destroy()
        self._dir_lock.release()
        try:
            self.directory.parent.rmdir()  # <topic>-<partition>/, once its last replica is gone
        except OSError:
            pass  # another replica of the partition shares this disk

    # -- background --------------------------------------------------------------

    async def _maintain(self, interval_ms: int) -> None:
        while True:
            await asyncio.sleep(interval_ms / 1000)
            try:
                self.metrics.offsets(self.log.log_start_offset, self.log.log_end_offset, self.high_watermark)
                if self.log.flush_due():
                    await self._sync_through(self.log.log_end_offset)
                deleted = self.log.apply_retention(max_offset=self.high_watermark)
                if deleted:
                    logger.info("%s: retention deleted %d segment(s)", self.name, deleted)
                expired = self.log.expire_producers()
                if expired:
                    logger.info("%s: forgot %d idle producer(s)", self.name, expired)
            except Exception:  # keep maintaining; the next round retries
                logger.exception("%s: maintenance failed", self.name)


def _count_frames(frames: list, from_offset: int) -> tuple[int, int]:
    """Records at or after ``from_offset`` and bytes in a fetch response (headers only, no CRC)."""
    records = nbytes = 0
    for buf in frames:
        nbytes += len(buf)
        for header, _ in iter_frames(buf, verify=False):
            records += header.next_offset - max(header.base_offset, from_offset)
    return records, nbytes
