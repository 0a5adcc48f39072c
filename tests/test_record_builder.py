"""The producer's RecordBuilder: the compiled twin and the pure-Python one answer alike.

``raykafka.api.record_builder.RecordBuilder`` is the C extension when it was built
(``setup.py``) and ``PyRecordBuilder`` otherwise; every check here runs on both. The suite
runs with ``RAYKAFKA_REQUIRE_EXTENSIONS=1`` (scripts/test.sh) so that an install that
silently fell back to Python fails here instead of passing slower.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from raykafka.api import record_builder
from raykafka.api.batching import to_record_batch
from raykafka.api.record_builder import (
    RECORD_OVERHEAD_BYTES,
    PyRecordBuilder,
    PyRecordFutureBase,
)
from raykafka.storage.records import header_bytes


def _twins():
    twins = [pytest.param((PyRecordBuilder, PyRecordFutureBase), id="python")]
    compiled = record_builder._compiled_twin()
    if compiled is not None:
        twins.append(pytest.param((compiled.RecordBuilder, compiled.RecordFutureBase), id="compiled"))
    return twins


@pytest.fixture(params=_twins())
def twin(request):
    return request.param


def test_the_compiled_twin_is_installed_when_required():
    if not os.environ.get("RAYKAFKA_REQUIRE_EXTENSIONS"):
        pytest.skip("RAYKAFKA_REQUIRE_EXTENSIONS is not set (scripts/test.sh sets it)")
    assert record_builder._compiled_twin() is not None, "the C extension was not built: see setup.py's output"
    assert record_builder.COMPILED


def _future_type(base):
    return type("Future", (base,), {"__slots__": ()})


def test_append_value_stamps_now_and_returns_sequential_futures(twin):
    builder_type, future_base = twin
    future_type = _future_type(future_base)
    result = object()
    builder = builder_type(result, 1 << 20, 1 << 20, future_type)
    before = time.time_ns() // 1_000_000
    futures = [builder.append_value(b"v%d" % i) for i in range(5)]
    after = time.time_ns() // 1_000_000
    builder.seal()
    assert [type(f) for f in futures] == [future_type] * 5
    assert [f._batch for f in futures] == [result] * 5
    assert [f._index for f in futures] == [0, 1, 2, 3, 4]
    batch = to_record_batch(builder)
    assert batch.column("value").to_pylist() == [b"v0", b"v1", b"v2", b"v3", b"v4"]
    assert batch.column("key").null_count == 5
    stamps = batch.column("timestamp_ms").to_pylist()
    assert stamps == sorted(stamps) and before <= stamps[0] and stamps[-1] <= after
    assert builder.count == 5
    assert builder.nbytes == sum(len(b"v%d" % i) + RECORD_OVERHEAD_BYTES for i in range(5))


def test_refusals_append_nothing(twin):
    builder_type, future_base = twin
    builder = builder_type(None, 100, 60, _future_type(future_base))
    assert builder.append_value(b"a" * 10)._index == 0
    assert builder.append_value(b"b" * 61) is None  # over max_record_bytes
    assert builder.append_value(bytearray(b"c")) is None  # not bytes: the general path checks it
    assert builder.append_value("text") is None
    assert builder.append_value(b"d" * 50) is None  # 31 + 71 would pass batch_size
    assert builder.append_value(b"d" * 48)._index == 1  # 31 + 69 = 100: exactly batch_size
    assert builder.append_value(b"e") is None  # no record fits any more
    assert builder.count == 2
    assert builder.nbytes == 100
    with pytest.raises(RuntimeError, match="sealed"):
        to_record_batch(builder)  # an open builder may still move its buffers
    builder.seal()
    assert builder.sealed
    assert to_record_batch(builder).column("value").to_pylist() == [b"a" * 10, b"d" * 48]
    assert builder_type(None).append_value(b"") is not None  # an empty value is a record
    alone = builder_type(None, 10, 60)
    assert alone.append_value(b"f" * 60) is not None  # a first record always fits: it goes alone
    assert alone.append_value(b"g") is None
    sealed = builder_type(None)
    sealed.seal()
    assert sealed.append_value(b"x") is None and sealed.count == 0
    with pytest.raises(RuntimeError, match="sealed"):
        sealed.append(b"x", None, 1, None)


def test_keyed_and_unkeyed_records_mix(twin):
    builder_type, future_base = twin
    builder = builder_type(None, 1 << 20, 1 << 20, _future_type(future_base))
    builder.append_value(b"v0")
    assert builder.append(b"v1", b"k1", 7, {"h": b"x"}) == 1
    assert builder.append_value(b"v2")._index == 2
    assert builder.append(b"v3", None, 9, None) == 3
    builder.seal()
    batch = to_record_batch(builder)
    assert batch.column("key").to_pylist() == [None, b"k1", None, None]
    assert batch.column("value").to_pylist() == [b"v0", b"v1", b"v2", b"v3"]
    assert batch.column("timestamp_ms").to_pylist()[1::2] == [7, 9]
    assert batch.column("headers").to_pylist() == [None, [("h", b"x")], None, None]


@pytest.mark.parametrize("had_keys", [False, True])
def test_an_append_that_fails_part_way_adds_nothing(twin, had_keys):
    """A record whose append raises after its value was already added (here a key that is not
    bytes; in use, a KeyboardInterrupt between two steps) is taken back whole: the next record
    gets its index and the buffers still line up."""
    builder_type, future_base = twin
    builder = builder_type(None, 1 << 20, 1 << 20, _future_type(future_base))
    builder.append_value(b"v0")
    builder.append(b"v1", b"k1" if had_keys else None, 7, {"h": b"x"})
    with pytest.raises(TypeError):
        builder.append(b"lost", 5, 8, {"h": b"y"})
    assert builder.count == 2
    headers = header_bytes({"h": b"x"})
    assert builder.nbytes == 2 * (2 + RECORD_OVERHEAD_BYTES) + (2 if had_keys else 0) + headers
    assert builder.append(b"v2", b"k2", 9, None) == 2
    assert builder.append_value(b"v3")._index == 3
    builder.seal()
    batch = to_record_batch(builder)
    assert batch.column("value").to_pylist() == [b"v0", b"v1", b"v2", b"v3"]
    assert batch.column("key").to_pylist() == [None, b"k1" if had_keys else None, b"k2", None]
    assert batch.column("timestamp_ms").to_pylist()[1:3] == [7, 9]
    assert batch.column("headers").to_pylist() == [None, [("h", b"x")], None, None]


def test_concurrent_appends_and_a_seal_lose_nothing(twin):
    """Four threads append while a fifth seals at some point: every accepted record is in
    the batch at its future's index, and nothing is accepted after the seal."""
    builder_type, future_base = twin
    builder = builder_type(None, 1 << 40, 1 << 20, _future_type(future_base))
    accepted: dict[int, bytes] = {}
    refused_after_seal = []
    start = threading.Barrier(5)

    def writer(n: int) -> None:
        start.wait()
        refused = False
        for i in range(20_000):
            value = b"%d-%d" % (n, i)
            future = builder.append_value(value)
            if future is None:
                refused = True
                continue
            assert not refused, "a record was accepted after one was refused (sealed)"
            accepted[future._index] = value
        refused_after_seal.append(refused)

    def sealer() -> None:
        start.wait()
        time.sleep(0.01)
        builder.seal()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    threads.append(threading.Thread(target=sealer))
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show up
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    values = to_record_batch(builder).column("value").to_pylist()
    assert len(values) == builder.count == len(accepted)
    assert values == [accepted[i] for i in range(len(values))]
    assert builder.append_value(b"late") is None


def test_future_type_must_carry_the_fields(twin):
    builder_type, _ = twin
    with pytest.raises(TypeError, match="RecordFutureBase"):
        builder_type(None, 1, 1, dict)
