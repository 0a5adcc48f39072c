"""A partition's disk fills up, end to end (a real tmpfs as data_dir, a real local Ray): the
producer is told why, nothing acknowledged is lost, and appends resume once space is freed,
without a restart."""

from __future__ import annotations

import uuid

import pytest

import raykafka
from raykafka import Admin, Consumer, Producer, TopicPartition
from raykafka.errors import RequestTimedOut
from tests.conftest import kill_namespace
from tests.tmpfs import fill_with_ballast, mounted_tmpfs

RECORD = 2048


def test_full_disk_fails_sends_typed_then_resumes_when_space_is_freed(local_ray, tmp_path):
    namespace, topic = f"test-{uuid.uuid4().hex[:8]}", f"full-{uuid.uuid4().hex[:6]}"
    with mounted_tmpfs(tmp_path / "disk", 8 << 20) as disk:
        raykafka.connect(namespace=namespace, data_dir=str(disk))
        try:
            Admin().create_topic(topic, partitions=1, config={"segment.bytes": str(256 << 10)})
            with Producer(linger_ms=0) as producer:  # warm: the short timeout below is for the disk
                assert producer.send(topic, b"first", partition=0).result(60)[0].offset == 0
            ballast = fill_with_ballast(disk)
            (disk / "ballast-spare").write_bytes(b"")  # an inode for later
            ballast_bytes = ballast.stat().st_size
            # Leave ~600 KiB: a few segments' worth, then full.
            with open(ballast, "r+b") as f:
                f.truncate(ballast_bytes - (600 << 10))

            acknowledged: list[tuple[int, bytes]] = [(0, b"first")]
            failure = None
            producer = Producer(linger_ms=0, request_timeout_ms=3000)
            for i in range(1, 2000):
                value = i.to_bytes(4, "big") * (RECORD // 4)
                try:
                    [meta] = producer.send(topic, value, partition=0).result(30)
                except RequestTimedOut as exc:
                    failure = exc
                    break
                acknowledged.append((meta.offset, value))
            with pytest.raises(RequestTimedOut):  # close() flushes: it reports the failure again
                producer.close()
            assert failure is not None, "the disk never filled"
            assert "StorageFull" in str(failure), str(failure)
            assert [o for o, _ in acknowledged] == list(range(len(acknowledged)))
            assert len(acknowledged) > 100

            ballast.unlink()  # space is back: no restart, appends resume by themselves
            with Producer(linger_ms=0) as producer:
                [meta] = producer.send(topic, b"after", partition=0).result(30)
            # The failed record may or may not have been stored before its retries gave up: it
            # was never acknowledged. Everything acknowledged is there, in order, exactly.
            consumer = Consumer(group_id=None, auto_offset_reset="earliest")
            consumer.assign([TopicPartition(topic, 0)])
            got: list[bytes] = []
            while len(got) < meta.offset + 1:
                table = consumer.poll_batch(timeout_s=2.0)
                assert table.num_rows, f"stopped at {len(got)} of {meta.offset + 1}"
                got += table.column("value").to_pylist()
            consumer.close()
            assert got[: len(acknowledged)] == [v for _, v in acknowledged]
            assert got[meta.offset] == b"after"
            assert meta.offset - len(acknowledged) <= 1
        finally:
            kill_namespace(namespace)
            raykafka.connect(namespace=f"test-{uuid.uuid4().hex[:8]}", data_dir=str(tmp_path / "after"))


pytestmark = pytest.mark.slow
