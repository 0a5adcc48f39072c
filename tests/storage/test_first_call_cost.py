"""The data path pays no one-time import on its first record.

``pa.array`` and ``Array.to_numpy`` import pandas on their first call in a process
(~250 ms here), and a ``pyarrow.compute`` kernel's first call costs ~200 ms: a new
partition actor's first append and a new consumer's first fetch paid both, which showed as
a 200-500 ms stall at the start of every latency run. The append, read and fetch paths now
build and inspect arrays from buffers; this runs them in a fresh interpreter and checks
that pandas was never imported.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys, tempfile
    import pyarrow as pa
    from raykafka.api.batching import normalize_table, to_record_batch
    from raykafka.api.record_builder import RecordBuilder
    from raykafka.api.fetch import decode_fetch
    from raykafka.storage import LogConfig, PartitionLog
    from raykafka.storage.records import (
        RECORD_OVERHEAD_BYTES, decode_record_batch, encode_record_batch, max_timestamp_ms, record_sizes,
    )

    builder = RecordBuilder()
    builder.append_value(b"first")
    builder.append(b"second", b"key", 1_700_000_000_001, None)
    builder.seal()
    payload = encode_record_batch(to_record_batch(builder))
    batch = decode_record_batch(payload)
    assert record_sizes(batch).max() == len(b"second") + len(b"key") + RECORD_OVERHEAD_BYTES
    assert max_timestamp_ms(batch) == max(builder.timestamps)  # the first one is stamped now
    log = PartitionLog(tempfile.mkdtemp(), LogConfig())
    log.append(payload, record_count=2, first_timestamp_ms=1_700_000_000_000,
               max_timestamp_ms=1_700_000_000_001)
    (out,) = decode_fetch("t", 0, log.read(0, 1 << 20), 0)
    assert out.column("offset").to_pylist() == [0, 1]
    assert out.column("value").to_pylist() == [b"first", b"second"]
    assert out.column("partition").to_pylist() == [0, 0]
    assert normalize_table(pa.RecordBatch.from_arrays([batch.column(1)], names=["value"])).num_rows == 2
    print("pandas" in sys.modules)
    """
)


def test_append_read_and_fetch_import_no_pandas():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False", "the data path imported pandas (a ~250 ms first-call stall)"
