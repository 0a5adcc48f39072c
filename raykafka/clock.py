"""Wall-clock time in milliseconds: record timestamps, session timeouts, lag checks.

One definition for every module that stamps or compares times in ms (``time.time_ns``
keeps it integral, as Kafka's timestamps are).
"""

from __future__ import annotations

import time


def now_ms() -> int:
    return time.time_ns() // 1_000_000
