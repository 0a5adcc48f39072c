"""MessageStream: one member of a consumer group as an iterable, picklable object (the Kafka paper's stream).

``Consumer.create_message_streams(topic, n)`` returns ``n`` of them. A stream
holds only settings, so it pickles: hand it to a Ray task or actor, and its
membership starts where it is first iterated (a Consumer is built there, in
that process, and subscribes). Iteration blocks and never ends unless the
stream is closed or ``timeout_s`` passes without a message. That time counts
from when the stream's member has its first assignment (the rebalance after its
join is done; at most ``request_timeout_ms`` after iteration began), so a slow
join -- a new worker process, a busy cluster, the group gathering members that
start together -- does not end a stream early.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pyarrow as pa

from raykafka.api.connection import Settings, ensure_ray
from raykafka.api.message import Message
from raykafka.errors import ConsumerClosed

#: Longest single wait inside iteration, so close() and timeout_s are noticed promptly.
POLL_SLICE_S = 0.5


class MessageStream:
    """Iterate ``Message``s (``for m in stream``) or Arrow tables (``stream.batches()``).

    Example::

        streams = Consumer(group_id="g1").create_message_streams("topic1", 2)

        @ray.remote
        def work(stream):
            return sum(1 for _ in stream)          # runs until closed or timeout_s

        ray.get([work.remote(s) for s in streams])
    """

    def __init__(
        self,
        settings: Settings,
        consumer_config: dict,
        topics: list[str],
        timeout_s: float | None,
        cohort_size: int | None = None,
    ):
        self._settings = settings
        self._cohort_size = cohort_size  # streams created together: the first rebalance waits for all
        self._config = dict(consumer_config)
        self._topics = list(topics)
        self.timeout_s = timeout_s
        self._consumer = None
        self._closed = False

    def __getstate__(self) -> dict:
        return {
            "settings": self._settings,
            "config": self._config,
            "topics": self._topics,
            "timeout_s": self.timeout_s,
            "cohort_size": self._cohort_size,
        }

    def __setstate__(self, state: dict) -> None:
        self.__init__(
            state["settings"], state["config"], state["topics"], state["timeout_s"], state.get("cohort_size")
        )

    @property
    def consumer(self):
        """The group member behind this stream (created at first use, in this process).
        Raises ConsumerClosed once the stream is closed: a new member would join the group and
        hold partitions nobody reads."""
        if self._closed:
            raise ConsumerClosed("this MessageStream is closed; create new streams")
        if self._consumer is None:
            from raykafka.api.consumer import Consumer

            ensure_ray(self._settings)
            self._consumer = Consumer(**self._config, settings=self._settings)
            self._consumer._subscribe(self._topics, cohort_size=self._cohort_size)
        return self._consumer

    def __iter__(self) -> Iterator[Message]:
        if self._closed:
            return
        consumer = self.consumer
        started = idle_since = time.monotonic()
        while not self._closed:
            message = consumer.poll(timeout_s=self._slice(idle_since))
            if message is None:
                idle_since = self._joining(consumer, started, idle_since)
                if self._timed_out(idle_since):
                    return
                continue
            idle_since = time.monotonic()
            yield message

    def batches(self, max_messages: int = 10000) -> Iterator[pa.Table]:
        """Arrow tables of up to ``max_messages`` records, as they arrive (columns as poll_batch)."""
        if self._closed:
            return
        consumer = self.consumer
        started = idle_since = time.monotonic()
        while not self._closed:
            table = consumer.poll_batch(max_messages=max_messages, timeout_s=self._slice(idle_since))
            if table.num_rows == 0:
                idle_since = self._joining(consumer, started, idle_since)
                if self._timed_out(idle_since):
                    return
                continue
            idle_since = time.monotonic()
            yield table

    @staticmethod
    def _joining(consumer, started: float, idle_since: float) -> float:
        """``idle_since``, restarted until the member has its first assignment (bounded by the
        request timeout)."""
        member = consumer._member
        now = time.monotonic()
        if member is not None and not member.settled and now - started < consumer.request_timeout_ms / 1000:
            return now
        return idle_since

    def _slice(self, idle_since: float) -> float:
        if self.timeout_s is None:
            return POLL_SLICE_S
        return max(0.0, min(POLL_SLICE_S, idle_since + self.timeout_s - time.monotonic()))

    def _timed_out(self, idle_since: float) -> bool:
        return self.timeout_s is not None and time.monotonic() - idle_since >= self.timeout_s

    def commit(self) -> None:
        """Commit this stream's current positions."""
        if self._consumer is not None:
            self._consumer.commit()

    def close(self) -> None:
        """Commit (with auto-commit) and leave the group; iteration ends."""
        self._closed = True
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("active" if self._consumer else "not started")
        return f"<MessageStream {self._topics} group={self._config.get('group_id')!r} {state}>"
