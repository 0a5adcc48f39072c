"""raykafka's storage engine: partition logs as segment files on a local disk.

Pure Python + pyarrow; it must never import ray (it knows files, not actors).

Modules, bottom up (docs/FORMAT.md documents every byte they write):

* :mod:`.framing` -- the 64-byte self-validating batch header (magic, CRC32C, offsets,
  timestamps, producer id, epoch and sequence; the 48-byte headers of older versions are
  still read) and frame iteration. A frame is header + payload, identical on disk and on
  the wire.
* :mod:`.records` -- ``RECORD_SCHEMA`` and the payload encoding: one Arrow IPC
  record-batch message per frame.
* :mod:`.errors` -- ``StorageError``, ``LogOffsetOutOfRange``, ``StorageFull``, ``LogDirFailed``.
* :mod:`.faults` -- test-only fault injection (disk errors on fsync, write and open) and
  simulated power loss; off and free by default.
* :mod:`.config` -- ``LogConfig``: roll, retention, flush and index settings.
* :mod:`.index` -- the sparse offset + time index of one segment, in memory and as the
  ``.index`` / ``.timeindex`` files.
* :mod:`.segment` -- one ``.log`` file: appends (writev), memory maps handing out zero-copy
  slices, recovery scan, truncation.
* :mod:`.checkpoint` -- atomic durable small files and the log-start-offset checkpoint.
* :mod:`.group_commit` -- one fsync round shared by every thread waiting for durability.
* :mod:`.producer_state` -- ``ProducerStateTable``: each idempotent producer's last
  batches, rebuilt from the log, and its snapshot files.
* :mod:`.log` -- ``PartitionLog``: the segment list and the policies (roll, read,
  timestamp lookup, delete_records, retention, truncation, recovery, flush, producer state).
"""

from .config import LogConfig
from .errors import LogDirFailed, LogOffsetOutOfRange, StorageError, StorageFull
from .framing import (
    ATTR_LOG_APPEND_TIME,
    HEADER_SIZE,
    MAGIC,
    NO_PRODUCER,
    BatchHeader,
    CorruptBatch,
    frame_crc_ok,
    iter_frames,
    pack_header,
    unpack_header,
)
from .log import PartitionLog
from .records import (
    CONSUMER_SCHEMA,
    HEADERS_TYPE,
    RECORD_SCHEMA,
    InvalidRecordBatch,
    decode_record_batch,
    encode_record_batch,
)

__all__ = [
    "ATTR_LOG_APPEND_TIME",
    "CONSUMER_SCHEMA",
    "HEADERS_TYPE",
    "HEADER_SIZE",
    "MAGIC",
    "NO_PRODUCER",
    "RECORD_SCHEMA",
    "BatchHeader",
    "CorruptBatch",
    "InvalidRecordBatch",
    "LogConfig",
    "LogDirFailed",
    "LogOffsetOutOfRange",
    "PartitionLog",
    "StorageError",
    "StorageFull",
    "decode_record_batch",
    "encode_record_batch",
    "frame_crc_ok",
    "iter_frames",
    "pack_header",
    "unpack_header",
]
