"""LogConfig: the per-log knobs (Kafka's topic-level segment/retention/flush configs)."""

from __future__ import annotations

from dataclasses import dataclass

_WEEK_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class LogConfig:
    """Roll, retention, flush and index settings of one partition log.

    ``-1`` means "no limit" for the retention settings; ``None`` for the flush settings
    means "never forced": acknowledged data sits in the page cache (Kafka's default),
    durable against a process crash but not against losing the machine.
    """

    #: Roll the active segment before an append would make it larger than this.
    segment_bytes: int = 1 << 30
    #: Roll the active segment once its first append is older than this.
    segment_ms: int = _WEEK_MS
    #: Delete sealed segments whose newest record is older than this (-1 = forever).
    retention_ms: int = _WEEK_MS
    #: Delete oldest sealed segments while the log stays at least this big (-1 = unlimited).
    retention_bytes: int = -1
    #: flush_due() once this many messages are not yet fsynced (None = never).
    flush_messages: int | None = None
    #: flush_due() once this long has passed since the last fsync with data pending (None = never).
    flush_ms: int | None = None
    #: Add a sparse index entry every this many bytes of log.
    index_interval_bytes: int = 4096
    #: Forget an idempotent producer none of whose batches was stored for this long (KIP-854).
    producer_id_expiration_ms: int = 86_400_000

    def __post_init__(self) -> None:
        if self.segment_bytes < 1:
            raise ValueError(f"segment_bytes must be >= 1, got {self.segment_bytes}")
        if self.segment_ms < 1:
            raise ValueError(f"segment_ms must be >= 1, got {self.segment_ms}")
        if self.retention_ms < -1 or self.retention_bytes < -1:
            raise ValueError("retention_ms / retention_bytes must be >= 0 or -1 (unlimited)")
        if self.flush_messages is not None and self.flush_messages < 1:
            raise ValueError(f"flush_messages must be >= 1 or None, got {self.flush_messages}")
        if self.flush_ms is not None and self.flush_ms < 0:
            raise ValueError(f"flush_ms must be >= 0 or None, got {self.flush_ms}")
        if self.index_interval_bytes < 1:
            raise ValueError(f"index_interval_bytes must be >= 1, got {self.index_interval_bytes}")
        if self.producer_id_expiration_ms < 1:
            raise ValueError(f"producer_id_expiration_ms must be >= 1, got {self.producer_id_expiration_ms}")
