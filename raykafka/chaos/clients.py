"""The chaos run's clients, each recording what it saw into the history.

* ``ProducerLoop``: an idempotent ``acks="all"`` producer on a thread of the driver, sending
  unique payloads round-robin over the partitions at a steady rate; every future's outcome
  (the acknowledged offset, or the error) goes into the history.
* ``GroupMember``: a Ray actor on the head node holding one group member that reads
  everything and commits every ``commit_interval_s``. It appends what it was handed and what
  it committed to a JSON-lines file (one ``write`` per batch, so a SIGKILL loses only the
  batch in hand), and starts its loop in its constructor: when the chaos run SIGKILLs it,
  Ray restarts it and the restarted member joins the group again.
* ``CommitObserver``: reads the group's committed offsets from its coordinator every second.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time

import ray

from raykafka.chaos.history import Acked, Commit, FailedSend, History

#: Records in flight per producer at most (futures not yet completed).
PRODUCER_WINDOW = 64


class ProducerLoop:
    """Sends ``rate_per_s`` unique records a second until ``stop``; records every outcome."""

    def __init__(
        self,
        name: str,
        topic: str,
        partitions: int,
        history: History,
        lock: threading.Lock,
        rate_per_s: float = 60.0,
        request_timeout_ms: int = 30000,
    ) -> None:
        from raykafka import Producer

        self.name, self.topic, self.partitions = name, topic, partitions
        self.history, self.lock = history, lock
        self.interval_s = 1.0 / rate_per_s
        self.producer = Producer(
            acks="all", enable_idempotence=True, linger_ms=5, request_timeout_ms=request_timeout_ms
        )
        self.window = threading.BoundedSemaphore(PRODUCER_WINDOW)
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"chaos-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        i = 0
        next_at = time.monotonic()
        while not self._stop.is_set():
            partition = i % self.partitions
            payload = f"{self.name}-{i:09d}".encode()
            i += 1
            while not self.window.acquire(timeout=0.5):  # 64 in flight: a stall
                if self._stop.is_set():
                    return
            try:
                future = self.producer.send(self.topic, payload, partition=partition)
            except Exception as exc:
                self.window.release()
                self._failed(partition, payload, exc)
                self._stop.wait(0.1)
                continue
            self.sent += 1
            future.add_done_callback(lambda f, p=partition, v=payload: self._done(f, p, v))
            next_at += self.interval_s
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_at = time.monotonic()  # behind (a stall): no burst to catch up

    def _done(self, future, partition: int, payload: bytes) -> None:
        try:
            error = future.exception()
            if error is None:
                [meta] = future.result()
                with self.lock:
                    self.history.acked.append(
                        Acked(self.topic, partition, meta.offset, payload, self.name, time.monotonic())
                    )
            else:
                self._failed(partition, payload, error)
        finally:
            self.window.release()

    def _failed(self, partition: int, payload: bytes, error: BaseException) -> None:
        with self.lock:
            self.history.failed.append(
                FailedSend(
                    self.topic,
                    partition,
                    payload,
                    self.name,
                    time.monotonic(),
                    f"{type(error).__name__}: {error}"[:300],
                )
            )

    def stop(self, timeout_s: float = 120.0) -> None:
        """Stop sending, wait for every future (close flushes) and close the producer."""
        self._stop.set()
        self._thread.join(timeout=timeout_s)
        with contextlib.suppress(Exception):  # close() raises again a send's failure: recorded
            self.producer.close(timeout=timeout_s)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=4)
class GroupMember:
    """One member of ``group`` reading ``topic`` from the earliest offset and committing."""

    def __init__(
        self,
        settings,
        group: str,
        topic: str,
        log_path: str,
        name: str,
        commit_interval_s: float = 0.5,
        session_timeout_ms: int = 6000,
    ) -> None:
        self.settings, self.group, self.topic = settings, group, topic
        self.reader = f"{name}@{os.getpid()}"  # a restarted member is another reader
        self.commit_interval_s = commit_interval_s
        self.session_timeout_ms = session_timeout_ms
        self.fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-member", daemon=True)
        self._thread.start()

    def pid(self) -> int:
        return os.getpid()

    def _write(self, rows: list) -> None:
        if rows:
            os.write(self.fd, "".join(json.dumps(r) + "\n" for r in rows).encode())

    def _run(self) -> None:
        from raykafka import Consumer

        consumer = None
        while not self._stop.is_set():
            try:
                if consumer is None:
                    consumer = Consumer(
                        group_id=self.group,
                        auto_offset_reset="earliest",
                        enable_auto_commit=False,
                        session_timeout_ms=self.session_timeout_ms,
                        settings=self.settings,
                    )
                    consumer.subscribe([self.topic])
                    next_commit = time.monotonic() + self.commit_interval_s
                table = consumer.poll_batch(max_messages=5000, timeout_s=0.5)
                if table.num_rows:
                    self._write(
                        [
                            ["r", t, p, o, v.decode("latin-1"), self.reader]
                            for t, p, o, v in zip(
                                table.column("topic").to_pylist(),
                                table.column("partition").to_pylist(),
                                table.column("offset").to_pylist(),
                                table.column("value").to_pylist(),
                                strict=True,
                            )
                        ]
                    )
                if time.monotonic() >= next_commit:
                    self._commit(consumer)
                    next_commit = time.monotonic() + self.commit_interval_s
            except Exception as exc:  # a member that failed starts over as a new one
                self.error = f"{type(exc).__name__}: {exc}"[:300]
                if consumer is not None:
                    with contextlib.suppress(Exception):
                        consumer.close()
                consumer = None
                self._stop.wait(1.0)
        if consumer is not None:
            with contextlib.suppress(Exception):
                self._commit(consumer)
            with contextlib.suppress(Exception):
                consumer.close()

    def _commit(self, consumer) -> None:
        assigned = consumer.assignment()
        if not assigned:
            return
        positions = consumer.position(assigned)
        start = time.monotonic()
        consumer.commit(positions)
        end = time.monotonic()
        self._write(
            [
                ["c", self.group, tp.topic, tp.partition, offset, start, end, self.reader]
                for tp, offset in positions.items()
            ]
        )

    def stop(self) -> str | None:
        """Commit, leave the group, and answer the last error the member had (None: none)."""
        self._stop.set()
        self._thread.join(timeout=60)
        return self.error


def member_rows_to_history(rows: list[list], history: History) -> None:
    """A member log's rows into ``history`` (reads to ``consumed``, commits to ``commits``)."""
    from raykafka.chaos.history import Read

    for row in rows:
        if row[0] == "r":
            _, topic, partition, offset, payload, reader = row
            history.consumed.append(Read(topic, partition, offset, payload.encode("latin-1"), reader))
        elif row[0] == "c":
            history.commits.append(Commit(*row[1:]))


class CommitObserver:
    """Reads ``group``'s committed offsets every ``interval_s`` into the history (``observer``)."""

    def __init__(self, group: str, history: History, lock: threading.Lock, interval_s: float = 1.0) -> None:
        from raykafka import Admin

        self.group, self.history, self.lock = group, history, lock
        self.admin = Admin(request_timeout_ms=5000)
        self.interval_s = interval_s
        self.latest: dict[tuple[str, int], int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-observer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            start = time.monotonic()
            try:
                committed = self.admin.describe_group(self.group).committed
            except Exception:
                continue  # the coordinator is down or restarting: nothing observed
            end = time.monotonic()
            with self.lock:
                for tp, offset in committed.items():
                    self.latest[(tp.topic, tp.partition)] = offset
                    self.history.commits.append(
                        Commit(self.group, tp.topic, tp.partition, offset, start, end, "observer")
                    )

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
