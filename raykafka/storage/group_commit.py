"""Group commit: many threads wait for durability, one fsync round serves them all.

``sync_through(offset)`` may be called from any thread. If a round is already running,
the caller waits for it; when it ends, callers it did not cover elect one leader who
runs one new round covering everything written by then (so N concurrent callers cost
about two rounds, not N). The round itself -- which files to fsync -- is the log's
business: it is the ``sync_round`` callable, returning the offset it made durable.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class GroupCommit:
    def __init__(self, sync_round: Callable[[], int], synced_offset: int) -> None:
        self._sync_round = sync_round
        self._cond = threading.Condition()
        self._running = False
        self._synced_offset = synced_offset
        self._epoch = 0  # bumped by reset_to so a round started before a truncation can't overclaim

    @property
    def synced_offset(self) -> int:
        """Every offset below this is known to be on disk."""
        return self._synced_offset

    def sync_through(self, offset: int, log_end_offset: Callable[[], int]) -> None:
        """Block until every offset below ``offset`` (capped at the log end) is fsynced."""
        while True:
            with self._cond:
                while True:
                    if self._synced_offset >= min(offset, log_end_offset()):
                        return
                    if not self._running:
                        break
                    self._cond.wait()  # a round is running; it or the next one will cover us
                self._running = True
                epoch = self._epoch
            covered = None
            try:
                covered = self._sync_round()  # outside the lock: appends and waiters keep going
            finally:
                with self._cond:
                    self._running = False
                    if covered is not None and epoch == self._epoch:
                        self._synced_offset = max(self._synced_offset, covered)
                    self._cond.notify_all()

    def reset_to(self, offset: int) -> None:
        """The log was cut at ``offset``: forget durability claims above it."""
        with self._cond:
            self._epoch += 1
            self._synced_offset = min(self._synced_offset, offset)
            self._cond.notify_all()
