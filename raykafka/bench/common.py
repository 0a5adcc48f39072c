"""What every benchmark area shares: the workload's data, the Ray/raykafka session, small helpers.

The workload is the paper's: 200-byte messages in 10,000-message Arrow batches. A
``Session`` connects to Ray (starting a local one unless an address is given), picks a
raykafka namespace, creates the benchmark's topics and removes them (and everything it
started) at the end.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid

import numpy as np
import pyarrow as pa

MESSAGE_BYTES = 200
BATCH_MESSAGES = 10_000
DISTINCT_BATCHES = 8  # pre-built batches cycled through (16 MB of payload)
#: Every benchmark topic's max.message.bytes: a 10,000-message batch is ~2.2 MB, over the 1 MiB
#: default that caps a batch's payload, and every path should carry the same batches as the
#: ceiling it is compared with (one batch per call), not split them.
TOPIC_CONFIG = {"max.message.bytes": str(8 << 20)}


def build_batches(seed: int = 0) -> list[pa.RecordBatch]:
    """DISTINCT_BATCHES RecordBatches of BATCH_MESSAGES distinct random 200-byte values."""
    rng = np.random.default_rng(seed)
    offsets = (np.arange(BATCH_MESSAGES + 1, dtype=np.int32) * MESSAGE_BYTES).tobytes()
    out = []
    for _ in range(DISTINCT_BATCHES):
        data = rng.integers(0, 256, BATCH_MESSAGES * MESSAGE_BYTES, dtype=np.uint8).tobytes()
        buffers = [None, pa.py_buffer(offsets), pa.py_buffer(data)]
        values = pa.Array.from_buffers(pa.binary(), BATCH_MESSAGES, buffers)
        out.append(pa.RecordBatch.from_arrays([values], names=["value"]))
    return out


def build_tables(seed: int = 0) -> list[pa.Table]:
    return [pa.Table.from_batches([b]) for b in build_batches(seed)]


def batch_count(n_messages: int) -> int:
    return max(1, n_messages // BATCH_MESSAGES)


def median(values) -> float:
    return statistics.median(values)


def percentile(values, q) -> float:
    return float(np.percentile(np.asarray(values), q))


def load1() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


def produce_tables(
    topic: str, tables, n_batches: int, *, partition=None, on_batch=None, **producer_config
) -> float:
    """``send_batch`` ``n_batches`` tables (cycling ``tables``), then flush; returns the seconds taken.

    ``partition=None`` lets the producer spread batches over the partitions.
    """
    from raykafka import Producer

    producer = Producer(**producer_config)
    try:
        producer.partitions_for(topic)  # metadata cached before the clock starts
        start = time.perf_counter()
        for i in range(n_batches):
            producer.send_batch(topic, tables[i % len(tables)], partition=partition)
            if on_batch is not None:
                on_batch(BATCH_MESSAGES)
        producer.flush()
        return time.perf_counter() - start
    finally:
        producer.close()


class Session:
    """Ray plus a raykafka namespace for one benchmark process.

    ``address=None``: a fresh local Ray (``ray.init(address="local")``), unless Ray is already
    initialized in this process (the CLI connects first). ``namespace=None``: a fresh
    ``bench-xxxxxxxx`` namespace. The data directory is a temporary one unless the namespace
    already has a TopicManager (then that manager's directory is used and the manager is left
    running); only this session's topics are deleted at the end.
    """

    def __init__(self, address: str | None = None, namespace: str | None = None):
        self.address = address
        self.namespace = namespace or f"bench-{uuid.uuid4().hex[:8]}"
        self.data_dir: str | None = None
        self.owns_manager = False
        self.started_ray = False
        self.topics: list[str] = []
        self.admin = None

    def start(self) -> Session:
        import ray

        import raykafka
        from raykafka import Admin
        from raykafka.actors.naming import TOPIC_MANAGER_NAME

        if not ray.is_initialized():
            extra = {} if self.address else {"include_dashboard": False}
            ray.init(address=self.address or "local", logging_level="ERROR", log_to_driver=False, **extra)
            self.started_ray = True
        try:
            ray.get_actor(TOPIC_MANAGER_NAME, namespace=self.namespace)
        except ValueError:
            self.owns_manager = True
            self.data_dir = tempfile.mkdtemp(prefix="raykafka-bench-")
        raykafka.connect(namespace=self.namespace, data_dir=self.data_dir)
        self.admin = Admin()
        return self

    def new_topic(self, prefix: str, partitions: int = 1, replication_factor: int = 1, config=None) -> str:
        name = f"bench-{prefix}-{uuid.uuid4().hex[:8]}"
        self.admin.create_topic(
            name,
            partitions=partitions,
            replication_factor=replication_factor,
            config={**TOPIC_CONFIG, **(config or {})},
        )
        self.topics.append(name)
        return name

    def drop_topics(self) -> None:
        while self.topics:
            try:
                self.admin.delete_topic(self.topics.pop())
            except Exception as exc:
                print(f"  (cleanup: {exc})", file=sys.stderr)

    def leader_handle(self, topic: str, partition: int = 0):
        import ray

        from raykafka.api.connection import current_settings, topic_manager

        manager = topic_manager(current_settings())
        return ray.get(manager.topic_metadata.remote(topic))["leaders"][partition]

    def close(self, *actors) -> None:
        import ray

        with contextlib.suppress(Exception):
            self.drop_topics()
        for actor in actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        if self.owns_manager:
            from raykafka.actors.naming import TOPIC_MANAGER_NAME

            with contextlib.suppress(Exception):
                ray.kill(ray.get_actor(TOPIC_MANAGER_NAME, namespace=self.namespace))
        if self.started_ray:
            ray.shutdown()
        if self.data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
