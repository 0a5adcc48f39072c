"""Consumer: pulls Arrow batches from partition actors, with the next fetch already in flight.

Per assigned partition a ``_Fetcher`` keeps the consumer's *position* (the
next offset to hand out), a queue of decoded, not-yet-returned batches, and at
most one fetch in flight. Behind the log end, a fetch is issued as soon as the
previous response is decoded (prefetch), so the next batch travels while the
caller works; at the log end (small responses) the records are handed out
first and the next long poll is sent when the caller asks again. Buffering
stops at ``fetch_max_bytes`` per partition so a slow caller does not pull the
whole log into memory.

``poll``, ``poll_batch`` and iteration all consume from the same queues and
advance the position only for records actually handed out, so a commit never
covers a record the caller has not seen.
"""

from __future__ import annotations

import collections
import logging
import time
import uuid
import weakref
from collections.abc import Iterable, Iterator

import pyarrow as pa
import ray

from raykafka.api.connection import Settings, current_settings, group_coordinator, topic_manager
from raykafka.api.fetch import decode_fetch, empty_table, frame_epochs
from raykafka.api.group_member import GroupMember
from raykafka.api.message import Message
from raykafka.api.rpc import ACTOR_GONE, call, require_ray, unwrap
from raykafka.api.validation import check_int, check_timeout
from raykafka.errors import (
    ConsumerClosed,
    FencedLeaderEpoch,
    FetchThrottled,
    LogDirFailed,
    LogTruncated,
    NotLeader,
    OffsetOutOfRange,
    RayNotConnected,
    RequestTimedOut,
    StaleGeneration,
)
from raykafka.groups.assignors import STRATEGIES
from raykafka.topic_config import validate_group_id, validate_topic_name
from raykafka.types import TopicPartition

logger = logging.getLogger(__name__)

#: Pause before re-fetching from a partition actor that was unreachable or throttled the fetch.
FETCH_RETRY_BACKOFF_S = 0.1
#: A fetch unanswered this long past fetch_max_wait_ms is abandoned (its leader's node is likely gone).
FETCH_STUCK_GRACE_MS = 3_000
#: Responses at least this big mean a backlog: the next fetch is sent before the data is handed
#: out, so it travels while the caller works. Smaller ones mean the consumer is caught up: the
#: record goes to the caller first and the next (long-polling) fetch when the caller is back --
#: sending it costs ~0.3 ms here, which would otherwise delay every record at the log end.
PREFETCH_MIN_RESPONSE_BYTES = 64 << 10

_RESETS = ("earliest", "latest", "none")


class _Fetcher:
    """One assigned partition: position, decoded batches, the fetch in flight."""

    __slots__ = (
        "buffered_bytes",
        "chunk_start",
        "chunks",
        "epoch_marks",
        "fetch_offset",
        "generation",
        "in_flight",
        "in_flight_since",
        "leader",
        "leader_epoch",
        "position",
        "py_columns",
        "tp",
    )

    def __init__(
        self, tp: TopicPartition, leader, position: int | None, leader_epoch: int | None = None, epoch=None
    ):
        self.tp = tp
        self.leader = leader
        self.leader_epoch = leader_epoch  # the leader's epoch in the metadata that named it
        self.position = position  # next offset to hand out; None until resolved
        self.fetch_offset = position  # next offset to fetch (>= position while prefetching)
        self.chunks: collections.deque[pa.RecordBatch] = collections.deque()
        self.chunk_start = 0  # rows of chunks[0] already handed out
        self.generation = 0  # bumped whenever chunks[0] changes or the fetcher is reset
        self.py_columns: tuple | None = None  # chunks[0] as Python lists, for poll()
        self.buffered_bytes = 0
        self.in_flight = None  # ObjectRef of the fetch, or None
        self.in_flight_since = 0.0
        # (offset, leader epoch) where each epoch's records begin, from the record before the
        # position on: a fetch names the epoch of the record before it, and a commit the epoch of
        # the record it follows, so the leader can tell a truncation under them (KIP-320)
        self.epoch_marks: list[tuple[int, int]] = []
        self._mark_start(position, epoch)

    def _mark_start(self, position: int | None, epoch: int | None) -> None:
        self.epoch_marks = [] if position is None or epoch is None else [(position - 1, epoch)]

    def epoch_before(self, offset: int | None) -> int | None:
        """The leader epoch of the record at ``offset - 1``, when known."""
        found = None
        if offset is not None:
            for start, epoch in self.epoch_marks:
                if start > offset - 1:
                    break
                found = epoch
        return found

    def note_epochs(self, marks: list[tuple[int, int]]) -> None:
        """Fetched frames began at these (offset, epoch): keep the changes of epoch."""
        for start, epoch in marks:
            if not self.epoch_marks or self.epoch_marks[-1][1] != epoch:
                self.epoch_marks.append((start, epoch))
        position = self.position
        while len(self.epoch_marks) > 1 and position is not None and self.epoch_marks[1][0] <= position - 1:
            del self.epoch_marks[0]

    def reset(self, position: int | None, epoch: int | None = None) -> None:
        """Go to ``position`` (``epoch``: of the record before it, when known)."""
        self._mark_start(position, epoch)
        self.position = self.fetch_offset = position
        self.chunks.clear()
        self.generation += 1
        self.chunk_start = 0
        self.py_columns = None
        self.buffered_bytes = 0
        self.in_flight = None  # a response still on its way is dropped when it arrives

    def drop_head(self) -> None:
        # The bookkeeping first and the pop last, with no call between: a KeyboardInterrupt
        # (raised after a call returns) leaves the head either whole or gone, never a new head
        # with the old one's chunk_start and Python columns.
        self.buffered_bytes -= self.chunks[0].nbytes
        self.generation += 1
        self.chunk_start = 0
        self.py_columns = None
        self.chunks.popleft()


class Consumer:
    """Reads messages: from partitions it is given by its group (``subscribe``,
    ``create_message_streams``) or that it picks itself (``assign``).

    Defaults follow the Kafka clients (``auto_offset_reset="latest"``,
    ``fetch_max_wait_ms=500``, ...). Used by one thread at a time.

    Example::

        from raykafka import Consumer, TopicPartition
        consumer = Consumer(group_id=None, auto_offset_reset="earliest")
        consumer.assign([TopicPartition("topic1", 0)])
        table = consumer.poll_batch(max_messages=10_000, timeout_s=1.0)
    """

    def __init__(
        self,
        group_id: str | None = "g1",
        auto_offset_reset: str = "latest",
        enable_auto_commit: bool = True,
        auto_commit_interval_ms: int = 5000,
        session_timeout_ms: int = 10000,
        heartbeat_interval_ms: int = 1000,
        fetch_max_wait_ms: int = 500,
        fetch_max_bytes: int = 8 << 20,
        request_timeout_ms: int = 30000,
        partition_assignment_strategy: str = "cooperative-sticky",
        *,
        max_poll_interval_ms: int = 300000,
        settings: Settings | None = None,
    ):
        """``settings``: the connection to use instead of the process's (MessageStream passes its own)."""
        if group_id is not None:
            validate_group_id(group_id)
        if partition_assignment_strategy not in STRATEGIES:
            raise ValueError(
                f"partition_assignment_strategy must be one of {STRATEGIES}, "
                f"got {partition_assignment_strategy!r}"
            )
        if auto_offset_reset not in _RESETS:
            raise ValueError(f"auto_offset_reset must be one of {_RESETS}, got {auto_offset_reset!r}")
        for name, value, minimum in (
            ("auto_commit_interval_ms", auto_commit_interval_ms, 1),
            ("session_timeout_ms", session_timeout_ms, 1),
            ("heartbeat_interval_ms", heartbeat_interval_ms, 1),
            ("fetch_max_wait_ms", fetch_max_wait_ms, 0),
            ("fetch_max_bytes", fetch_max_bytes, 1),
            ("request_timeout_ms", request_timeout_ms, 1),
            ("max_poll_interval_ms", max_poll_interval_ms, 1),
        ):
            check_int(name, value, minimum)
        self.group_id = group_id
        self.auto_offset_reset = auto_offset_reset
        self.enable_auto_commit = enable_auto_commit
        self.auto_commit_interval_ms = auto_commit_interval_ms
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.fetch_max_bytes = fetch_max_bytes
        self.request_timeout_ms = request_timeout_ms
        self.max_poll_interval_ms = max_poll_interval_ms
        self.partition_assignment_strategy = partition_assignment_strategy
        self._settings: Settings = settings or current_settings()
        self._manager = topic_manager(self._settings)
        self._fetchers: dict[TopicPartition, _Fetcher] = {}
        self._order: list[TopicPartition] = []  # round-robin over partitions
        self._caught_up = False  # the last responses were small (see PREFETCH_MIN_RESPONSE_BYTES)
        self._leaders: dict[str, list] = {}
        self._leader_epochs: dict[str, list[int]] = {}  # per topic, from the same metadata as _leaders
        self._closed = False
        self._member: GroupMember | None = None  # set by subscribe
        self._coordinator = None
        self._next_auto_commit = time.monotonic() + auto_commit_interval_ms / 1000
        self._pending_commit = None  # ObjectRef of the last asynchronous auto-commit
        self._client_id = uuid.uuid4().hex  # numbers this consumer's commits (_next_commit_order)
        self._commit_seq = 0
        self._streams: list = []

    # -- assignment and positions ------------------------------------------------

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Read exactly these partitions (replacing any previous assignment).

        A TopicPartition's ``offset`` is its starting position; without one the
        position comes from ``auto_offset_reset``.
        """
        self._check_open()
        if self._member is not None:
            raise ValueError("this consumer subscribed to topics; assign() and subscribe() do not mix")
        tps = list(partitions)
        for tp in tps:
            if not isinstance(tp, TopicPartition):
                raise TypeError(f"assign takes TopicPartitions, got {type(tp).__name__}")
        for tp in tps:
            self._leader(tp)  # UnknownTopic / bad partition raise before anything changes
        self._fetchers = {tp: self._new_fetcher(tp, tp.offset) for tp in tps}
        self._order = list(self._fetchers)

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition) for tp in self._fetchers]

    def seek(self, partition: TopicPartition) -> None:
        """Make ``partition.offset`` the next offset to read. Checked against the log at the next fetch."""
        self._check_open()
        if not isinstance(partition, TopicPartition):
            raise TypeError(f"seek takes a TopicPartition, got {type(partition).__name__}")
        if partition.offset is None:
            raise ValueError("seek needs TopicPartition(topic, partition, offset=N)")
        fetcher = self._fetchers.get(partition)
        if fetcher is None:
            raise ValueError(f"{partition.topic}-{partition.partition} is not assigned to this consumer")
        fetcher.reset(partition.offset)

    def position(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The next offset each partition will hand out (resolving auto_offset_reset if needed)."""
        self._check_open()
        out = {}
        for tp in partitions:
            fetcher = self._fetchers.get(tp)
            if fetcher is None:
                raise ValueError(f"{tp.topic}-{tp.partition} is not assigned to this consumer")
            self._ensure_position(fetcher)
            out[TopicPartition(tp.topic, tp.partition)] = fetcher.position
        return out

    def _leader(self, tp: TopicPartition):
        leaders = self._leaders.get(tp.topic)
        if leaders is None:
            meta = call(
                self._manager.topic_metadata, tp.topic, timeout_s=self._timeout_s, what="topic metadata"
            )
            leaders = self._leaders[tp.topic] = meta["leaders"]
            self._leader_epochs[tp.topic] = meta["epochs"]
        if tp.partition >= len(leaders):
            raise ValueError(f"topic {tp.topic!r} has partitions 0..{len(leaders) - 1}; got {tp.partition}")
        return leaders[tp.partition]

    def _new_fetcher(self, tp: TopicPartition, position: int | None, epoch: int | None = None) -> _Fetcher:
        leader = self._leader(tp)
        return _Fetcher(tp, leader, position, self._leader_epochs[tp.topic][tp.partition], epoch)

    def _point_at_leader(self, fetcher: _Fetcher) -> None:
        """Aim ``fetcher`` at its partition's leader and epoch as the metadata cache says (popped
        first by a caller that wants them re-read)."""
        fetcher.leader = self._leader(fetcher.tp)
        fetcher.leader_epoch = self._leader_epochs[fetcher.tp.topic][fetcher.tp.partition]

    @property
    def _timeout_s(self) -> float:
        return self.request_timeout_ms / 1000

    def _ensure_position(self, fetcher: _Fetcher) -> None:
        if fetcher.position is None:
            self._reset_position(fetcher, None)

    def _reset_position(self, fetcher: _Fetcher, error: OffsetOutOfRange | None) -> None:
        policy = self.auto_offset_reset
        tp = fetcher.tp
        if policy == "none":
            if error is not None:
                raise error
            raise OffsetOutOfRange(
                f"{tp.topic}-{tp.partition} has no position and auto_offset_reset='none'; seek first"
            )

        def current_leader() -> tuple:
            # After a failover, or a restarted Ray that re-created the partition's actors on its new
            # nodes, the leader is another actor: re-read it instead of waiting on the old handle.
            self._leaders.pop(tp.topic, None)
            self._point_at_leader(fetcher)
            return fetcher.leader.list_offset, None

        offset = call(
            fetcher.leader.list_offset,
            policy,
            timeout_s=self._timeout_s,
            what="list offsets",
            refresh=current_leader,
        )
        fetcher.reset(offset)

    # -- fetching ----------------------------------------------------------------

    def _issue_fetches(self) -> None:
        for fetcher in self._fetchers.values():
            if fetcher.in_flight is None and fetcher.buffered_bytes < self.fetch_max_bytes:
                self._ensure_position(fetcher)
                require_ray()
                fetcher.in_flight = fetcher.leader.fetch.remote(
                    fetcher.fetch_offset,
                    self.fetch_max_bytes,
                    self.fetch_max_wait_ms,
                    (fetcher.leader_epoch, fetcher.epoch_before(fetcher.fetch_offset)),
                )
                fetcher.in_flight_since = time.monotonic()

    def _await_responses(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for fetch responses and buffer what they bring."""
        self._abandon_stuck_fetches()
        by_ref = {f.in_flight: f for f in self._fetchers.values() if f.in_flight is not None}
        if not by_ref:
            return
        require_ray()
        ready, _ = ray.wait(list(by_ref), num_returns=1, timeout=max(0.0, timeout_s))
        if ready and len(by_ref) > 1:  # take whatever else is ready too, without waiting
            more, _ = ray.wait(list(by_ref), num_returns=len(by_ref), timeout=0)
            ready = more or ready
        arrived_bytes = 0
        for ref in ready:
            fetcher = by_ref[ref]
            if fetcher.in_flight is not ref:
                continue  # superseded by a seek
            fetcher.in_flight = None
            try:
                frames, _log_start, _log_end = ray.get(ref)
            except ACTOR_GONE:
                self._lost_leader(fetcher)  # restarting, or its node is gone: maybe a new leader
                continue
            except ray.exceptions.RayTaskError as exc:
                cause = unwrap(exc)
                if isinstance(cause, LogTruncated):
                    self._truncated(fetcher, cause)
                    continue
                if isinstance(cause, OffsetOutOfRange):
                    self._reset_position(fetcher, cause)
                    continue
                if isinstance(cause, FencedLeaderEpoch):  # our metadata is older than the leader
                    self._lost_leader(fetcher, backoff=False)
                    continue
                if isinstance(cause, FetchThrottled):  # the partition holds all the long polls it takes
                    time.sleep(FETCH_RETRY_BACKOFF_S)
                    continue
                if isinstance(cause, NotLeader | LogDirFailed):  # a new leader is (being) elected
                    self._lost_leader(fetcher)
                    continue
                raise cause from None
            arrived_bytes += sum(len(buf) for buf in frames)
            batches = decode_fetch(fetcher.tp.topic, fetcher.tp.partition, frames, fetcher.fetch_offset)
            fetcher.note_epochs(frame_epochs(frames, fetcher.fetch_offset))
            if batches:
                last = batches[-1]
                next_offset = last.column(2)[len(last) - 1].as_py() + 1
                added_bytes = sum(batch.nbytes for batch in batches)
                # No call between these three (see _Fetcher.drop_head): buffered records and
                # the next fetch's offset move together.
                fetcher.fetch_offset = next_offset
                fetcher.buffered_bytes += added_bytes
                fetcher.chunks.extend(batches)
        if ready:
            self._caught_up = arrived_bytes < PREFETCH_MIN_RESPONSE_BYTES

    def _truncated(self, fetcher: _Fetcher, error: LogTruncated) -> None:
        """The leader's log parted from what this consumer read at ``divergent_offset`` (KIP-320):
        resume there when there is a reset policy, as Kafka's consumer does; else raise."""
        if self.auto_offset_reset == "none":
            raise error
        position = fetcher.position if fetcher.position is not None else error.divergent_offset
        resume = min(position, error.divergent_offset)
        logger.warning(
            "%s-%d: log truncation detected (%s); resuming at offset %d",
            fetcher.tp.topic,
            fetcher.tp.partition,
            error,
            resume,
        )
        fetcher.reset(resume)

    def _prefetch(self) -> None:
        """Before handing data out: send the next fetches now only when behind (see
        PREFETCH_MIN_RESPONSE_BYTES); when caught up, the next call sends them."""
        if not self._caught_up:
            self._issue_fetches()

    def _abandon_stuck_fetches(self) -> None:
        """A fetch unanswered long past its long poll went to a dead node: ask the leader anew."""
        limit_s = (self.fetch_max_wait_ms + FETCH_STUCK_GRACE_MS) / 1000
        now = time.monotonic()
        for fetcher in self._fetchers.values():
            if fetcher.in_flight is not None and now - fetcher.in_flight_since > limit_s:
                fetcher.in_flight = None
                self._lost_leader(fetcher, backoff=False)

    def _lost_leader(self, fetcher: _Fetcher, backoff: bool = True) -> None:
        """Re-read the topic's leaders (after a failover they are other actors)."""
        if backoff:
            time.sleep(FETCH_RETRY_BACKOFF_S)
        topic = fetcher.tp.topic
        self._leaders.pop(topic, None)
        try:
            for f in self._fetchers.values():
                if f.tp.topic == topic:
                    self._point_at_leader(f)
        except (*ACTOR_GONE, RequestTimedOut):
            pass  # the topic manager is restarting; the next round tries again

    def _has_buffered(self) -> bool:
        return any(f.chunks for f in self._fetchers.values())

    def _fill(self, timeout_s: float | None) -> bool:
        """Make sure something is buffered, waiting up to ``timeout_s``; returns whether it is."""
        self._check_open()
        self._sync_group()
        self._issue_fetches()
        if self._has_buffered():
            return True
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            remaining = 1.0 if deadline is None else deadline - time.monotonic()
            step = min(remaining, 1.0)
            if self._member is not None:
                step = min(step, self.heartbeat_interval_ms / 1000, 0.05)  # apply new answers promptly
            if self._fetchers:
                self._await_responses(step)
            elif self._member is not None and not self._member.fenced():  # (fenced: answers wait)
                self._member.wait_for_answer(max(0.0, step))
            elif step > 0:
                time.sleep(step)
            self._sync_group()
            if self._has_buffered():
                self._prefetch()
                return True
            self._issue_fetches()
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def _rotate(self) -> list[_Fetcher]:
        # One store, no call: an interrupt cannot leave a partition out of the rotation.
        self._order = self._order[1:] + self._order[:1]
        return [self._fetchers[tp] for tp in self._order]

    # -- reading -----------------------------------------------------------------

    def poll_batch(self, max_messages: int = 10000, timeout_s: float = 1.0) -> pa.Table:
        """Up to ``max_messages`` records as a pyarrow Table (columns in API.md); may be empty."""
        if isinstance(max_messages, bool) or not isinstance(max_messages, int) or max_messages < 1:
            raise ValueError(f"max_messages must be an int >= 1, got {max_messages!r}")
        check_timeout(timeout_s)
        if not self._fill(timeout_s):
            return empty_table()
        taken: list[pa.RecordBatch] = []
        room = max_messages
        for fetcher in self._rotate():
            while fetcher.chunks and room:
                head = fetcher.chunks[0]
                start = fetcher.chunk_start
                rows = min(room, head.num_rows - start)
                taken.append(head.slice(start, rows) if (start or rows < head.num_rows) else head)
                room -= rows
                position = head.column(2)[start + rows - 1].as_py() + 1
                if start + rows == head.num_rows:
                    fetcher.drop_head()
                else:
                    fetcher.chunk_start = start + rows
                    fetcher.py_columns = None
                # Moved last: an interrupt before this leaves the rows to be taken again (this
                # call's result is lost with it), never counts rows as read that stay buffered.
                fetcher.position = position
            if not room:
                break
        self._prefetch()
        return pa.Table.from_batches(taken)

    def poll(self, timeout_s: float = 1.0) -> Message | None:
        """The next message, or None when none arrives within ``timeout_s``."""
        check_timeout(timeout_s)
        self._check_open()
        self._sync_group()
        for fetcher in self._fetchers.values():
            if fetcher.chunks:
                return self._take_one(fetcher)
        if not self._fill(timeout_s):
            return None
        for fetcher in self._rotate():
            if fetcher.chunks:
                return self._take_one(fetcher)
        return None

    def _take_one(self, fetcher: _Fetcher) -> Message:
        head = fetcher.chunks[0]
        if fetcher.py_columns is None:
            fetcher.py_columns = _python_columns(head)
        i = fetcher.chunk_start
        offsets, stamps, keys, values, headers = fetcher.py_columns
        tp = fetcher.tp
        message = Message._consumed(
            tp.topic, tp.partition, offsets[i], stamps[i], keys[i], values[i], headers[i]
        )
        if i + 1 == head.num_rows:
            fetcher.drop_head()
        else:
            fetcher.chunk_start = i + 1
        fetcher.position = offsets[i] + 1  # last, as in poll_batch
        return message

    def __iter__(self) -> Iterator[Message]:
        """Messages as they arrive; blocks, and never ends until the consumer is closed."""
        while not self._closed:
            if not self._fill(1.0):
                continue
            for fetcher in self._rotate():
                if not fetcher.chunks:
                    continue
                head = fetcher.chunks[0]
                offsets, stamps, keys, values, headers = fetcher.py_columns or _python_columns(head)
                tp_topic, tp_partition = fetcher.tp.topic, fetcher.tp.partition
                new = Message.__new__
                rows = head.num_rows
                start = i = fetcher.chunk_start
                generation = fetcher.generation
                # The message iterator's hot loop: one Message per record, built inline; zip walks
                # the column lists in C. Before each yield the fetcher already counts the record as
                # handed out: the caller may stop iterating and poll() or commit() next.
                columns = (offsets[start:], stamps[start:], keys[start:], values[start:], headers[start:])
                for offset, stamp, key, value, header in zip(*columns, strict=True):
                    i += 1
                    fetcher.position = offset + 1
                    if i == rows:
                        fetcher.drop_head()
                    else:
                        fetcher.chunk_start = i
                    m = new(Message)
                    m.topic = tp_topic
                    m.partition = tp_partition
                    m.offset = offset
                    m.timestamp_ms = stamp
                    m.key = key
                    m.value = value
                    m.headers = header
                    yield m
                    if i == rows or fetcher.chunk_start != i or fetcher.generation != generation:
                        break  # head done, or a seek/reset/poll moved on while the caller held the message

    # -- groups ------------------------------------------------------------------

    def subscribe(self, topics: Iterable[str]) -> None:
        """Join the group for ``topics``: the group decides which partitions this consumer reads."""
        self._check_open()
        if self.group_id is None:
            raise ValueError("subscribe needs a group_id; with group_id=None use assign()")
        if isinstance(topics, str):
            raise TypeError('subscribe takes a list of topic names, e.g. subscribe(["topic1"])')
        names = [validate_topic_name(t) for t in topics]
        if not names:
            raise ValueError("subscribe needs at least one topic")
        self._subscribe(names)

    def _subscribe(self, names: list[str], cohort_size: int | None = None) -> None:
        """``subscribe`` of validated names; a MessageStream passes how many streams were created
        with it, so the group's first assignment need not wait for more."""
        for name in names:
            self._leader(TopicPartition(name, 0))  # UnknownTopic at the call
        if self._member is not None:
            self._member.close()
        self._fetchers, self._order = {}, []
        self._member = GroupMember(
            self._settings,
            self.group_id,
            names,
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=self.heartbeat_interval_ms,
            strategy=self.partition_assignment_strategy,
            request_timeout_ms=self.request_timeout_ms,
            cohort_size=cohort_size,
            max_poll_interval_ms=self.max_poll_interval_ms,
        )
        # Dropped without close() (a notebook cell run again): the member leaves, its thread ends.
        weakref.finalize(self, GroupMember.abandon, self._member)

    def _group(self):
        if self.group_id is None:
            raise ValueError("this consumer has group_id=None: nothing is committed; give it a group_id")
        if self._coordinator is None:
            self._coordinator = (
                self._member.coordinator if self._member else group_coordinator(self._settings, self.group_id)
            )
        return self._coordinator

    def _sync_group(self) -> None:
        """Apply the group's latest answer: commit and drop revoked partitions, start new ones."""
        member = self._member
        if member is None:
            self._maybe_auto_commit()
            return
        if member.error is not None:
            error, member.error = member.error, None
            raise error
        if member.polled() and self._fetchers:
            # It had left the group for not polling: these partitions may be read by others now.
            self._fetchers, self._order = {}, []
            member.report([], None)
        if member.fenced():
            # Probably removed from the group: another member may read these now. Stop; no commit.
            # Nor apply an answer that came too late: the member must hear from the coordinator
            # (or rejoin) first.
            if self._fetchers:
                self._fetchers, self._order = {}, []
                member.report([], None)
            return
        answer = member.take_answer()
        if answer is not None:
            wanted = set(answer["assigned"])
            revoked = [tp for tp in self._fetchers if tp not in wanted]
            if revoked and self.enable_auto_commit:
                self._commit_quietly({tp: self._fetchers[tp].position for tp in revoked})
            for tp in revoked:
                del self._fetchers[tp]
            committed, epochs = answer["committed"], answer.get("committed_epochs", {})
            for tp in sorted(wanted - set(self._fetchers), key=lambda t: (t.topic, t.partition)):
                self._fetchers[tp] = self._new_fetcher(tp, committed.get(tp), epochs.get(tp))
            self._order = [tp for tp in self._order if tp in self._fetchers] + [
                tp for tp in self._fetchers if tp not in self._order
            ]
            member.report(list(self._fetchers), answer)
        self._maybe_auto_commit()

    def _maybe_auto_commit(self) -> None:
        if not self.enable_auto_commit or self.group_id is None or time.monotonic() < self._next_auto_commit:
            return
        self._next_auto_commit = time.monotonic() + self.auto_commit_interval_ms / 1000
        require_ray()
        if self._pending_commit is not None:
            ready, _ = ray.wait([self._pending_commit], timeout=0)
            if not ready:
                return  # the previous one is still on its way
            try:
                ray.get(self._pending_commit)
            except Exception:  # refused (rebalanced) or unreachable: the next one carries newer offsets
                pass
        offsets = self._positions()
        if offsets:
            member_id = self._member.member_id if self._member else None
            self._pending_commit = self._group().commit.remote(
                member_id, offsets, self._next_commit_order(), self._epochs_of(offsets)
            )

    def _positions(self) -> dict[TopicPartition, int]:
        return {tp: f.position for tp, f in self._fetchers.items() if f.position is not None}

    def _epochs_of(self, offsets: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        """The leader epoch of the record before each offset, where this consumer read it."""
        epochs = {}
        for tp, offset in offsets.items():
            fetcher = self._fetchers.get(tp)
            epoch = (
                fetcher.epoch_before(offset) if fetcher is not None and fetcher.position == offset else None
            )
            if epoch is not None:
                epochs[tp] = epoch
        return epochs

    def _commit_quietly(self, offsets: dict) -> None:
        offsets = {tp: o for tp, o in offsets.items() if o is not None}
        if not offsets:
            return
        try:
            self._commit(offsets)
        # at-least-once: the next owner re-reads (after ray.shutdown(): nothing to tell)
        except (StaleGeneration, RayNotConnected, *ACTOR_GONE) as exc:
            logger.info("commit on revoke refused: %s", exc)

    def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        member_id = self._member.member_id if self._member else None
        order = self._next_commit_order()  # one number for every retry of this commit
        epochs = self._epochs_of(offsets)
        call(
            self._group().commit, member_id, offsets, order, epochs, timeout_s=self._timeout_s, what="commit"
        )

    def _next_commit_order(self) -> tuple[str, int]:
        """``(client id, sequence)`` of the next commit: the coordinator drops a commit older than
        one it stored (an async auto-commit overtaken by a later commit, a timed-out commit that
        still lands), so the group's offsets never move back by accident."""
        self._commit_seq += 1
        return self._client_id, self._commit_seq

    def commit(self, offsets=None) -> None:
        """Commit ``offsets`` (TopicPartitions with offsets, or ``{tp: offset}``); None commits the
        current positions. The offset is the NEXT one to read, as in Kafka. Raises StaleGeneration
        when the group moved a partition away from this consumer."""
        self._check_open()
        self._group()
        if offsets is None:
            chosen = self._positions()
        elif isinstance(offsets, dict):
            chosen = {TopicPartition(tp.topic, tp.partition): o for tp, o in offsets.items()}
        else:
            chosen = {}
            for tp in offsets:
                if not isinstance(tp, TopicPartition) or tp.offset is None:
                    raise ValueError("commit takes TopicPartition(topic, partition, offset=N) items")
                chosen[TopicPartition(tp.topic, tp.partition)] = tp.offset
        for tp, offset in chosen.items():
            if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
                raise ValueError(f"commit offset for {tp.topic}-{tp.partition} must be an int >= 0")
        if chosen:
            self._commit(chosen)

    def committed(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        """The group's committed offsets (None where nothing was committed)."""
        self._check_open()
        tps = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
        return call(self._group().committed, tps, timeout_s=self._timeout_s, what="committed")

    def create_message_streams(self, topic: str, n: int = 1, timeout_s: float | None = None) -> list:
        """``n`` MessageStreams over ``topic``, each one member of this consumer's group (the Kafka
        paper's call). Streams are picklable: hand them to Ray tasks or actors and iterate them there."""
        from raykafka.api.stream import MessageStream

        self._check_open()
        if self.group_id is None:
            raise ValueError("create_message_streams needs a group_id: each stream is a member of the group")
        validate_topic_name(topic)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an int >= 1, got {n!r}")
        check_timeout(timeout_s)
        self._leader(TopicPartition(topic, 0))  # UnknownTopic at the call
        config = self._config()
        streams = [MessageStream(self._settings, config, [topic], timeout_s, cohort_size=n) for _ in range(n)]
        self._streams.extend(streams)
        return streams

    def _config(self) -> dict:
        return {
            "group_id": self.group_id,
            "auto_offset_reset": self.auto_offset_reset,
            "enable_auto_commit": self.enable_auto_commit,
            "auto_commit_interval_ms": self.auto_commit_interval_ms,
            "session_timeout_ms": self.session_timeout_ms,
            "heartbeat_interval_ms": self.heartbeat_interval_ms,
            "fetch_max_wait_ms": self.fetch_max_wait_ms,
            "fetch_max_bytes": self.fetch_max_bytes,
            "request_timeout_ms": self.request_timeout_ms,
            "partition_assignment_strategy": self.partition_assignment_strategy,
        }

    # -- lifecycle -----------------------------------------------------------------

    def close(self) -> None:
        """Commit (with auto-commit), leave the group, stop fetching; further calls raise ConsumerClosed."""
        if self._closed:
            return
        try:
            if self.enable_auto_commit and self.group_id is not None and self._fetchers:
                self._commit_quietly(self._positions())
        finally:
            self._closed = True
            if self._member is not None:
                self._member.close()
            for stream in self._streams:
                stream.close()
            self._fetchers = {}
            self._order = []

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ConsumerClosed("this consumer is closed; create a new Consumer")


def _python_columns(batch: pa.RecordBatch) -> tuple:
    """offset, timestamp, key, value, headers of ``batch`` as Python lists (one C call each)."""
    headers = batch.column(6)
    if headers.null_count == len(headers):
        header_list = [None] * len(headers)
    else:
        header_list = [None if h is None else dict(h) for h in headers.to_pylist()]
    return (
        batch.column(2).to_pylist(),
        batch.column(3).to_pylist(),
        batch.column(4).to_pylist(),
        batch.column(5).to_pylist(),
        header_list,
    )
