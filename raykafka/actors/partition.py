"""PartitionActor: one replica of one topic partition, a thin async shell over a PartitionLog.

It owns the replica directory on its node's disk and is the only writer of it.
What it adds to the storage engine:

* offsets are assigned here, in the order each producer sent its batches: Ray
  may start an async actor's calls out of submission order (measured: most of
  2,000 pipelined calls with large arguments), so every append carries a
  per-producer sequence number and waits for its predecessor (see
  ``_SequenceGate``); a retried batch that was already appended is answered
  from a small cache instead of being appended twice;
* long-poll fetches: a fetch at the log end waits on an event that every append
  sets, until data arrives or ``max_wait_ms`` passes;
* record validation at the boundary (schema, ``max.message.bytes``) before a byte
  is written, and LogAppendTime stamping;
* background retention and time-based flushing; fsyncs run in a thread so the
  event loop keeps serving.

A restart (``max_restarts=-1``) loses all memory; the constructor rebuilds
everything from disk.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from pathlib import Path

import pyarrow.compute as pc

from raykafka.errors import CorruptRecord, MessageTooLarge, OffsetOutOfRange
from raykafka.storage import CorruptBatch, LogOffsetOutOfRange, PartitionLog
from raykafka.storage.framing import ATTR_LOG_APPEND_TIME
from raykafka.storage.records import InvalidRecordBatch, decode_record_batch, largest_record_bytes
from raykafka.topic_config import config_value, to_log_config

logger = logging.getLogger(__name__)

#: How long an append waits for a predecessor sequence number before it gives up on it.
SEQUENCE_GAP_TIMEOUT_MS = 10_000
#: Appends remembered per producer, so a retry is answered instead of appended again.
RECENT_APPENDS_PER_PRODUCER = 16
#: How often retention and flush.ms are checked.
DEFAULT_MAINTENANCE_INTERVAL_MS = 1_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def resolve_data_dir(data_dir: str | None) -> Path:
    """The data directory on THIS node: explicit, else $RAYKAFKA_DATA_DIR, else ~/.raykafka/data."""
    chosen = data_dir or os.environ.get("RAYKAFKA_DATA_DIR") or "~/.raykafka/data"
    return Path(chosen).expanduser().resolve()


def replica_directory(data_dir: Path, topic: str, partition: int, replica_id: str) -> Path:
    """``<data_dir>/replicas/<topic>-<partition>-<replica_id>``, never outside data_dir."""
    root = (data_dir / "replicas").resolve()
    path = (root / f"{topic}-{partition}-{replica_id}").resolve()
    if path.parent != root:  # a validated topic name cannot do this; refuse anyway
        raise ValueError(f"replica directory {path} would lie outside {root}")
    return path


class _SequenceGate:
    """Per-producer ordering and de-duplication of appends (Kafka's idempotent producer, in memory)."""

    __slots__ = ("changed", "next_seq", "recent")

    def __init__(self, first_seq: int):
        self.next_seq = first_seq
        self.recent: collections.OrderedDict[int, tuple[int, int]] = collections.OrderedDict()
        self.changed = asyncio.Condition()

    def remember(self, seq: int, result: tuple[int, int]) -> None:
        self.recent[seq] = result
        while len(self.recent) > RECENT_APPENDS_PER_PRODUCER:
            self.recent.popitem(last=False)


class PartitionActor:
    """See the module docstring. Created and placed by the TopicManager."""

    def __init__(
        self,
        topic: str,
        partition: int,
        replica_id: str,
        data_dir: str | None,
        config: dict[str, str],
        maintenance_interval_ms: int = DEFAULT_MAINTENANCE_INTERVAL_MS,
    ):
        self.topic = topic
        self.partition = partition
        self.replica_id = replica_id
        self.directory = replica_directory(resolve_data_dir(data_dir), topic, partition, replica_id)
        started = time.monotonic()
        self.log = PartitionLog(self.directory, to_log_config(config))
        self.open_seconds = time.monotonic() - started
        self._apply_config(config)
        self._maintenance_interval_ms = maintenance_interval_ms
        self._appended = asyncio.Event()
        self._gates: dict[str, _SequenceGate] = {}
        self._maintenance: asyncio.Task | None = None
        if self.log.recovery_truncated_bytes:
            logger.warning(
                "%s-%d: recovery cut %d bytes of torn or corrupt tail; log ends at offset %d",
                topic, partition, self.log.recovery_truncated_bytes, self.log.log_end_offset,
            )

    def _apply_config(self, config: dict[str, str]) -> None:
        self.config = dict(config)
        self.max_message_bytes = config_value(config, "max.message.bytes")
        self.log_append_time = config_value(config, "message.timestamp.type") == "LogAppendTime"

    def _start_background(self) -> None:
        if self._maintenance is None:
            self._maintenance = asyncio.get_running_loop().create_task(self._maintain())

    # -- produce ---------------------------------------------------------------

    async def append(self, payload, producer_id: str | None = None, seq: int = 0, sync: bool = False):
        """Append one record batch; return ``(base_offset, log_append_time_ms or -1)``.

        ``payload`` is the Arrow IPC message of one batch in RECORD_SCHEMA. With a
        ``producer_id``, batches are appended in ``seq`` order per producer and a
        retried ``seq`` is answered from the cache. ``sync`` forces an fsync
        before the answer (group-committed with every other append waiting).
        """
        self._start_background()
        if producer_id is None:
            result = self._append_now(payload)
        else:
            result = await self._append_in_sequence(payload, producer_id, seq)
        if sync or self.log.flush_due():
            await self._sync_through(result[0] + 1)
        return result

    async def _append_in_sequence(self, payload, producer_id: str, seq: int):
        gate = self._gates.get(producer_id)
        if gate is None:  # first contact, or first since a restart: this seq is the baseline
            gate = self._gates[producer_id] = _SequenceGate(seq)
        if seq in gate.recent:
            return gate.recent[seq]
        async with gate.changed:
            if seq > gate.next_seq:
                try:
                    await asyncio.wait_for(
                        gate.changed.wait_for(lambda: gate.next_seq >= seq), SEQUENCE_GAP_TIMEOUT_MS / 1000
                    )
                except TimeoutError:
                    logger.warning(
                        "%s-%d: producer %s seq %d waited %d ms for seq %d; appending anyway",
                        self.topic, self.partition, producer_id, seq, SEQUENCE_GAP_TIMEOUT_MS, gate.next_seq,
                    )
            if seq in gate.recent:
                return gate.recent[seq]
            try:
                result = self._append_now(payload)
            finally:
                # a rejected batch still consumes its sequence number, or its successors would wait
                gate.next_seq = max(gate.next_seq, seq + 1)
                gate.changed.notify_all()
            gate.remember(seq, result)
            return result

    def _append_now(self, payload) -> tuple[int, int]:
        try:
            batch = decode_record_batch(payload)
        except InvalidRecordBatch as exc:
            raise ValueError(f"{self.topic}-{self.partition}: rejected append: {exc}") from None
        count = batch.num_rows
        if count == 0:
            raise ValueError("an append needs at least one record")
        largest = largest_record_bytes(batch)
        if largest > self.max_message_bytes:
            raise MessageTooLarge(
                f"a record of {largest} bytes exceeds max.message.bytes={self.max_message_bytes} of topic "
                f"{self.topic!r}; nothing of this batch was written. Send smaller records or raise the "
                f"limit with alter_topic_config"
            )
        if self.log_append_time:
            first_ts = max_ts = now_ms()
            attributes = ATTR_LOG_APPEND_TIME
        else:
            stamps = batch.column(2)
            first_ts = stamps[0].as_py()
            max_ts = pc.max(stamps).as_py()
            attributes = 0
        base = self.log.append(
            payload,
            record_count=count,
            first_timestamp_ms=first_ts,
            max_timestamp_ms=max_ts,
            attributes=attributes,
        )
        woken, self._appended = self._appended, asyncio.Event()
        woken.set()
        return base, (max_ts if self.log_append_time else -1)

    async def _sync_through(self, offset: int) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.log.sync_through, offset)

    # -- consume ---------------------------------------------------------------

    async def fetch(self, offset: int, max_bytes: int, max_wait_ms: int):
        """Whole frames from the batch holding ``offset`` on: ``(frames, log_start, log_end)``.

        At the log end, waits up to ``max_wait_ms`` for an append (long poll).
        Raises OffsetOutOfRange outside ``[log_start, log_end]``.
        """
        self._start_background()
        self._check_offset(offset)
        if offset == self.log.log_end_offset and max_wait_ms > 0:
            arrived = self._appended
            try:
                await asyncio.wait_for(arrived.wait(), max_wait_ms / 1000)
            except TimeoutError:
                pass
        try:
            frames = self.log.read(offset, max_bytes)
        except LogOffsetOutOfRange:  # retention or delete_records moved the start meanwhile
            self._check_offset(offset)
            raise
        except CorruptBatch as exc:
            raise CorruptRecord(
                f"{self.topic}-{self.partition} at offset {offset}: stored data failed its CRC and was "
                f"not returned ({exc}); seek past it or restore the replica"
            ) from None
        return frames, self.log.log_start_offset, self.log.log_end_offset

    def _check_offset(self, offset: int) -> None:
        start, end = self.log.log_start_offset, self.log.log_end_offset
        if not start <= offset <= end:
            raise OffsetOutOfRange(
                f"offset {offset} is outside {self.topic}-{self.partition}'s range [{start}, {end}]; "
                f"seek to an offset in range or use auto_offset_reset",
                earliest=start,
                latest=end,
            )

    # -- offsets and admin -----------------------------------------------------

    async def offsets(self) -> tuple[int, int]:
        """``(log_start_offset, log_end_offset)``."""
        return self.log.log_start_offset, self.log.log_end_offset

    async def list_offset(self, spec: str | int) -> int:
        """``"earliest"``, ``"latest"``, or the first offset with timestamp >= ``spec`` (else log end)."""
        if spec == "earliest":
            return self.log.log_start_offset
        if spec == "latest":
            return self.log.log_end_offset
        found = self.log.offset_for_timestamp(int(spec))
        return self.log.log_end_offset if found is None else max(found, self.log.log_start_offset)

    async def delete_records(self, before_offset: int) -> int:
        """Move the log start to ``before_offset``; returns the new log start."""
        end = self.log.log_end_offset
        if not 0 <= before_offset <= end:
            raise OffsetOutOfRange(
                f"delete_records offset {before_offset} is past the end of {self.topic}-{self.partition} "
                f"({end}); give an offset <= {end}",
                earliest=self.log.log_start_offset,
                latest=end,
            )
        try:
            return self.log.delete_records(before_offset)
        except LogOffsetOutOfRange:
            return self.log.log_start_offset

    async def update_config(self, config: dict[str, str]) -> None:
        self._apply_config(config)
        self.log.update_config(to_log_config(config))

    async def apply_retention(self) -> int:
        return self.log.apply_retention()

    async def flush(self) -> None:
        await self._sync_through(self.log.log_end_offset)

    async def info(self) -> dict:
        """Diagnostics: process id, node, directory, sizes, how long the log took to open."""
        import ray

        return {
            "pid": os.getpid(),
            "node_id": ray.get_runtime_context().get_node_id(),
            "directory": str(self.directory),
            "log_start_offset": self.log.log_start_offset,
            "log_end_offset": self.log.log_end_offset,
            "size_bytes": self.log.size_bytes,
            "segments": len(self.log.segment_base_offsets),
            "open_seconds": self.open_seconds,
        }

    async def destroy(self) -> None:
        """Delete this replica's data (topic deletion); the caller kills the actor next."""
        if self._maintenance is not None:
            self._maintenance.cancel()
        self.log.destroy()

    # -- background --------------------------------------------------------------

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(self._maintenance_interval_ms / 1000)
            try:
                if self.log.flush_due():
                    await self._sync_through(self.log.log_end_offset)
                deleted = self.log.apply_retention()
                if deleted:
                    logger.info("%s-%d: retention deleted %d segment(s)", self.topic, self.partition, deleted)
            except Exception:  # keep maintaining; the next round retries
                logger.exception("%s-%d: maintenance failed", self.topic, self.partition)

