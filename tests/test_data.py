"""Ray Data integration: read_topic (bounded ranges, one read task per partition) and TopicDatasink."""

from __future__ import annotations

import pickle

import pyarrow as pa
import pytest

ray_data = pytest.importorskip("ray.data")

from raykafka import Admin, Consumer, Producer, TopicPartition  # noqa: E402
from raykafka.errors import OffsetOutOfRange, UnknownTopic  # noqa: E402
from raykafka.storage.records import CONSUMER_SCHEMA  # noqa: E402

PARTITIONS = 3
PER_PARTITION = 400


@pytest.fixture(autouse=True)
def quiet_data_context():
    """Small blocks and a fresh context per test; progress bars stay as Ray sets them."""
    ctx = ray_data.DataContext.get_current()
    saved = ctx.target_max_block_size
    yield ctx
    ctx.target_max_block_size = saved


def produce_partitioned(topic: str, per_partition: int = PER_PARTITION, partitions: int = PARTITIONS) -> dict:
    """``per_partition`` records into each partition, sent in several batches; returns {p: [(key, value)]}."""
    sent: dict[int, list[tuple[bytes, bytes]]] = {p: [] for p in range(partitions)}
    with Producer(linger_ms=0) as producer:
        futures = []
        for chunk in range(4):  # several stored batches per partition, so reads span batch boundaries
            for p in range(partitions):
                lo = chunk * per_partition // 4
                hi = (chunk + 1) * per_partition // 4
                keys = [f"k{p}-{i % 7}".encode() for i in range(lo, hi)]
                values = [f"p{p}-{i:05d}".encode() for i in range(lo, hi)]
                sent[p].extend(zip(keys, values, strict=True))
                table = pa.table({"key": pa.array(keys, pa.binary()), "value": pa.array(values, pa.binary())})
                futures.append(producer.send_batch(topic, table, partition=p))
        producer.flush()
        for future in futures:
            future.result(timeout=30)
    return sent


def read_all(topic: str, partitions: int) -> dict[int, list[tuple[bytes | None, bytes]]]:
    """Everything in ``topic`` per partition, in offset order, with a plain consumer."""
    consumer = Consumer(group_id=None, auto_offset_reset="earliest")
    consumer.assign([TopicPartition(topic, p, offset=0) for p in range(partitions)])
    ends = {p: Admin().list_offsets(topic, p, "latest") for p in range(partitions)}
    got: dict[int, list] = {p: [] for p in range(partitions)}
    total = sum(ends.values())
    seen = 0
    for _ in range(200):
        if seen >= total:
            break
        table = consumer.poll_batch(max_messages=10_000, timeout_s=0.5)
        for row in table.select(["partition", "key", "value"]).to_pylist():
            got[row["partition"]].append((row["key"], row["value"]))
            seen += 1
    consumer.close()
    assert seen == total
    return got


def test_read_transform_write_round_trip(rk, topic_name):
    from raykafka.data import TopicDatasink, read_topic

    source, sink_topic = topic_name("src"), topic_name("dst")
    admin = Admin()
    admin.create_topic(source, partitions=PARTITIONS)
    admin.create_topic(sink_topic, partitions=PARTITIONS)
    sent = produce_partitioned(source)
    stored = read_all(source, PARTITIONS)  # the source as a plain consumer sees it: the reference
    for p in range(PARTITIONS):
        assert sorted(stored[p]) == sorted(sent[p])

    ds = read_topic(source)
    assert ds.schema().base_schema.equals(CONSUMER_SCHEMA) or ds.schema().names == CONSUMER_SCHEMA.names

    def upper(batch: pa.Table) -> pa.Table:
        values = [v.upper() for v in batch.column("value").to_pylist()]
        return pa.table(
            {
                "key": batch.column("key"),
                "value": pa.array(values, pa.binary()),
                "partition": batch.column("partition"),
            }
        )

    # Ray Data keeps no order between blocks unless asked: blocks in dataset order, one write task at a time
    ctx = ray_data.DataContext.get_current()
    saved = ctx.execution_options.preserve_order
    ctx.execution_options.preserve_order = True
    try:
        sink = TopicDatasink(sink_topic, partition_column="partition")
        ds.map_batches(upper, batch_format="pyarrow").write_datasink(sink, concurrency=1)
    finally:
        ctx.execution_options.preserve_order = saved
    assert sink.num_rows_written == PARTITIONS * PER_PARTITION

    got = read_all(sink_topic, PARTITIONS)
    for p in range(PARTITIONS):
        expected = [(k, v.upper()) for k, v in stored[p]]
        assert got[p] == expected, f"partition {p} differs (count {len(got[p])} vs {len(expected)})"

    # read_topic itself: exact rows, in offset order per partition, one block stream per partition
    rows = read_topic(source).take_all()
    assert len(rows) == PARTITIONS * PER_PARTITION
    for p in range(PARTITIONS):
        mine = [r for r in rows if r["partition"] == p]
        assert [r["offset"] for r in mine] == list(range(PER_PARTITION))
        assert [(r["key"], r["value"]) for r in mine] == stored[p]
        assert all(r["topic"] == source for r in mine)


def test_keyed_write_without_partition_column(rk, topic_name):
    """Default sink: ``key`` column hashes to partitions; per-key order kept; strings sent as UTF-8."""
    from raykafka.data import TopicDatasink, read_topic

    out = topic_name("keyed")
    Admin().create_topic(out, partitions=2)
    rows = [{"key": f"user{i % 5}", "value": f"event-{i:04d}"} for i in range(300)]
    ray_data.from_items(rows, override_num_blocks=1).write_datasink(TopicDatasink(out))

    back = read_topic(out).take_all()
    assert len(back) == 300
    by_key: dict[bytes, list[bytes]] = {}
    partition_of: dict[bytes, set] = {}
    for r in sorted(back, key=lambda r: (r["partition"], r["offset"])):
        by_key.setdefault(r["key"], []).append(r["value"])
        partition_of.setdefault(r["key"], set()).add(r["partition"])
    assert all(len(ps) == 1 for ps in partition_of.values())  # same key, same partition
    for k in range(5):
        key = f"user{k}".encode()
        assert by_key[key] == [f"event-{i:04d}".encode() for i in range(k, 300, 5)]


def test_explicit_ranges(rk, topic_name):
    from raykafka.data import TopicDatasource, read_topic

    topic = topic_name("range")
    Admin().create_topic(topic, partitions=PARTITIONS)
    produce_partitioned(topic)
    stored = read_all(topic, PARTITIONS)

    # one int for every partition, crossing stored-batch boundaries (batches of 100)
    rows = read_topic(topic, start=50, end=250).take_all()
    assert len(rows) == PARTITIONS * 200
    for p in range(PARTITIONS):
        mine = sorted((r for r in rows if r["partition"] == p), key=lambda r: r["offset"])
        assert [r["offset"] for r in mine] == list(range(50, 250))
        assert [r["value"] for r in mine] == [v for _, v in stored[p][50:250]]

    # per-partition dicts; unnamed partitions default to earliest/latest; partitions= limits the read
    ds = read_topic(topic, start={0: 399, 2: 10}, end={2: 11}, partitions=[0, 2])
    rows = ds.take_all()
    got = sorted((r["partition"], r["offset"]) for r in rows)
    assert got == [(0, 399), (2, 10)]

    # empty ranges and "latest" as a start
    assert read_topic(topic, start="latest").take_all() == []
    assert read_topic(topic, start=123, end=123).take_all() == []

    # bounded: the range is fixed when read_topic is called, later sends are not in it
    ds = read_topic(topic, start=390)
    with Producer() as producer:
        producer.send(topic, b"late", partition=1).result(timeout=30)
    first = ds.take_all()
    assert len(first) == PARTITIONS * 10 and b"late" not in {r["value"] for r in first}
    assert sorted(r["offset"] for r in ds.take_all()) == sorted(r["offset"] for r in first)  # re-executed
    assert len(read_topic(topic, start=390).take_all()) == PARTITIONS * 10 + 1

    source = TopicDatasource(topic, start=5, end={1: 7})
    assert source.offsets == {0: (5, 400), 1: (5, 7), 2: (5, 400)}
    assert len(source.get_read_tasks(parallelism=64)) == PARTITIONS  # one per partition, always
    pickle.loads(pickle.dumps(source.get_read_tasks(1)[0].metadata))

    with pytest.raises(OffsetOutOfRange):
        read_topic(topic, end=10_000)
    with pytest.raises(ValueError):
        read_topic(topic, start=20, end=10)
    with pytest.raises(ValueError):
        read_topic(topic, start="middle")
    with pytest.raises(ValueError):
        read_topic(topic, start=-1)
    with pytest.raises(ValueError):
        read_topic(topic, partitions=[PARTITIONS])
    with pytest.raises(UnknownTopic):
        read_topic(topic_name("missing"))


def test_empty_topic(rk, topic_name):
    from raykafka.data import TopicDatasink, read_topic

    topic, out = topic_name("empty"), topic_name("empty-out")
    Admin().create_topic(topic, partitions=2)
    Admin().create_topic(out, partitions=1)
    ds = read_topic(topic)
    assert ds.count() == 0
    assert ds.take_all() == []
    assert ds.materialize().count() == 0
    assert ds.schema().names == CONSUMER_SCHEMA.names
    ds.write_datasink(TopicDatasink(out))
    assert Admin().list_offsets(out, 0, "latest") == 0


def test_sink_errors(rk, topic_name):
    from raykafka.data import TopicDatasink

    with pytest.raises(UnknownTopic):
        ray_data.from_items([{"value": b"x"}]).write_datasink(TopicDatasink(topic_name("nope")))
    topic = topic_name("cols")
    Admin().create_topic(topic)
    with pytest.raises(Exception, match="value"):
        ray_data.from_items([{"payload": b"x"}]).write_datasink(TopicDatasink(topic))


def test_progress_bars_left_enabled(rk):
    import raykafka.data  # noqa: F401  (importing the integration must not change Ray Data's settings)

    assert ray_data.DataContext.get_current().enable_progress_bars
