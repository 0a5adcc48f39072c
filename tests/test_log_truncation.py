"""A consumer across a log truncation detects it by leader epoch and resumes where the logs part
(KIP-320), for a consumer that stays open and for groups resuming from a committed offset.

The truncation is what a power loss does to an only replica's unfsynced tail: the partition
actor's process is killed, its active segment cut back to a batch boundary while the test holds
the replica directory's lock (so the restarted actor waits), and the replica recovers the
shorter log under a new leader epoch. New records then take the lost offsets.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

import pyarrow as pa
import pytest
import ray

from raykafka import Admin, Consumer, Producer, TopicPartition
from raykafka.errors import LogTruncated
from raykafka.storage.framing import unpack_header
from tests.test_faults import TIMEOUT_S, leader, wait_for


def _values(prefix: str, n: int) -> pa.Table:
    return pa.table({"value": [f"{prefix}-{i}".encode() for i in range(n)]})


def _read(consumer: Consumer, n: int) -> list[tuple[int, bytes]]:
    got: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(got) < n:
        assert time.monotonic() < deadline, f"read {len(got)} of {n}"
        table = consumer.poll_batch(max_messages=n - len(got), timeout_s=1.0)
        got += zip(table.column("offset").to_pylist(), table.column("value").to_pylist(), strict=True)
    return got


def _cut_log_at(directory: Path, offset: int) -> None:
    [segment] = sorted(directory.glob("*.log"))
    data = segment.read_bytes()
    pos = 0
    while unpack_header(data, pos).base_offset != offset:
        pos += unpack_header(data, pos).frame_length
    with open(segment, "r+b") as f:
        f.truncate(pos)


def test_consumers_across_a_truncation_detect_it_and_resume_where_the_logs_part(rk, topic_name):
    topic = topic_name("cut")
    Admin().create_topic(topic, partitions=1)
    with Producer(acks=1) as producer:
        producer.send_batch(topic, _values("old", 80), partition=0).result(TIMEOUT_S)
        producer.send_batch(topic, _values("lost", 20), partition=0).result(TIMEOUT_S)
    tp = TopicPartition(topic, 0)
    open_reader = Consumer(group_id=None, auto_offset_reset="earliest")
    open_reader.assign([tp])
    assert [o for o, _ in _read(open_reader, 100)] == list(range(100))
    for group in ("resets", "strict"):
        member = Consumer(group_id=group, auto_offset_reset="earliest", enable_auto_commit=False)
        member.subscribe([topic])
        assert len(_read(member, 100)) == 100
        member.commit()
        member.close()

    handle = leader(rk, topic)
    info = ray.get(handle.info.remote(), timeout=TIMEOUT_S)
    directory = Path(info["directory"])
    epoch_before = info["epoch"]
    lock = os.open(directory / ".lock", os.O_RDWR)
    os.kill(info["pid"], 9)
    deadline = time.monotonic() + TIMEOUT_S
    while True:  # take the directory from the dead process before its restart can
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            assert time.monotonic() < deadline
            time.sleep(0.001)
    try:
        _cut_log_at(directory, 80)  # the "lost" batch never reached the disk
    finally:
        os.close(lock)

    admin = Admin()
    wait_for(lambda: admin.list_offsets(topic, 0, "latest") == 80, what="the recovered log end 80")
    new_leader = leader(rk, topic)
    assert ray.get(new_leader.state.remote(), timeout=TIMEOUT_S)["epoch"] > epoch_before
    with Producer(acks=1) as producer:
        metas = producer.send_batch(topic, _values("new", 30), partition=0).result(TIMEOUT_S)
    assert [m.offset for m in metas] == list(range(80, 110))
    new_records = [(80 + i, f"new-{i}".encode()) for i in range(30)]

    # Without the epoch check each would read on at offset 100 and never see new-0..new-19.
    assert _read(open_reader, 30) == new_records
    open_reader.close()
    member = Consumer(group_id="resets", auto_offset_reset="earliest")
    member.subscribe([topic])
    assert _read(member, 30) == new_records
    member.close()
    strict = Consumer(group_id="strict", auto_offset_reset="none")
    strict.subscribe([topic])
    with pytest.raises(LogTruncated) as raised:
        _read(strict, 1)
    assert raised.value.divergent_offset == 80
    strict.close()
