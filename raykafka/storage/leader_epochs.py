"""LeaderEpochCache: which leader epoch began at which offset of a replica's log.

Kafka's ``leader-epoch-checkpoint`` (KIP-101): a follower that rejoins asks the
leader where its own last epoch ended in the leader's log and truncates there,
so a deposed leader drops exactly the records the new leader never had --
truncating to the high watermark instead can lose acknowledged records.

File ``leader-epoch.checkpoint`` (text, ASCII), replaced atomically::

    line 1: "raykafka-leader-epochs 1"
    then one line per epoch, ascending: "<epoch> <start_offset>"
"""

from __future__ import annotations

import os

from .checkpoint import atomic_write

LEADER_EPOCH_CHECKPOINT = "leader-epoch.checkpoint"
_HEADER = "raykafka-leader-epochs 1"


class LeaderEpochCache:
    def __init__(self, directory: str | os.PathLike):
        self.path = os.path.join(os.fspath(directory), LEADER_EPOCH_CHECKPOINT)
        self.entries: list[tuple[int, int]] = self._read()

    def _read(self) -> list[tuple[int, int]]:
        try:
            with open(self.path, "rb") as f:
                lines = f.read().decode("ascii").splitlines()
        except (OSError, UnicodeDecodeError):
            return []
        if not lines or lines[0] != _HEADER:
            return []
        entries = []
        for line in lines[1:]:
            parts = line.split()
            if len(parts) != 2 or not all(p.lstrip("-").isdigit() for p in parts):
                return []  # unreadable: treat as unknown, the follower then truncates conservatively
            entries.append((int(parts[0]), int(parts[1])))
        return entries

    def _write(self, entries: list[tuple[int, int]]) -> None:
        """Write ``entries``, then adopt them: a failed write (a disk fault) leaves memory as the
        file was, so an epoch is never used that a restart would not find."""
        body = "".join(f"{epoch} {start}\n" for epoch, start in entries)
        atomic_write(self.path, f"{_HEADER}\n{body}".encode())
        self.entries = entries

    @property
    def latest_epoch(self) -> int:
        return self.entries[-1][0] if self.entries else -1

    def assign(self, epoch: int, start_offset: int) -> None:
        """Record that ``epoch`` begins at ``start_offset`` (no-op if it is already the latest)."""
        if self.entries and epoch <= self.entries[-1][0]:
            return
        self._write([*self.entries, (epoch, start_offset)])

    def end_offset_for(self, epoch: int, log_end_offset: int) -> int:
        """Where ``epoch`` ended here: the start of the first later epoch, or the log end
        when ``epoch`` is this replica's latest. For an epoch older than every entry,
        the start of the first entry (nothing of it is known here)."""
        for later_epoch, start in self.entries:
            if later_epoch > epoch:
                return start
        return log_end_offset

    def truncate_from(self, offset: int) -> None:
        """The log was truncated at ``offset``: forget epochs that began at or after it."""
        kept = [(e, s) for e, s in self.entries if s < offset]
        if kept != self.entries:
            self._write(kept)
