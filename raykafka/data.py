"""Ray Data integration: read a topic into a ``ray.data.Dataset``, write a Dataset to a topic.

::

    import raykafka
    from raykafka.data import TopicDatasink, read_topic

    raykafka.connect()
    ds = read_topic("events")                       # everything in the topic right now
    ds = ds.map_batches(transform, batch_format="pyarrow")
    ds.write_datasink(TopicDatasink("events-clean"))

``read_topic`` is bounded: each partition's ``[start, end)`` is resolved ONCE, when
``read_topic`` is called, so the dataset is a fixed, reproducible range (executing
it twice reads the same records, however much is produced meanwhile). Reading is
one Ray Data read task per partition; each task calls that partition's actor
``fetch`` directly (no group, no commits: this is Spark's Kafka *batch* source, not
a consumer group) and yields Arrow tables in the consumer schema -- ``topic``,
``partition``, ``offset``, ``timestamp_ms``, ``key``, ``value``, ``headers`` -- in
offset order.

``TopicDatasink`` appends a dataset to a topic. Each Ray Data write task runs one
raykafka ``Producer`` that ``send_batch``-es its blocks in order (so within a write
task, per-partition order is kept) and flushes before the task ends.

Both carry the connection settings of the process that built them (namespace,
data_dir), so the tasks meet the same topics on any node. Ray Data's own progress
bars are left as Ray configures them (``DataContext.enable_progress_bars``).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import ray
from ray.data import Dataset
from ray.data.block import Block, BlockAccessor, BlockMetadata
from ray.data.datasource import Datasink, Datasource, ReadTask, WriteResult

from raykafka import errors
from raykafka.api.connection import Settings, current_settings, ensure_ray, topic_manager
from raykafka.api.fetch import decode_fetch
from raykafka.api.rpc import call
from raykafka.errors import OffsetOutOfRange, UnknownTopic
from raykafka.storage.records import CONSUMER_SCHEMA
from raykafka.topic_config import validate_topic_name

logger = logging.getLogger(__name__)

__all__ = ["TopicDatasink", "TopicDatasource", "read_topic"]

#: Bytes asked of a partition actor per fetch (the consumer's fetch_max_bytes default); about one block.
DEFAULT_FETCH_MAX_BYTES = 8 << 20
DEFAULT_REQUEST_TIMEOUT_MS = 30_000

OffsetSpec = int | str  # "earliest" | "latest" | offset
RangeSpec = OffsetSpec | Mapping[int, OffsetSpec]


# -- reading -----------------------------------------------------------------------


def _check_spec(name: str, spec: Any) -> None:
    if isinstance(spec, Mapping):
        for partition, value in spec.items():
            if isinstance(partition, bool) or not isinstance(partition, int) or partition < 0:
                raise TypeError(f"{name}: partition keys must be ints >= 0, got {partition!r}")
            _check_spec(f"{name}[{partition}]", value)
        return
    if isinstance(spec, str):
        if spec not in ("earliest", "latest"):
            raise ValueError(
                f"{name} must be 'earliest', 'latest', an offset or {{partition: offset}}, got {spec!r}"
            )
        return
    if isinstance(spec, bool) or not isinstance(spec, int):
        raise TypeError(
            f"{name} must be 'earliest', 'latest', an int offset or a dict, got {type(spec).__name__}"
        )
    if spec < 0:
        raise ValueError(f"{name} must be >= 0, got {spec}")


def _resolve(spec: RangeSpec, partition: int, default: str, log_start: int, log_end: int) -> int:
    if isinstance(spec, Mapping):
        spec = spec.get(partition, default)
    if spec == "earliest":
        return log_start
    if spec == "latest":
        return log_end
    return int(spec)


#: Errors after which a read task asks the TopicManager for the partition's current leader.
_LEADER_MOVED = tuple(
    getattr(errors, name) for name in ("NotLeader", "FencedLeader") if hasattr(errors, name)
)
#: Leader changes a read task follows before it gives up.
MAX_LEADER_REFRESHES = 10


def _fetch(
    settings: Settings, leader, topic: str, partition: int, offset: int, max_bytes: int, timeout_s: float
):
    """One fetch (never long-polling: the range is below the end), following leader changes."""
    what = f"fetch {topic}-{partition}@{offset}"
    for attempt in range(MAX_LEADER_REFRESHES + 1):
        try:
            return leader, call(leader.fetch, offset, max_bytes, 0, timeout_s=timeout_s, what=what)
        except _LEADER_MOVED:
            if attempt == MAX_LEADER_REFRESHES:
                raise
            time.sleep(min(1.0, 0.05 * 2**attempt))
            ensure_ray(settings)
            manager = topic_manager(settings)
            meta = call(manager.topic_metadata, topic, timeout_s=timeout_s, what="topic metadata")
            leader = meta["leaders"][partition]
    raise AssertionError("unreachable")


def _read_partition(
    settings: Settings,
    leader,
    topic: str,
    partition: int,
    start: int,
    end: int,
    max_bytes: int,
    timeout_s: float,
) -> Iterator[pa.Table]:
    """The read task body: fetch ``[start, end)`` of one partition, one table per fetch."""
    if start >= end:
        yield CONSUMER_SCHEMA.empty_table()
        return
    offset = start
    while offset < end:
        leader, (frames, log_start, log_end) = _fetch(
            settings, leader, topic, partition, offset, max_bytes, timeout_s
        )
        batches = [b for b in decode_fetch(topic, partition, frames, offset) if b.num_rows]
        if not batches:
            raise OffsetOutOfRange(
                f"{topic}-{partition}: no records at offset {offset} although the dataset's range ends at "
                f"{end} (log now [{log_start}, {log_end}]); was the topic deleted and recreated? "
                f"Call read_topic again",
                earliest=log_start,
                latest=log_end,
            )
        table = pa.Table.from_batches(batches, schema=CONSUMER_SCHEMA)
        # offsets are contiguous: the first row is ``offset``
        if offset + table.num_rows > end:
            table = table.slice(0, end - offset)
        offset += table.num_rows
        yield table


class TopicDatasource(Datasource):
    """A bounded range of a topic as a Ray Data source: one read task per partition.

    Prefer :func:`read_topic`. ``start``/``end``: ``"earliest"``, ``"latest"``, an offset
    applied to every partition, or ``{partition: offset-or-"earliest"/"latest"}`` (partitions
    not named take ``"earliest"`` for start and ``"latest"`` for end). Offsets are resolved
    here, once; an offset outside a partition's current ``[log_start, log_end]`` raises
    ``OffsetOutOfRange`` (nothing is silently clamped), and ``start > end`` raises ``ValueError``.
    """

    def __init__(
        self,
        topic: str,
        start: RangeSpec = "earliest",
        end: RangeSpec = "latest",
        *,
        partitions: Sequence[int] | None = None,
        settings: Settings | None = None,
        fetch_max_bytes: int = DEFAULT_FETCH_MAX_BYTES,
        request_timeout_ms: int = DEFAULT_REQUEST_TIMEOUT_MS,
    ):
        super().__init__()
        validate_topic_name(topic)
        _check_spec("start", start)
        _check_spec("end", end)
        for name, value in (("fetch_max_bytes", fetch_max_bytes), ("request_timeout_ms", request_timeout_ms)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.topic = topic
        self.settings = settings or current_settings()
        self.fetch_max_bytes = fetch_max_bytes
        self.request_timeout_ms = request_timeout_ms
        timeout_s = request_timeout_ms / 1000
        manager = topic_manager(self.settings)
        leaders = call(manager.topic_metadata, topic, timeout_s=timeout_s, what="topic metadata")["leaders"]
        if partitions is None:
            chosen = list(range(len(leaders)))
        else:
            chosen = sorted(set(partitions))
            for p in chosen:
                if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p < len(leaders):
                    raise ValueError(f"topic {topic!r} has partitions 0..{len(leaders) - 1}; got {p!r}")
        for name, spec in (("start", start), ("end", end)):
            if isinstance(spec, Mapping):
                unknown = sorted(p for p in spec if p >= len(leaders))
                if unknown:
                    raise ValueError(
                        f"{name} names partitions {unknown}; topic {topic!r} has 0..{len(leaders) - 1}"
                    )
        bounds = ray.get([leaders[p].offsets.remote() for p in chosen], timeout=timeout_s)
        sizes = self._log_sizes([leaders[p] for p in chosen], timeout_s)
        #: (partition, leader handle, start, end, estimated bytes) per read task
        self.ranges: list[tuple[int, Any, int, int, int | None]] = []
        for p, (log_start, log_end), size in zip(chosen, bounds, sizes, strict=True):
            lo = _resolve(start, p, "earliest", log_start, log_end)
            hi = _resolve(end, p, "latest", log_start, log_end)
            for what, offset in (("start", lo), ("end", hi)):
                if not log_start <= offset <= log_end:
                    raise OffsetOutOfRange(
                        f"read_topic {what} offset {offset} is outside {topic}-{p}'s range "
                        f"[{log_start}, {log_end}]; give offsets within it or 'earliest'/'latest'",
                        earliest=log_start,
                        latest=log_end,
                    )
            if lo > hi:
                raise ValueError(f"read_topic: start {lo} is after end {hi} for {topic}-{p}")
            estimate = None
            if size is not None and log_end > log_start:
                estimate = int(size * (hi - lo) / (log_end - log_start))
            self.ranges.append((p, leaders[p], lo, hi, estimate))

    @staticmethod
    def _log_sizes(handles: list, timeout_s: float) -> list[int | None]:
        """On-disk bytes per partition (for Ray Data's size estimates); None where unknown."""
        try:
            infos = ray.get([h.info.remote() for h in handles], timeout=timeout_s)
            return [int(i["size_bytes"]) for i in infos]
        except Exception:  # only an estimate
            return [None] * len(handles)

    @property
    def offsets(self) -> dict[int, tuple[int, int]]:
        """``{partition: (start, end)}`` this dataset reads (end exclusive)."""
        return {p: (lo, hi) for p, _, lo, hi, _ in self.ranges}

    def get_name(self) -> str:
        return f"ReadTopic({self.topic})"

    def estimate_inmemory_data_size(self) -> int | None:
        sizes = [r[4] for r in self.ranges]
        return None if any(s is None for s in sizes) else sum(sizes)

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None, data_context=None):
        """One task per partition, whatever ``parallelism`` asks (partitions are the unit of order)."""
        tasks = []
        for partition, leader, lo, hi, estimate in self.ranges:
            read_fn = functools.partial(
                _read_partition,
                self.settings,
                leader,
                self.topic,
                partition,
                lo,
                hi,
                self.fetch_max_bytes,
                self.request_timeout_ms / 1000,
            )
            metadata = BlockMetadata(num_rows=hi - lo, size_bytes=estimate, input_files=None, exec_stats=None)
            tasks.append(
                ReadTask(read_fn, metadata, schema=CONSUMER_SCHEMA, per_task_row_limit=per_task_row_limit)
            )
        return tasks


def read_topic(
    topic: str,
    start: RangeSpec = "earliest",
    end: RangeSpec = "latest",
    *,
    partitions: Sequence[int] | None = None,
    settings: Settings | None = None,
    fetch_max_bytes: int = DEFAULT_FETCH_MAX_BYTES,
    request_timeout_ms: int = DEFAULT_REQUEST_TIMEOUT_MS,
    **read_args,
) -> Dataset:
    """A ``ray.data.Dataset`` of ``topic``'s records in ``[start, end)`` of each partition.

    ``start``/``end``: ``"earliest"`` (log start), ``"latest"`` (log end, as of this
    call), an int offset for every partition, or ``{partition: offset}`` (partitions not
    named default to ``"earliest"``/``"latest"``). ``partitions`` limits the read to
    those partitions. The range is resolved now, once: the dataset is bounded and
    reproducible. Columns: ``topic``, ``partition``, ``offset``, ``timestamp_ms``, ``key``,
    ``value``, ``headers`` (as ``Consumer.poll_batch``); rows of one partition come in
    offset order, one read task (and block stream) per partition.

    Uses the connection of the last ``raykafka.connect`` (or ``settings``). Extra keyword
    arguments go to ``ray.data.read_datasource`` (e.g. ``num_cpus``, ``ray_remote_args``);
    ``override_num_blocks`` defaults to the number of partitions, so Ray Data does not split a
    partition's blocks further. As with any Ray Data source, downstream operators see blocks in
    no fixed order unless ``DataContext.execution_options.preserve_order`` is set.
    Raises ``UnknownTopic``, ``OffsetOutOfRange`` (an offset outside a partition's log),
    ``ValueError``/``TypeError`` for bad arguments.

    Example::

        ds = read_topic("events", start={0: 100}, end={0: 200}, partitions=[0])
    """
    datasource = TopicDatasource(
        topic,
        start,
        end,
        partitions=partitions,
        settings=settings,
        fetch_max_bytes=fetch_max_bytes,
        request_timeout_ms=request_timeout_ms,
    )
    # One read task per partition and no splitting of its blocks to reach Ray Data's default parallelism
    # (which would only scatter a partition's records over more downstream tasks).
    read_args.setdefault("override_num_blocks", max(1, len(datasource.ranges)))
    return ray.data.read_datasource(datasource, **read_args)


# -- writing -----------------------------------------------------------------------


def _producer(settings: Settings, config: dict):
    """A Producer on ``settings`` in this (task) process."""
    from raykafka.api.producer import Producer

    ensure_ray(settings)
    return Producer(**config, settings=settings)


def _binary(column: pa.ChunkedArray | pa.Array, name: str) -> pa.ChunkedArray | pa.Array:
    kind = column.type
    if pa.types.is_binary(kind):
        return column
    if (
        pa.types.is_large_binary(kind)
        or pa.types.is_fixed_size_binary(kind)
        or pa.types.is_string(kind)
        or (pa.types.is_large_string(kind))
    ):
        return column.cast(pa.binary())  # strings: their UTF-8 bytes
    if pa.types.is_null(kind):
        return column.cast(pa.binary())
    raise TypeError(f"TopicDatasink: column {name!r} must be binary or string, got {kind}")


class TopicDatasink(Datasink[int]):
    """Append a Dataset to ``topic``: ``ds.write_datasink(TopicDatasink("out"))``.

    Each row becomes one message. ``value_column`` (binary or string; strings are sent
    as UTF-8) is required. ``key_column``/``headers_column``: used when the block has
    them (the defaults match ``read_topic``'s columns, so a read dataset can be written
    back); ``None`` ignores them; a non-default name that is missing is an error.
    ``timestamp_column`` (int64 ms) keeps given timestamps (default: the send time,
    as a Kafka producer). ``partition_column`` sends each row to the partition it names
    (e.g. ``"partition"`` to mirror a topic partition for partition); otherwise keyed
    rows go to ``hash(key) % partitions`` and unkeyed rows spread.

    Each write task uses one ``Producer(**producer_config)``, sends its blocks in order
    and flushes before it returns: within one write task per-partition order is the
    dataset's order. Ray Data runs write tasks concurrently and keeps no order between
    blocks by default, so to append in exactly the dataset's order (e.g. to mirror a topic
    partition by partition) set ``DataContext.get_current().execution_options.preserve_order
    = True`` and call ``ds.write_datasink(sink, concurrency=1)``.
    The topic must exist (unless ``connect(auto_create_topics=True)``).
    ``num_rows_written`` holds the total after ``write_datasink`` returns.
    """

    def __init__(
        self,
        topic: str,
        key_column: str | None = "key",
        value_column: str = "value",
        *,
        headers_column: str | None = "headers",
        timestamp_column: str | None = None,
        partition_column: str | None = None,
        producer_config: Mapping[str, Any] | None = None,
        settings: Settings | None = None,
    ):
        validate_topic_name(topic)
        for name, value in (
            ("key_column", key_column),
            ("headers_column", headers_column),
            ("timestamp_column", timestamp_column),
            ("partition_column", partition_column),
        ):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a column name or None, got {type(value).__name__}")
        if not isinstance(value_column, str):
            raise TypeError(f"value_column must be a column name, got {type(value_column).__name__}")
        self.topic = topic
        self.key_column = key_column
        self.value_column = value_column
        self.headers_column = headers_column
        self.timestamp_column = timestamp_column
        self.partition_column = partition_column
        self.producer_config = dict(producer_config or {})
        self.settings = settings or current_settings()
        self.num_rows_written: int | None = None

    def get_name(self) -> str:
        return f"WriteTopic({self.topic})"

    def on_write_start(self, schema: pa.Schema | None = None) -> None:
        """Fail fast, before any write task starts, when the topic is missing or a column is."""
        try:
            call(topic_manager(self.settings).topic_metadata, self.topic, timeout_s=30, what="topic metadata")
        except UnknownTopic:
            if not self.settings.auto_create_topics:
                raise
        if schema is not None and isinstance(schema, pa.Schema) and self.value_column not in schema.names:
            raise ValueError(
                f"TopicDatasink: the dataset has no {self.value_column!r} column (it has {schema.names}); "
                f"pass value_column= or add one with map_batches"
            )

    def _record_table(self, table: pa.Table) -> tuple[pa.Table, pa.Array | None]:
        names = table.column_names
        if self.value_column not in names:
            raise ValueError(f"TopicDatasink: block has no {self.value_column!r} column (it has {names})")
        columns = {"value": _binary(table.column(self.value_column), self.value_column)}
        for field, column, default in (
            ("key", self.key_column, "key"),
            ("headers", self.headers_column, "headers"),
            ("timestamp_ms", self.timestamp_column, None),
        ):
            if column is None:
                continue
            if column not in names:
                if column == default:
                    continue
                raise ValueError(f"TopicDatasink: block has no {column!r} column (it has {names})")
            data = table.column(column)
            columns[field] = _binary(data, column) if field == "key" else data
        partitions = None
        if self.partition_column is not None:
            if self.partition_column not in names:
                raise ValueError(
                    f"TopicDatasink: block has no {self.partition_column!r} column (it has {names})"
                )
            partitions = table.column(self.partition_column).combine_chunks()
        return pa.table(columns), partitions

    def write(self, blocks: Iterable[Block], ctx) -> int:
        producer = _producer(self.settings, self.producer_config)
        batch_bytes = max(1, int(self.producer_config.get("batch_size", 1 << 20)))
        written = 0
        try:
            for block in blocks:
                table = BlockAccessor.for_block(block).to_arrow()
                if table.num_rows == 0:
                    continue
                records, partitions = self._record_table(table)
                if partitions is None:
                    pieces = [(None, records)]
                else:
                    pieces = []
                    for p in pc.unique(partitions).to_pylist():
                        mask = pc.equal(partitions, p)
                        pieces.append((int(p), records.filter(mask)))
                for partition, piece in pieces:
                    # about batch_size bytes per send_batch: a block may be 100s of MB
                    rows = max(1, int(piece.num_rows * batch_bytes / max(1, piece.nbytes)))
                    for first in range(0, piece.num_rows, rows):
                        producer.send_batch(self.topic, piece.slice(first, rows), partition=partition)
                written += table.num_rows
            producer.flush()
        finally:
            producer.close()
        return written

    def on_write_complete(self, write_result: WriteResult[int]) -> None:
        self.num_rows_written = sum(write_result.write_returns)
