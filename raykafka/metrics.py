"""raykafka's metrics, through ``ray.util.metrics``: they appear in the Ray dashboard and on
each node's Prometheus endpoint (``ray start --metrics-export-port``), prefixed ``ray_``.

| metric (Prometheus name)                         | kind      | tags                     |
|--------------------------------------------------|-----------|--------------------------|
| ``raykafka_messages_in_total``                   | counter   | topic, partition         |
| ``raykafka_bytes_in_total``                      | counter   | topic, partition         |
| ``raykafka_messages_out_total``                  | counter   | topic, partition         |
| ``raykafka_bytes_out_total``                     | counter   | topic, partition         |
| ``raykafka_produce_latency_ms``                  | histogram | topic, partition         |
| ``raykafka_fetch_latency_ms``                    | histogram | topic, partition         |
| ``raykafka_log_start_offset``                    | gauge     | topic, partition         |
| ``raykafka_log_end_offset``                      | gauge     | topic, partition         |
| ``raykafka_high_watermark``                      | gauge     | topic, partition         |
| ``raykafka_recovery_truncated_bytes_total``      | counter   | topic, partition         |
| ``raykafka_recovery_lost_segments_total``        | counter   | topic, partition         |
| ``raykafka_consumer_lag``                        | gauge     | group, topic, partition  |
| ``raykafka_rebalances_total``                    | counter   | group                    |

Produce latency is measured in the partition actor from the call's start to its
answer (for ``acks="all"`` that includes replication); fetch latency excludes
the long-poll wait. Metric objects are created on first use, in the process
that records them. The partition counters are added up in the actor and recorded
at most every ``COUNTER_FLUSH_S`` (and at each maintenance round): a
``ray.util.metrics`` record costs ~20 us, several per append and fetch, and Ray
exports every few seconds anyway. The recovery counters are recorded once, when a replica
opens a log whose recovery cut something (a power loss, a damaged disk); they have no series
until then.
"""

from __future__ import annotations

import time
from functools import cache

#: Longest time partition counters are held in the actor before being recorded.
COUNTER_FLUSH_S = 1.0
#: Histogram bucket edges, in milliseconds.
LATENCY_BUCKETS_MS = [0.5, 1, 2, 3, 5, 10, 15, 25, 50, 100, 250, 500, 1000, 5000]
_PARTITION_TAGS = ("topic", "partition")


@cache
def _counter(name: str, description: str, tags: tuple[str, ...]):
    from ray.util.metrics import Counter

    return Counter(name, description=description, tag_keys=tags)


@cache
def _gauge(name: str, description: str, tags: tuple[str, ...]):
    from ray.util.metrics import Gauge

    return Gauge(name, description=description, tag_keys=tags)


@cache
def _histogram(name: str, description: str, tags: tuple[str, ...]):
    from ray.util.metrics import Histogram

    return Histogram(name, description=description, boundaries=LATENCY_BUCKETS_MS, tag_keys=tags)


class PartitionMetrics:
    """What one partition replica records."""

    def __init__(self, topic: str, partition: int):
        self.tags = {"topic": topic, "partition": str(partition)}
        self.messages_in = _counter("raykafka_messages_in", "Records appended by producers", _PARTITION_TAGS)
        self.bytes_in = _counter("raykafka_bytes_in", "Bytes of record batches appended", _PARTITION_TAGS)
        self.messages_out = _counter(
            "raykafka_messages_out", "Records returned to consumers", _PARTITION_TAGS
        )
        self.bytes_out = _counter("raykafka_bytes_out", "Bytes of record batches returned", _PARTITION_TAGS)
        self.produce_ms = _histogram("raykafka_produce_latency_ms", "Append call duration", _PARTITION_TAGS)
        self.fetch_ms = _histogram(
            "raykafka_fetch_latency_ms", "Fetch duration past the long poll", _PARTITION_TAGS
        )
        self.log_start = _gauge("raykafka_log_start_offset", "First offset still stored", _PARTITION_TAGS)
        self.log_end = _gauge("raykafka_log_end_offset", "Offset the next record will get", _PARTITION_TAGS)
        self.high_watermark = _gauge(
            "raykafka_high_watermark", "Offsets below are on every in-sync replica", _PARTITION_TAGS
        )
        self.recovery_truncated_bytes = _counter(
            "raykafka_recovery_truncated_bytes",
            "Bytes recovery cut from the log on open: torn or damaged frames, segments past a hole",
            _PARTITION_TAGS,
        )
        self.recovery_lost_segments = _counter(
            "raykafka_recovery_lost_segments", "Segments recovery removed past a hole", _PARTITION_TAGS
        )

        # counts not yet recorded: messages in, bytes in, messages out, bytes out
        self._unrecorded = [0, 0, 0, 0]
        self._recorded_at = time.monotonic()

    def appended(self, records: int, nbytes: int, latency_ms: float) -> None:
        self.produce_ms.observe(latency_ms, self.tags)
        self._count(0, records, nbytes)

    def fetched(self, records: int, nbytes: int, latency_ms: float) -> None:
        self.fetch_ms.observe(latency_ms, self.tags)
        self._count(2, records, nbytes)

    def _count(self, slot: int, records: int, nbytes: int) -> None:
        pending = self._unrecorded
        pending[slot] += records
        pending[slot + 1] += nbytes
        if time.monotonic() - self._recorded_at >= COUNTER_FLUSH_S:
            self.record_counters()

    def record_counters(self) -> None:
        """Hand the counts added up since the last call to Ray's metrics."""
        self._recorded_at = time.monotonic()
        pending, self._unrecorded = self._unrecorded, [0, 0, 0, 0]
        for counter, value in zip(
            (self.messages_in, self.bytes_in, self.messages_out, self.bytes_out), pending, strict=True
        ):
            if value:
                counter.inc(value, self.tags)

    def recovered(self, truncated_bytes: int, lost_segments: int) -> None:
        """What recovery cut when the replica opened its log (called once, if it cut anything)."""
        if truncated_bytes:
            self.recovery_truncated_bytes.inc(truncated_bytes, self.tags)
        if lost_segments:
            self.recovery_lost_segments.inc(lost_segments, self.tags)

    def offsets(self, log_start: int, log_end: int, high_watermark: int) -> None:
        """The gauges, and the counters held back (called every maintenance round)."""
        self.record_counters()
        self.log_start.set(log_start, self.tags)
        self.log_end.set(log_end, self.tags)
        self.high_watermark.set(high_watermark, self.tags)


class GroupMetrics:
    """What one group coordinator records."""

    def __init__(self, group_id: str):
        self.group_id = group_id
        self.lag = _gauge(
            "raykafka_consumer_lag", "Log end offset minus committed offset", ("group", "topic", "partition")
        )
        self.rebalances = _counter(
            "raykafka_rebalances", "Generations started by membership changes", ("group",)
        )

    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        self.lag.set(lag, {"group": self.group_id, "topic": topic, "partition": str(partition)})
