"""Producer: batches records per partition on the client and ships Arrow batches to partition actors.

Data path: ``send`` appends to a per-partition ``RecordBuilder`` and returns a
``SendFuture`` at once. An unkeyed bytes record goes straight into the open builder of
its topic's sticky partition (``_lanes``) under that builder's own lock; every other send
takes the producer's lock. A batch closes when it reaches ``batch_size`` bytes (the
send that finds it full ships it from its own thread, saving a thread hand-off) or has
lingered ``linger_ms`` (the sender thread ships it; with ``linger_ms=0`` the caller's
thread ships every batch). Shipping encodes it to Arrow IPC and calls the partition
actor's ``append`` -- at most
``max_in_flight_requests_per_partition`` calls per partition at a time (while a
partition is at that limit its open batch keeps growing), and at
most ``buffer_memory`` bytes buffered before ``send`` blocks (backpressure,
not unbounded memory). ``request_timeout_ms`` bounds a batch from its first
request to its answer, retries included; time queued behind other batches does
not count (``buffer_memory`` and ``max_block_ms`` bound that).

Every batch carries this producer's id and a per-partition sequence number so
the partition actor appends them in send order (Ray may start an async actor's
calls out of order). With ``enable_idempotence`` (the default, as in Kafka 3.0) the id
is a random 63-bit integer with epoch 0 (KIP-98's producer id, chosen here instead of
asked of the TopicManager: see ``_new_producer_id``), and the partition stores id, epoch
and sequence number in each batch's frame header: a retry of a stored batch is answered
with its offsets, on the same leader or on a new one after a failover or a restart, so
every record is stored once. A batch whose actor is restarting (or whose leader moved,
or whose ISR shrank after the append: ``NotEnoughReplicasAfterAppend``, idempotent
producers only) is retried until ``request_timeout_ms`` after its first request; then
its future fails with ``RequestTimedOut``. Errors reach the futures and the next
``flush``. Futures are completed, and their callbacks run, with no producer lock held.
"""

from __future__ import annotations

import contextlib
import logging
import random
import secrets
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from raykafka.actors.sequencing import MAX_BATCHES_PER_REQUEST, RECENT_APPENDS_PER_PRODUCER
from raykafka.api.batching import normalize_table, now_ms, to_record_batch
from raykafka.api.connection import Settings, call_connected, current_settings, submit, topic_manager
from raykafka.api.message import Message, MessageSet, check_bytes, check_headers, check_timestamp
from raykafka.api.record_builder import MAX_OFFSET, RecordBuilder, RecordFutureBase
from raykafka.api.rpc import ACTOR_GONE, LEADER_ATTEMPT_S, call, unwrap
from raykafka.api.validation import check_int
from raykafka.errors import (
    FencedLeaderEpoch,
    LogDirFailed,
    MessageTooLarge,
    NotEnoughReplicasAfterAppend,
    NotLeader,
    ProducerClosed,
    RequestTimedOut,
    StorageFull,
    TopicAlreadyExists,
    UnknownTopic,
)
from raykafka.storage.records import (
    BATCH_OVERHEAD_BYTES,
    RECORD_OVERHEAD_BYTES,
    encode_record_batch,
    header_bytes,
    record_sizes,
)
from raykafka.topic_config import validate_topic_name
from raykafka.types import RecordMetadata

logger = logging.getLogger(__name__)

#: Answers a batch is sent again for (until request_timeout_ms): the leader moved or is
#: restarting, its disk is full (appends resume once space is freed), or its disk failed (the
#: partition fails over to another in-sync replica).
RETRIABLE = (*ACTOR_GONE, NotLeader, FencedLeaderEpoch, StorageFull, LogDirFailed)
#: An idempotent producer also retries a batch the leader stored but could not get onto
#: min.insync.replicas replicas: the retry is answered with the stored batch's offsets.
RETRIABLE_IDEMPOTENT = (*RETRIABLE, NotEnoughReplicasAfterAppend)

#: What a batch of one record adds to the record's key, value and header bytes: Arrow's
#: framing of the batch and of the record. A record fits a topic when its bytes plus these are
#: within max.message.bytes, which caps a whole batch's payload (storage.records).
FRAMING_BYTES = BATCH_OVERHEAD_BYTES + RECORD_OVERHEAD_BYTES

#: Kafka's default for max.in.flight.requests.per.connection.
DEFAULT_MAX_IN_FLIGHT_PER_PARTITION = 5
#: Kafka's default buffer.memory.
DEFAULT_BUFFER_MEMORY = 32 << 20
#: Kafka's default max.block.ms: how long send() blocks on a full buffer.
DEFAULT_MAX_BLOCK_MS = 60_000
#: How often the sender re-reads topic metadata (Kafka's metadata.max.age.ms).
METADATA_MAX_AGE_MS = 300_000
#: Pause before re-sending a batch whose partition actor was unreachable.
RETRY_BACKOFF_MS = 100
#: The most bytes of batches one append call carries (Kafka's max.request.size is 1 MiB with
#: 16 KiB batches; ours are up to 1 MiB): a backlog of 1 MiB batches goes out 8 per call.
DEFAULT_MAX_REQUEST_SIZE = 8 << 20


class BatchResult:
    """The outcome of one shipped batch, shared by the futures of its records."""

    __slots__ = (
        "base_offset",
        "callbacks",
        "done",
        "error",
        "log_append_time_ms",
        "partition",
        "timestamps",
        "topic",
    )

    def __init__(self, topic: str, partition: int):
        self.topic = topic
        self.partition = partition
        self.done = threading.Event()
        self.base_offset = -1
        self.log_append_time_ms = -1
        self.error: BaseException | None = None
        self.timestamps = None  # array('q') or pa.Int64Array
        self.callbacks: list[Callable[[], None]] | None = None

    def finish(self, base_offset: int = -1, log_append_time_ms: int = -1, error: BaseException | None = None):
        self.base_offset, self.log_append_time_ms, self.error = base_offset, log_append_time_ms, error
        self.done.set()
        for callback in self.callbacks or ():
            try:
                callback()
            except Exception:
                logger.exception("send future callback failed")

    def metadata(self, index: int) -> RecordMetadata:
        stamp = self.log_append_time_ms
        if stamp < 0:
            stamp = self.timestamps[index]
            stamp = stamp.as_py() if hasattr(stamp, "as_py") else stamp
        offset = self.base_offset + index if self.base_offset >= 0 else -1
        return RecordMetadata(self.topic, self.partition, offset, stamp)


class SendFuture:
    """The result of one ``send``/``send_batch``: ``result()`` is a list of RecordMetadata, in order."""

    __slots__ = ()
    _parts: list[tuple[BatchResult, int, int]]  # (batch, first index in batch, record count)

    def done(self) -> bool:
        return all(batch.done.is_set() for batch, _, _ in self._parts)

    def _wait(self, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        for batch, _, _ in self._parts:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not batch.done.wait(remaining):
                raise RequestTimedOut(f"send result not available within {timeout} s")

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._wait(timeout)
        for batch, _, _ in self._parts:
            if batch.error is not None:
                return batch.error
        return None

    def result(self, timeout: float | None = None) -> list[RecordMetadata]:
        """Block until every record is acknowledged; raise the first error."""
        error = self.exception(timeout)
        if error is not None:
            raise error
        return [batch.metadata(i) for batch, first, count in self._parts for i in range(first, first + count)]

    def add_done_callback(self, fn: Callable[[SendFuture], None]) -> None:
        """Call ``fn(self)`` once every record has its outcome (on a producer or Ray thread,
        no producer lock held: it may send(); it must not flush() or close())."""
        pending = [batch for batch, _, _ in self._parts]
        remaining = [len(pending)]
        lock = threading.Lock()

        def one_done() -> None:
            with lock:
                remaining[0] -= 1
                last = remaining[0] == 0
            if last:
                fn(self)

        for batch in pending:
            if batch.callbacks is None:
                batch.callbacks = []
            batch.callbacks.append(one_done)
            if batch.done.is_set() and one_done in batch.callbacks:
                batch.callbacks.remove(one_done)
                one_done()


class _PartsFuture(SendFuture):
    """The future of any records: the list of their parts."""

    __slots__ = ("_parts",)

    def __init__(self, parts: list[tuple[BatchResult, int, int]]):
        self._parts = parts


class _RecordFuture(RecordFutureBase, SendFuture):
    """The future of one record, made by ``RecordBuilder.append_value`` (send()'s fast lane):
    two fields, the parts list only on demand."""

    __slots__ = ()

    @property
    def _parts(self) -> list[tuple[BatchResult, int, int]]:
        return [(self._batch, self._index, 1)]


@dataclass
class _TopicState:
    name: str
    leaders: list
    max_message_bytes: int
    loaded_at: float
    sticky: int = 0
    stale: bool = False  # set by the sender thread when older than METADATA_MAX_AGE_MS
    # The leader actor's name per partition, read with ``leaders`` and replaced with it in one
    # assignment (``routes``: (handle, name) pairs), so a reader never pairs one with the other's
    # successor.
    routes: list = field(default_factory=list)
    checked_at: float = 0.0  # when the sender last re-read it for a request that waited long


class _Batch:
    """A closed batch on its way: payload, identity, retry bookkeeping."""

    __slots__ = (
        "attempts",
        "count",
        "first_sent_at",
        "last_error",
        "nbytes",
        "not_before",
        "partition",
        "payload",
        "result",
        "seq",
        "settled",
        "topic",
    )

    def __init__(self, topic, partition, payload, count, nbytes, result):
        self.topic, self.partition, self.payload = topic, partition, payload
        self.count, self.nbytes, self.result = count, nbytes, result
        self.seq = -1
        self.settled = False  # its end was accounted for (_settle_locked), exactly once
        self.attempts = 0
        self.first_sent_at: float | None = None  # request_timeout_ms counts from here, retries included
        self.not_before = 0.0  # monotonic time before which a retry is not sent
        self.last_error: BaseException | None = None  # what the last retried attempt answered


def _new_producer_id() -> int:
    """A random 63-bit producer id (Kafka's are 64-bit, handed out by InitProducerId).

    Drawn here, not asked of the TopicManager: a producer needs no call, no manager and no
    persisted counter to start. Two producers share an id with probability about
    n^2 / 2^64 for n producer ids a partition remembers at once (``producer.id.expiration.ms``
    keeps them a day): 2.7e-8 for a million. A shared id could make one producer's batch look
    like a retry of the other's (answered, not stored) -- only if its epoch and sequence number
    matched too."""
    return secrets.randbits(63)


def _record_bytes(value: bytes, key: bytes | None, headers: dict | None = None) -> int:
    """A record's key, value and header bytes (header_bytes counts each header's overhead too)."""
    return len(value) + (len(key) if key is not None else 0) + header_bytes(headers)


def _encode_within(rows: pa.RecordBatch, sizes, limit: int) -> list[tuple[pa.RecordBatch, pa.Buffer]]:
    """``rows`` as consecutive batches whose payloads are at most ``limit`` bytes
    (max.message.bytes), each with its payload: cut where ``sizes`` (their record_sizes) says,
    then checked on the encoded bytes. One cut and one encode when everything fits."""
    if BATCH_OVERHEAD_BYTES + int(sizes.sum()) <= limit:
        return _encoded(rows, limit)
    ends = np.cumsum(sizes)
    out: list[tuple[pa.RecordBatch, pa.Buffer]] = []
    start = 0
    while start < rows.num_rows:
        room = limit - BATCH_OVERHEAD_BYTES + (int(ends[start - 1]) if start else 0)
        stop = max(start + 1, int(np.searchsorted(ends, room, side="right")))
        out += _encoded(rows.slice(start, stop - start), limit)
        start = stop
    return out


def _encoded(rows: pa.RecordBatch, limit: int) -> list[tuple[pa.RecordBatch, pa.Buffer]]:
    """``rows`` encoded, within ``limit`` bytes. A slice may encode larger than its records
    (pyarrow pads sliced buffers to 64 bytes and may write a sliced map's child offsets whole):
    then it is copied compact, which record_sizes bounds, and split in two should even that
    not fit."""
    payload = encode_record_batch(rows)
    if len(payload) <= limit:
        return [(rows, payload)]
    # concat_arrays with an empty array copies into exact buffers (combine_chunks returns one chunk as is)
    compact = pa.RecordBatch.from_arrays(
        [pa.concat_arrays([column, column.slice(0, 0)]) for column in rows.columns], schema=rows.schema
    )
    payload = encode_record_batch(compact)
    if len(payload) <= limit:
        return [(compact, payload)]
    if rows.num_rows == 1:
        raise MessageTooLarge(f"a record's batch of {len(payload)} bytes exceeds max.message.bytes={limit}")
    half = rows.num_rows // 2
    return _encoded(rows.slice(0, half), limit) + _encoded(rows.slice(half), limit)


def _routes(meta: dict) -> list[tuple]:
    """``(leader handle, leader actor name, leader epoch)`` per partition (names None from an
    older manager)."""
    leaders = meta["leaders"]
    names = meta.get("leader_names") or [None] * len(leaders)
    return list(zip(leaders, names, meta["epochs"], strict=True))


def _well_formed(outcomes, n: int) -> bool:
    """An answer to a request of ``n`` batches: per batch an exception or ``(base, append_time)``."""
    return (
        isinstance(outcomes, list)
        and len(outcomes) == n
        and all(isinstance(o, BaseException) or _is_offset_pair(o) for o in outcomes)
    )


def _is_offset_pair(outcome) -> bool:
    return isinstance(outcome, tuple) and len(outcome) == 2 and all(type(v) is int for v in outcome)


class _Request:
    """Consecutive batches of one partition shipped in one ``append`` call (Kafka's produce
    request): one call per batch costs ~1 ms of CPU on each side on a small machine, so a
    backlog goes out in fewer, larger calls. Counts once against max_in_flight."""

    __slots__ = ("answer", "batches", "leader_name", "nbytes", "sent_at", "slot", "watched")

    def __init__(self, slot: tuple[str, int]):
        self.slot = slot
        self.batches: list[_Batch] = []
        self.nbytes = 0
        self.answer = None  # the append's future, once sent
        self.leader_name: str | None = None  # the actor it was sent to
        self.sent_at = 0.0
        self.watched = False  # its answer will reach _answer (or it was answered already)

    def takes(self, batch: _Batch, seq: int, max_request_size: int, max_batches: int) -> bool:
        """Whether ``batch`` (to be sent as ``seq``) may join: the next sequence number, within
        ``max_request_size`` and ``max_batches``, and a first attempt only with first attempts
        (a retry's partition may be slow to answer; a new batch should not wait with it)."""
        return (
            seq == self.batches[-1].seq + 1
            and self.nbytes + batch.nbytes <= max_request_size
            and len(self.batches) < max_batches
            and (batch.attempts == 0) == (self.batches[0].attempts == 0)
        )

    def add(self, batch: _Batch) -> None:
        self.batches.append(batch)
        self.nbytes += batch.nbytes


class Producer:
    """Sends messages to topics; safe to share between threads.

    Defaults follow the Kafka clients: ``acks=1`` (leader appended), ``linger_ms=5``,
    ``batch_size`` bytes per partition batch, ``partitioner="hash"`` (CRC32 of the key
    modulo partitions, as librdkafka's ``consistent_random``; unkeyed records stick
    to one partition per batch), ``enable_idempotence=True`` (Kafka 3.0's default: each
    record is stored once, whatever is retried; see the module docstring).

    Example::

        from raykafka import Producer, Message, MessageSet
        with Producer() as producer:
            producer.send("topic1", MessageSet(Message(b"test message str")))
            producer.send("topic1", b"value", key=b"k").result()
    """

    def __init__(
        self,
        acks: int | str = 1,
        linger_ms: int = 5,
        batch_size: int = 1 << 20,
        compression: str | None = None,
        partitioner: str = "hash",
        enable_idempotence: bool = True,
        request_timeout_ms: int = 30000,
        *,
        max_in_flight_requests_per_partition: int = DEFAULT_MAX_IN_FLIGHT_PER_PARTITION,
        buffer_memory: int = DEFAULT_BUFFER_MEMORY,
        max_block_ms: int = DEFAULT_MAX_BLOCK_MS,
        max_request_size: int = DEFAULT_MAX_REQUEST_SIZE,
        settings: Settings | None = None,
    ):
        if acks not in (0, 1, "all", -1):
            raise ValueError(f"acks must be 0, 1 or 'all', got {acks!r}")
        for name, value, minimum in (
            ("linger_ms", linger_ms, 0),
            ("batch_size", batch_size, 1),
            ("request_timeout_ms", request_timeout_ms, 1),
            ("max_in_flight_requests_per_partition", max_in_flight_requests_per_partition, 1),
            ("buffer_memory", buffer_memory, 1),
            ("max_block_ms", max_block_ms, 0),
            ("max_request_size", max_request_size, 1),
        ):
            check_int(name, value, minimum)
        if batch_size > MAX_OFFSET:  # a batch's values are one Arrow array with 32-bit offsets
            raise ValueError(f"batch_size must be <= {MAX_OFFSET} (Arrow's 32-bit offsets), got {batch_size}")
        if compression not in (None, "none"):
            raise ValueError(f"compression={compression!r} is not supported yet; use None")
        if partitioner not in ("hash", "round_robin"):
            raise ValueError(f"partitioner must be 'hash' or 'round_robin', got {partitioner!r}")
        if not isinstance(enable_idempotence, bool):
            raise TypeError(f"enable_idempotence must be a bool, got {type(enable_idempotence).__name__}")
        if enable_idempotence and max_in_flight_requests_per_partition > RECENT_APPENDS_PER_PRODUCER:
            raise ValueError(
                f"with enable_idempotence, max_in_flight_requests_per_partition must be <= "
                f"{RECENT_APPENDS_PER_PRODUCER} (the batches a partition remembers per producer), "
                f"got {max_in_flight_requests_per_partition}"
            )
        self.acks = "all" if acks == -1 else acks
        self.linger_ms = linger_ms
        self.batch_size = batch_size
        self.partitioner = partitioner
        self.enable_idempotence = enable_idempotence  # batches are always sequenced; see module doc
        self._retriable = RETRIABLE_IDEMPOTENT if enable_idempotence else RETRIABLE
        self.request_timeout_ms = request_timeout_ms
        self.max_in_flight = max_in_flight_requests_per_partition
        self.buffer_memory = buffer_memory
        self.max_block_ms = max_block_ms
        self.max_request_size = max_request_size
        # The partition remembers RECENT_APPENDS_PER_PRODUCER answers to de-duplicate retries:
        # never more batches in flight than that.
        per_request = RECENT_APPENDS_PER_PRODUCER // max_in_flight_requests_per_partition
        self._batches_per_request = max(1, min(MAX_BATCHES_PER_REQUEST, per_request))

        self._settings: Settings = settings or current_settings()  # settings: a connection of its own
        self._manager = topic_manager(self._settings)
        # An idempotent producer is (id, epoch) for the partitions; any other id is only ordered.
        self._producer_id = (_new_producer_id(), 0) if enable_idempotence else uuid.uuid4().hex
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._space = threading.Condition(self._lock)
        self._topics: dict[str, _TopicState] = {}
        self._open: dict[tuple[str, int], tuple[RecordBuilder, BatchResult, float]] = {}
        # topic -> the open builder of its sticky partition, for send()'s fast path (with
        # linger_ms > 0 and fresh metadata only; a sealed builder refuses, see _close_open_locked)
        self._lanes: dict[str, RecordBuilder] = {}
        self._ready: deque[_Batch] = deque()
        self._in_flight: dict[tuple[str, int], int] = {}
        self._in_flight_requests: dict[int, _Request] = {}
        self._requests_sent = 0  # append calls made (a request carries one or more batches)
        self._next_seq: dict[tuple[str, int], int] = {}
        self._unacked: dict[tuple[str, int], set[int]] = {}  # sent, not yet answered, per partition
        self._buffered_bytes = 0
        self._closed_full = False  # a send closed a full batch: it drains (_direct_locked)
        self._unfinished = 0
        self._errors: list[BaseException] = []
        self._closed = False
        self._sender = threading.Thread(target=self._run_sender, name="raykafka-producer-sender", daemon=True)
        self._sender.start()

    # -- public API --------------------------------------------------------------

    def send(
        self,
        topic: str,
        value: bytes | MessageSet | Message,
        key: bytes | None = None,
        headers: dict[str, bytes] | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> SendFuture:
        """Queue one message (bytes) or a MessageSet; returns at once with a future.

        ``future.result()`` is a list of RecordMetadata, one per message, in order.
        Raises at the call: TypeError/ValueError for bad arguments, UnknownTopic,
        MessageTooLarge, ProducerClosed.
        """
        # Fastest path, the common case: an unkeyed bytes value into the open builder of the
        # topic's sticky partition. The builder checks type and size, makes the future, and
        # refuses (None) when it is sealed or full; then the paths below take over.
        builder = self._lanes.get(topic)
        if (
            builder is not None
            and key is None
            and headers is None
            and partition is None
            and timestamp_ms is None
        ):
            future = builder.append_value(value)
            if future is not None:
                return future
        # Fast path: bytes value, optional bytes key, nothing else. Same checks as the general
        # path below, inlined, because this runs once per message.
        state = self._topics.get(topic)
        if (
            type(value) is bytes
            and (key is None or type(key) is bytes)
            and headers is None
            and partition is None
            and timestamp_ms is None
            and state is not None
            and not state.stale
            and not self._closed
        ):
            if len(value) + (len(key) if key is not None else 0) + FRAMING_BYTES > state.max_message_bytes:
                state = self._refresh_if_too_large(state, _record_bytes(value, key) + FRAMING_BYTES)
                self._check_size(state, value, key)
            stamp = time.time_ns() // 1_000_000
            direct: list[_Request] = []  # filled by the drain: what to hand back if interrupted
            try:
                with self._lock:
                    result, index = self._append_locked(state, None, value, key, stamp, None)
                    self._direct_locked(direct)
                if direct:  # per message: skip the call when there is nothing to ship
                    self._ship_all(direct)
            except BaseException:  # see _hand_back
                self._hand_back(direct)
                raise
            return _PartsFuture([(result, index, 1)])
        if self._closed:
            raise ProducerClosed("this producer is closed; create a new Producer")
        if isinstance(value, MessageSet | Message):
            if key is not None or headers is not None or timestamp_ms is not None:
                raise TypeError("key/headers/timestamp_ms belong on each Message when sending a MessageSet")
            messages = [value] if isinstance(value, Message) else list(value)
            if not messages:
                raise ValueError("send: the MessageSet is empty")
            state = self._topic(topic)
            self._check_partition(state, partition)
            largest = max(_record_bytes(m.value, m.key, m.headers) for m in messages)
            state = self._refresh_if_too_large(state, largest + FRAMING_BYTES)
            for m in messages:
                self._check_size(state, m.value, m.key, m.headers)
            stamp = now_ms()
            direct: list[_Request] = []
            try:
                with self._lock:
                    parts = self._append_messages_locked(state, partition, messages, stamp)
                    self._direct_locked(direct)
                self._ship_all(direct)
            except BaseException:  # see _hand_back
                self._hand_back(direct)
                raise
            return _PartsFuture(parts)
        check_bytes(value, "value")
        check_bytes(key, "key", allow_none=True)
        check_timestamp(timestamp_ms)
        headers = check_headers(headers)
        state = self._topic(topic)
        self._check_partition(state, partition)
        state = self._refresh_if_too_large(state, _record_bytes(value, key, headers) + FRAMING_BYTES)
        self._check_size(state, value, key, headers)
        direct: list[_Request] = []
        try:
            with self._lock:
                stamp = now_ms() if timestamp_ms is None else timestamp_ms  # 0 is a valid timestamp
                result, index = self._append_locked(state, partition, value, key, stamp, headers)
                self._direct_locked(direct)
            self._ship_all(direct)
        except BaseException:  # see _hand_back
            self._hand_back(direct)
            raise
        return _PartsFuture([(result, index, 1)])

    def send_batch(self, topic: str, table_or_batch: pa.Table | pa.RecordBatch, partition: int | None = None):
        """Send a pyarrow Table/RecordBatch with a binary ``value`` column (and optional ``key``,
        ``headers``, ``timestamp_ms``) as one batch per partition -- split into several where
        one would pass the topic's max.message.bytes; returns a SendFuture."""
        if self._closed:
            raise ProducerClosed("this producer is closed; create a new Producer")
        state = self._topic(topic)
        self._check_partition(state, partition)
        batch = normalize_table(table_or_batch)
        sizes = record_sizes(batch)
        largest = int(sizes.max()) + BATCH_OVERHEAD_BYTES  # the largest record in a batch of its own
        state = self._refresh_if_too_large(state, largest)
        if largest > state.max_message_bytes:
            raise MessageTooLarge(
                f"a record of {largest - FRAMING_BYTES} bytes (key + value + headers) does not fit "
                f"max.message.bytes={state.max_message_bytes} of topic {topic!r}: a batch of it alone "
                f"takes {largest} bytes; nothing was sent"
            )
        groups, targets = self._split_by_partition(state, batch, partition, sizes)
        # Encoded before taking the lock: the copy takes ~0.3 ms per 2 MB, and the sender and
        # Ray's callback thread need the lock meanwhile to ship and complete other batches.
        pieces = [
            (p, piece, payload)
            for p, rows, row_sizes in groups
            for piece, payload in _encode_within(rows, row_sizes, state.max_message_bytes)
        ]
        parts = []
        with self._lock:
            for p, piece, payload in pieces:
                self._reserve_locked(len(payload))
                result = BatchResult(topic, p)
                result.timestamps = piece.column(2)
                batch = _Batch(topic, p, payload, piece.num_rows, len(payload), result)
                self._unfinished += 1  # (with the append: no call between them, see _hand_back)
                self._ready.append(batch)
                parts.append((result, 0, piece.num_rows))
            self._wakeup.notify()
        if targets is not None:  # rows went to several partitions: metadata in row order, as promised
            batches: dict[int, list] = {}  # partition -> its (result, rows) in order
            for (p, _, _), part in zip(pieces, parts, strict=True):
                batches.setdefault(p, []).append((part[0], part[2]))
            at = dict.fromkeys(batches, (0, 0))  # partition -> (its batch now, next index in it)
            parts = []
            for p in targets:
                which, index = at[p]
                result, rows = batches[p][which]
                at[p] = (which, index + 1) if index + 1 < rows else (which + 1, 0)
                if parts and parts[-1][0] is result and parts[-1][1] + parts[-1][2] == index:
                    parts[-1] = (result, parts[-1][1], parts[-1][2] + 1)
                else:
                    parts.append((result, index, 1))
        return _PartsFuture(parts)

    def flush(self, timeout: float | None = None) -> None:
        """Send everything queued and wait for every outcome; raise the first error since the last flush."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            for key in list(self._open):
                self._close_open_locked(key)
            self._wakeup.notify()
            while self._unfinished:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise RequestTimedOut(
                        f"flush: {self._unfinished} batch(es) still unacknowledged after {timeout} s"
                    )
                self._space.wait(remaining if remaining is not None else 1.0)
            errors, self._errors = self._errors, []
        if errors:
            raise errors[0]

    def close(self, timeout: float | None = None) -> None:
        """Flush, then stop the sender. Further sends raise ProducerClosed."""
        if self._closed:
            return
        try:
            self.flush(timeout)
        finally:
            with self._lock:
                self._closed = True
                self._lanes.clear()  # later sends take the checked path: ProducerClosed
                self._wakeup.notify()
            self._sender.join(timeout=5)

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def partitions_for(self, topic: str) -> int:
        """How many partitions ``topic`` has (as cached)."""
        return len(self._topic(topic).leaders)

    # -- metadata ----------------------------------------------------------------

    def _topic(self, topic: str) -> _TopicState:
        state = self._topics.get(topic)
        if state is not None:
            if not state.stale:
                return state
            try:  # re-read in place: the sender thread holds this object too
                self._refresh(state)
                return state
            except UnknownTopic:
                del self._topics[topic]  # deleted meanwhile: load it as new (auto-create applies)
        validate_topic_name(topic)  # InvalidTopicName before asking anyone
        timeout_s = self.request_timeout_ms / 1000
        try:
            meta = call(self._manager.topic_metadata, topic, timeout_s=timeout_s, what="topic metadata")
        except UnknownTopic:
            if not self._settings.auto_create_topics:
                raise
            with contextlib.suppress(TopicAlreadyExists):
                call(self._manager.create_topic, topic, 1, 1, None, timeout_s=timeout_s, what="create topic")
            meta = call(self._manager.topic_metadata, topic, timeout_s=timeout_s, what="topic metadata")
        state = _TopicState(
            name=topic,
            leaders=meta["leaders"],
            max_message_bytes=int(meta["config"]["max.message.bytes"]),
            loaded_at=time.monotonic(),
            sticky=random.randrange(len(meta["leaders"])),
            routes=_routes(meta),
        )
        self._topics[topic] = state
        return state

    @staticmethod
    def _check_partition(state: _TopicState, partition: int | None) -> None:
        if partition is None:
            return
        if isinstance(partition, bool) or not isinstance(partition, int):
            raise TypeError(f"partition must be an int, got {type(partition).__name__}")
        if not 0 <= partition < len(state.leaders):
            raise ValueError(
                f"topic {state.name!r} has partitions 0..{len(state.leaders) - 1}; got {partition}"
            )

    def _mark_stale(self, state: _TopicState) -> None:
        """Metadata to re-read before the next send: the topic's sends leave the fast lane."""
        state.stale = True
        self._lanes.pop(state.name, None)

    def _refresh_if_too_large(self, state: _TopicState, size: int) -> _TopicState:
        """Before rejecting ``size`` bytes, re-read the topic: the cached max.message.bytes may
        predate an alter_topic_config that raised it."""
        if size > state.max_message_bytes:
            self._mark_stale(state)
            state = self._topic(state.name)
        return state

    @staticmethod
    def _check_size(state: _TopicState, value: bytes, key: bytes | None, headers: dict | None = None) -> None:
        """MessageTooLarge unless a batch of this record alone fits the topic's max.message.bytes."""
        size = _record_bytes(value, key, headers)
        if size + FRAMING_BYTES > state.max_message_bytes:
            raise MessageTooLarge(
                f"a message of {size} bytes (key + value + headers) does not fit max.message.bytes="
                f"{state.max_message_bytes} of topic {state.name!r}: a batch of it alone takes up to "
                f"{size + FRAMING_BYTES} bytes with Arrow's framing; nothing was sent. Split it, or raise "
                f"the topic's max.message.bytes"
            )

    def _choose_partition(self, state: _TopicState, key: bytes | None) -> int:
        if key is not None and self.partitioner == "hash":
            return zlib.crc32(key) % len(state.leaders)
        return state.sticky

    def _split_by_partition(self, state, batch: pa.RecordBatch, partition: int | None, sizes):
        """``([(partition, rows, their record_sizes)], targets)``: ``targets`` is each row's
        partition when rows are split."""
        if partition is not None:
            return [(partition, batch, sizes)], None
        keys = batch.column(0)
        if keys.null_count == batch.num_rows or self.partitioner != "hash":
            with self._lock:
                chosen = state.sticky
                state.sticky = (state.sticky + 1) % len(state.leaders)
            return [(chosen, batch, sizes)], None
        n = len(state.leaders)
        sticky = state.sticky
        targets = [sticky if k is None else zlib.crc32(k) % n for k in keys.to_pylist()]
        groups = []
        for p in sorted(set(targets)):
            mask = [t == p for t in targets]
            groups.append((p, batch.filter(pa.array(mask)), sizes[mask]))
        return groups, targets

    # -- accumulation (caller threads, under self._lock) ------------------------

    def _append_locked(self, state, partition, value, key, timestamp_ms, headers) -> tuple[BatchResult, int]:
        p = self._choose_partition(state, key) if partition is None else partition
        slot = (state.name, p)
        size = _record_bytes(value, key, headers) + RECORD_OVERHEAD_BYTES  # what it adds to nbytes
        entry = self._open.get(slot)
        while entry is None or not self._takes_locked(entry[0], size):
            if entry is not None:  # full: filled through its lane, or no room for this record
                self._close_open_locked(slot)
                self._closed_full = True
            reserved = self.batch_size // 4
            self._reserve_locked(reserved)  # may release the lock while it waits for space
            entry = self._open.get(slot)
            if entry is None:
                entry = self._open_locked(state, p, slot)
                break
            self._buffered_bytes -= reserved  # another send opened it meanwhile: use that one
            self._space.notify_all()
        builder, result, _ = entry
        index = builder.append(value, key, timestamp_ms, headers)
        if builder.nbytes >= builder.batch_size:
            self._close_open_locked(slot)
            self._closed_full = True  # the caller ships it (_direct_locked), or an answer will
        return result, index

    def _append_messages_locked(self, state, partition, messages: list[Message], stamp: int) -> list:
        """A MessageSet's records; returns its future's parts: (result, first index, count)."""
        parts: list[tuple[BatchResult, int, int]] = []
        for m in messages:
            stamp_m = stamp if m.timestamp_ms is None else m.timestamp_ms  # 0 is a valid timestamp
            result, index = self._append_locked(state, partition, m.value, m.key, stamp_m, m.headers)
            if parts and parts[-1][0] is result and parts[-1][1] + parts[-1][2] == index:
                parts[-1] = (result, parts[-1][1], parts[-1][2] + 1)
            else:
                parts.append((result, index, 1))
        return parts

    def _takes_locked(self, builder: RecordBuilder, size: int) -> bool:
        """Whether an open batch takes one more record that adds ``size`` to its ``nbytes``: an
        empty one always (the record was checked against max.message.bytes), any other while
        ``nbytes`` stays within the builder's ``batch_size`` (``_open_locked``), and its buffers'
        32-bit Arrow offsets cannot overflow."""
        return (
            not builder.sealed
            and (builder.count == 0 or builder.nbytes + size <= builder.batch_size)
            and builder.nbytes + size <= MAX_OFFSET
        )

    def _open_locked(self, state: _TopicState, p: int, slot: tuple[str, int]):
        """A new open batch for ``slot`` (its buffer_memory share is reserved by the caller)."""
        result = BatchResult(state.name, p)
        # A batch's encoded size is at most BATCH_OVERHEAD_BYTES + nbytes: it closes before it would
        # pass batch_size (a ceiling, as Kafka's batch.size) or the topic's max.message.bytes. A
        # record larger than batch_size goes alone; append_value takes values that fit alone.
        budget = min(self.batch_size, state.max_message_bytes) - BATCH_OVERHEAD_BYTES
        builder = RecordBuilder(result, budget, state.max_message_bytes - FRAMING_BYTES, _RecordFuture)
        result.timestamps = builder.timestamps
        entry = self._open[slot] = (builder, result, time.monotonic())
        self._unfinished += 1
        if self.linger_ms:
            self._wakeup.notify()  # starts the linger clock (with 0, the caller drains at once)
            if p == state.sticky and not state.stale and not self._closed:
                self._lanes[state.name] = builder
        return entry

    def _reserve_locked(self, nbytes: int) -> None:
        """Block while more than buffer_memory is buffered (Kafka's max.block.ms applies)."""
        deadline = time.monotonic() + self.max_block_ms / 1000
        while self._buffered_bytes + nbytes > self.buffer_memory and self._buffered_bytes > 0:
            # Whatever is closed and waiting must go out for space to come back, and the sending
            # thread drains only after this returns: the sender thread ships it now.
            self._wakeup.notify()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RequestTimedOut(
                    f"send blocked {self.max_block_ms} ms on a full buffer ({self._buffered_bytes} bytes); "
                    f"the partition actors are not keeping up, or raise buffer_memory"
                )
            self._space.wait(remaining)
            if self._closed:
                raise ProducerClosed("the producer was closed while send was blocked")
        self._buffered_bytes += nbytes

    def _close_open_locked(self, slot) -> None:
        builder, result, _ = self._open[slot]
        batch = _Batch(slot[0], slot[1], builder, 0, 0, result)
        builder.seal()  # a send() still holding it through _lanes now takes the locked path
        if builder.count == 0:
            # Opened but never appended to (an interrupt landed between the two): nothing to
            # send -- a partition refuses an empty batch -- so it ends here, its space given back.
            del self._open[slot]
            if self._lanes.get(slot[0]) is builder:
                self._lanes.pop(slot[0], None)
            self._buffered_bytes -= self.batch_size // 4
            result.finish()
            self._unfinished -= 1
            self._space.notify_all()
            return
        # From here to the append, no Python-level call: CPython raises a KeyboardInterrupt only
        # after a call returns, so the batch is either still open or closed and queued, never
        # lost between the two (an interrupt right after seal() leaves it open but sealed,
        # which _takes_locked refuses, so the next append closes it).
        batch.count = builder.count
        batch.nbytes = builder.nbytes
        self._buffered_bytes += builder.nbytes - self.batch_size // 4  # its reservation, now exact
        del self._open[slot]
        self._ready.append(batch)
        if self._lanes.get(slot[0]) is builder:
            self._lanes.pop(slot[0], None)  # _mark_stale may pop it without the lock meanwhile
        state = self._topics.get(slot[0])
        if state is not None and state.sticky == slot[1] and len(state.leaders) > 1:
            state.sticky = random.choice([p for p in range(len(state.leaders)) if p != slot[1]])

    # -- the sender thread -------------------------------------------------------

    def _run_sender(self) -> None:
        while True:
            with self._lock:
                while True:
                    now = time.monotonic()
                    expired = self._expire_in_flight_locked(now)
                    for state in list(self._topics.values()):  # send() may add one meanwhile
                        if now - state.loaded_at >= METADATA_MAX_AGE_MS / 1000:
                            self._mark_stale(state)  # the next send re-reads metadata
                    sendable = self._drain_locked(now)
                    finished = not sendable and self._closed and not self._open and not self._ready
                    unanswered = self._unanswered_topics_locked(now)
                    if sendable or expired or finished or unanswered:
                        break
                    self._wakeup.wait(self._sender_wait_locked(now))
            for batch, error in expired:
                self._deliver(batch, error=error)
            self._ship_all(sendable)
            for state in unanswered:
                self._resend_if_leader_moved(state)
            if finished:
                return

    def _unanswered_topics_locked(self, now: float) -> list[_TopicState]:
        """Topics with a request unanswered for LEADER_ATTEMPT_S: its leader may hang (a frozen
        node is not reported dead for a while) while the TopicManager already moved leadership.
        At most one re-read per topic every LEADER_ATTEMPT_S (``checked_at``, set here)."""
        if self.acks == 0:
            return []
        due = []
        for request in self._in_flight_requests.values():
            state = self._topics.get(request.slot[0])
            if (
                state is not None
                and now - request.sent_at >= LEADER_ATTEMPT_S
                and now - state.checked_at >= LEADER_ATTEMPT_S
            ):
                state.checked_at = now
                due.append(state)
        return due

    def _resend_if_leader_moved(self, state: _TopicState) -> None:
        """Re-read ``state``'s leaders (sender thread, with a short timeout); the requests
        waiting on an actor that is not the partition's leader any more are given up and their
        batches queued again for the new one (with their sequence numbers; the old leader's
        late answer is ignored). A request to the same actor keeps waiting: the epoch also
        moves when only a follower changed, and the leader's sequencer state went with it."""
        try:
            self._refresh(state, timeout_s=LEADER_ATTEMPT_S)
        except Exception as exc:  # the manager is restarting: expiry still bounds the wait
            logger.info("%s: could not re-read the leaders of a slow partition: %s", state.name, exc)
            return
        routes = state.routes
        with self._lock:
            moved = [
                request
                for request in self._in_flight_requests.values()
                if request.slot[0] == state.name
                and request.slot[1] < len(routes)
                and routes[request.slot[1]][1] not in (None, request.leader_name)
            ]
        for request in moved:  # answered as a NotLeader would be (a real answer meanwhile wins)
            error = NotLeader(f"{state.name}-{request.slot[1]}: the leader moved while a request waited")
            self._answer(request, [error] * len(request.batches))

    def _direct_locked(self, requests: list[_Request]) -> None:
        """Fill ``requests`` with what the sending thread ships itself (after releasing the
        lock, by ``_ship_all``): with ``linger_ms=0`` everything due, else the batches already
        closed (full) that their partitions can take now. Waking the sender thread instead
        costs a GIL hand-off per batch; on 2 busy CPUs the caller sat idle ~25% of the time
        waiting for it (send per message: 1.47-1.82 -> 1.05-1.49 us/msg, docs/PERFORMANCE.md).
        Only after this call closed a full batch: draining on every send would cost O(open
        batches)."""
        if self.linger_ms == 0:
            self._drain_locked(time.monotonic(), requests)
        elif self._closed_full:
            self._closed_full = False
            if any(state.stale for state in self._topics.values()):
                self._wakeup.notify()  # re-reading metadata blocks: the sender thread does that
                return
            self._drain_locked(time.monotonic(), requests)

    def _ship_all(self, requests: list[_Request]) -> None:
        for request in requests:
            self._ship(request)

    def _hand_back(self, requests: list[_Request]) -> None:
        """Undo the part of a drain that a calling thread did not finish shipping.

        send() drains and ships on the calling thread, and a KeyboardInterrupt -- Ctrl-C in a
        notebook's send loop -- is raised there after any call returns: inside the drain, between
        the drain and ``_ship_all``, or in Ray's submission. ``requests`` is what the drain had
        taken so far. A request not registered in flight frees its slot, and its batches that
        left the queue go back with their sequence numbers (a copy the partition did get is
        answered from its producer state, not stored twice); a registered one only needs its
        answer watched. The state changes of the drain and of closing a batch are ordered so
        that an interrupt between two calls leaves them consistent."""
        sent = []
        with self._lock:
            queued = {id(b) for b in self._ready}
            back = []
            for request in requests:
                if request.watched:
                    continue
                if id(request) in self._in_flight_requests:
                    sent.append(request)
                    continue
                self._in_flight[request.slot] -= 1
                back.extend(b for b in request.batches if id(b) not in queued)
            if back:
                self._queue_again_locked(back)
        for request in sent:
            self._watch(request)

    def _drain_locked(self, now: float, requests: list[_Request] | None = None) -> list[_Request]:
        """Close the open batches that lingered long enough and can go, and take every batch
        that may be sent now, in order, with its sequence number: grouped into requests of
        consecutive batches of one partition (up to ``max_request_size`` bytes), at most
        max_in_flight requests per partition. The caller ships them after releasing the lock.
        Returns ``requests`` (a calling thread's list, filled as requests are taken: see
        ``_hand_back``)."""
        if requests is None:
            requests = []
        linger_s = self.linger_ms / 1000
        if self._open:
            waiting = self._waiting_per_partition_locked()
            for slot, (_, _, opened) in list(self._open.items()):
                # A lingered batch is closed only when it can be sent now; while the partition's
                # requests in flight are at the limit it stays open and keeps growing (as Kafka's
                # accumulator drains only sendable partitions), so a backlog turns into bigger
                # batches instead of a queue of one-record requests.
                if now - opened >= linger_s and waiting.get(slot, 0) < self.max_in_flight:
                    self._close_open_locked(slot)
                    waiting[slot] = waiting.get(slot, 0) + 1
        last: dict[tuple[str, int], _Request] = {}  # per partition, the request still taking batches
        held: set[tuple[str, int]] = set()
        for b in self._ready:  # in order
            slot = (b.topic, b.partition)
            if slot in held or b.not_before > now:
                # Nothing overtakes a batch waiting to be resent: the partition appends in
                # sequence order, so later batches would only occupy the in-flight slots
                # while waiting for it there (a deadlock until request_timeout_ms).
                held.add(slot)
                continue
            seq = b.seq if b.seq >= 0 else self._next_seq.get(slot, 0)
            request = last.get(slot)
            if request is None or not request.takes(b, seq, self.max_request_size, self._batches_per_request):
                if self._in_flight.get(slot, 0) >= self.max_in_flight:
                    held.add(slot)
                    continue
                request = _Request(slot)
                self._in_flight[slot] = self._in_flight.get(slot, 0) + 1
                last[slot] = request
                requests.append(request)  # (counted in flight first: see _hand_back)
            if b.seq < 0:
                unacked = self._unacked.get(slot)
                if unacked is None:
                    unacked = self._unacked[slot] = set()
                b.seq = seq  # these three with no call between them (see _hand_back)
                self._next_seq[slot] = seq + 1
                unacked.add(seq)
            request.add(b)
        if requests:
            taken = {id(b) for request in requests for b in request.batches}
            self._ready = deque(b for b in self._ready if id(b) not in taken)
        return requests

    def _sender_wait_locked(self, now: float) -> float | None:
        """How long the sender may sleep (after ``_drain_locked(now)``): until an open batch's
        linger ends or a retry's backoff."""
        linger_s = self.linger_ms / 1000
        # An open batch whose linger already ended was left open by the drain because its
        # partition is full: it waits for an answer (which notifies), not for a timer.
        waits = [opened + linger_s - now for _, _, opened in self._open.values() if opened + linger_s > now]
        waits += [b.not_before - now for b in self._ready if b.not_before > now]
        timeout = min(waits) if waits else None
        if self._in_flight_requests:
            timeout = min(timeout or 0.1, 0.1)
        return timeout

    def _waiting_per_partition_locked(self) -> dict[tuple[str, int], int]:
        """Requests in flight plus closed batches queued, per partition."""
        waiting = dict(self._in_flight)
        for b in self._ready:
            slot = (b.topic, b.partition)
            waiting[slot] = waiting.get(slot, 0) + 1
        return waiting

    def _ship(self, request: _Request) -> None:
        batches = request.batches
        try:
            for batch in batches:
                if isinstance(batch.payload, RecordBuilder):
                    batch.payload = encode_record_batch(to_record_batch(batch.payload))
            state = self._topics[request.slot[0]]
            if state.stale:
                self._refresh(state)
            leader, request.leader_name, leader_epoch = state.routes[request.slot[1]]
            now = time.monotonic()
            for batch in batches:
                batch.attempts += 1
                if batch.first_sent_at is None:
                    batch.first_sent_at = now
            with self._lock:
                first_unacked = min(self._unacked[request.slot])
            header = (self._producer_id, batches[0].seq, first_unacked, self.acks, self.request_timeout_ms)
            request.sent_at = time.monotonic()
            # not after ray.shutdown(): RayNotConnected fails these batches, and no new Ray starts
            answer = submit(
                leader.append, [batch.payload for batch in batches], (*header, False, leader_epoch)
            )
        except Exception as exc:  # encoding or submission failed: these batches fail, others go on
            request.watched = True
            self._answer(request, [unwrap(exc)] * len(batches), registered=False)
            return
        request.answer = answer  # stays alive until answered
        with self._lock:
            self._in_flight_requests[id(request)] = request
            self._requests_sent += 1
        self._watch(request)

    def _watch(self, request: _Request) -> None:
        """A registered request's answer goes to ``_on_response``."""
        if self.acks == 0:
            for batch in request.batches:
                if not batch.result.done.is_set():
                    batch.result.finish()  # fire and forget: offsets unknown (-1), as in Kafka
        request.answer.add_done_callback(lambda fut, r=request: self._on_response(r, fut))
        request.watched = True

    def _on_response(self, request: _Request, fut) -> None:
        # Runs on a Ray callback thread: no blocking calls here.
        n = len(request.batches)
        try:
            outcomes = fut.result()
        except ACTOR_GONE as exc:
            outcomes = [exc] * n  # restarting, or its node is gone: retried
        except Exception as exc:
            outcomes = [unwrap(exc)] * n
        if not _well_formed(outcomes, n):  # e.g. an actor of an older raykafka: never lose the batches
            answer = f"{outcomes!r:.200}"
            outcomes = [TypeError(f"the partition answered {answer} to a request of {n} batch(es)")] * n
        self._answer(request, outcomes)

    def _answer(self, request: _Request, outcomes: list, registered: bool = True) -> None:
        """Settle a request: per batch, ``(base_offset, log_append_time_ms)`` or an exception.
        A batch whose leader was unreachable or moved goes back to the queue (in sequence
        order, after RETRY_BACKOFF_MS) until request_timeout_ms after its first request."""
        delivered: list[tuple[_Batch, int, int, BaseException | None]] = []
        with self._lock:
            if registered and self._in_flight_requests.pop(id(request), None) is None:
                return  # expired meanwhile: its futures already failed
            self._in_flight[request.slot] -= 1
            retried = []
            for batch, outcome in zip(request.batches, outcomes, strict=True):
                if batch.settled:
                    continue  # expired meanwhile: its futures already failed
                error = outcome if isinstance(outcome, BaseException) else None
                if isinstance(error, self._retriable) and batch.first_sent_at is not None:  # None: not sent
                    batch.last_error = error
                    if time.monotonic() - batch.first_sent_at < self.request_timeout_ms / 1000:
                        retried.append((batch, error))
                        continue
                    error = RequestTimedOut(
                        f"{batch.topic}-{batch.partition}: not acknowledged within request_timeout_ms="
                        f"{self.request_timeout_ms} ({batch.attempts} attempts; last error: "
                        f"{type(error).__name__})"
                    )
                if self._settle_locked(batch, error):
                    base, append_time = (-1, -1) if error is not None else outcome
                    delivered.append((batch, base, append_time, error))
            if retried:
                self._requeue_locked(retried)
        for batch, base, append_time, error in delivered:
            self._deliver(batch, base, append_time, error)

    def _requeue_locked(self, retried: list[tuple[_Batch, BaseException]]) -> None:
        """Queue batches again after their leader was unreachable or moved: first, in sequence
        order (they fail in any order; unsent batches keep FIFO), after a backoff, with the
        topic's metadata to be re-read before they go."""
        not_before = time.monotonic() + RETRY_BACKOFF_MS / 1000
        for batch, error in retried:
            logger.info(
                "%s-%d: the partition leader is unreachable or answered %s; retrying batch seq %d",
                batch.topic,
                batch.partition,
                type(error).__name__,
                batch.seq,
            )
            batch.not_before = not_before
            state = self._topics.get(batch.topic)
            if state is not None:
                self._mark_stale(state)  # the sender re-reads the leaders before resending
        self._queue_again_locked([batch for batch, _ in retried])

    def _queue_again_locked(self, batches: list[_Batch]) -> None:
        """Put sent batches back in the queue: first, in sequence order (they come back in any
        order; batches without a sequence number yet keep FIFO)."""
        self._ready.extendleft(batches)
        self._ready = deque(sorted(self._ready, key=lambda b: (b.seq < 0, max(b.seq, 0))))
        self._wakeup.notify()

    def _refresh(self, state: _TopicState, timeout_s: float | None = None) -> None:
        """Re-read a topic's leaders (sender thread): after a failover they are other actors.
        Through ``call_connected``: after ray.shutdown() it raises RayNotConnected, never starts
        a new Ray from the sender thread."""
        meta = call_connected(
            self._manager.topic_metadata,
            state.name,
            timeout_s=self.request_timeout_ms / 1000 if timeout_s is None else timeout_s,
            what="topic metadata",
        )
        state.routes = _routes(meta)
        state.leaders = meta["leaders"]
        state.max_message_bytes = int(meta["config"]["max.message.bytes"])
        state.loaded_at = time.monotonic()
        state.stale = False

    def _expire_in_flight_locked(self, now: float) -> list[tuple[_Batch, BaseException]]:
        """Settle the batches unanswered for request_timeout_ms after their first request; a
        request stops counting against max_in_flight once all its batches are settled (or
        answered). Returns the batches with their error, for the sender to deliver once it
        released the lock."""
        limit_s = self.request_timeout_ms / 1000
        expired = []
        for key, request in list(self._in_flight_requests.items()):
            for batch in request.batches:
                if now - batch.first_sent_at < limit_s:
                    continue
                error = RequestTimedOut(
                    f"{batch.topic}-{batch.partition}: no answer within request_timeout_ms="
                    f"{self.request_timeout_ms}"
                    + (
                        f" ({batch.attempts} attempts; last error: {type(batch.last_error).__name__}: "
                        f"{batch.last_error})"
                        if batch.last_error is not None
                        else "; is the partition's node alive?"
                    )
                )
                if self._settle_locked(batch, error):
                    expired.append((batch, error))
            if all(batch.settled for batch in request.batches):
                self._in_flight_requests.pop(key)
                self._in_flight[request.slot] -= 1
        return expired

    def _settle_locked(self, batch: _Batch, error: BaseException | None) -> bool:
        """Account for a batch's end, once: its buffer space back, its sequence number done,
        its error kept for flush(). False when it was settled already."""
        if batch.settled:
            return False
        batch.settled = True
        self._unacked.get((batch.topic, batch.partition), set()).discard(batch.seq)
        self._buffered_bytes -= batch.nbytes
        if error is not None:
            self._errors.append(error)
        self._space.notify_all()
        self._wakeup.notify()
        batch.payload = None
        return True

    def _deliver(self, batch: _Batch, base: int = -1, append_time: int = -1, error=None) -> None:
        """Without the lock: the batch's futures get their outcome and run their callbacks (a
        callback may send()). Only then does the batch stop counting for flush(), so flush()
        returns with every future done."""
        try:
            if not batch.result.done.is_set():
                batch.result.finish(base, append_time, error)
        finally:
            with self._lock:
                self._unfinished -= 1
                self._space.notify_all()
