"""ReplicaTracker: a leader's view of its followers -- their log ends, the in-sync set, the high watermark.

Kafka's rules, in one place:

* A follower is *in sync* while it has caught up with the leader's log end
  within the last ``lag_time_max_ms`` (its ``last_caught_up_ms``). One that
  falls behind longer, or whose replication call fails, leaves the ISR -- but
  only once the TopicManager has recorded the smaller ISR (``remove``), so a
  replica that missed acknowledged records can never be elected leader.
* A follower joins (or rejoins) the ISR once its log end reaches both the high
  watermark and the start of the leader's current epoch (KAFKA-7128). A new
  leader's high watermark may be stale -- followers learn it a round late -- and
  records below the epoch start may have been acknowledged by the previous
  leader: admitting a follower that lacks them could make it electable.
* The high watermark is the smallest log end among the ISR (the leader
  included): every record below it is on every in-sync replica, so only those
  are visible to consumers and acknowledged to ``acks="all"``. It never moves
  backwards.
"""

from __future__ import annotations

from collections.abc import Iterable


class ReplicaTracker:
    def __init__(
        self,
        leader_id: str,
        follower_ids: Iterable[str],
        in_sync: Iterable[str],
        *,
        leader_end: int,
        high_watermark: int,
        lag_time_max_ms: int,
        now_ms: int,
        epoch_start_offset: int = 0,
    ):
        self.leader_id = leader_id
        self.epoch_start_offset = epoch_start_offset  # the leader's log end when its epoch began
        self.lag_time_max_ms = lag_time_max_ms
        self.follower_end: dict[str, int] = {f: -1 for f in follower_ids}  # -1: not heard from yet
        self.last_caught_up_ms: dict[str, int] = {f: now_ms for f in self.follower_end}
        self.isr: set[str] = {leader_id} | (set(in_sync) & set(self.follower_end))
        self.leader_end = leader_end
        self.high_watermark = high_watermark

    def on_append(self, leader_end: int) -> bool:
        """The leader's log grew; returns whether the high watermark moved."""
        self.leader_end = leader_end
        return self._advance()

    def on_follower_ack(
        self, follower: str, follower_end: int, leader_end_when_sent: int, now_ms: int
    ) -> bool:
        """A follower holds everything below ``follower_end``. Returns whether the ISR changed."""
        if follower not in self.follower_end:
            return False
        self.follower_end[follower] = follower_end
        if follower_end >= leader_end_when_sent:
            self.last_caught_up_ms[follower] = now_ms
        joined = (
            follower not in self.isr
            and follower_end >= self.high_watermark
            and follower_end >= self.epoch_start_offset
        )
        if joined:
            self.isr.add(follower)
        self._advance()
        return joined

    def remove(self, follower: str) -> bool:
        """Take a follower out of the ISR (after the TopicManager accepted it); returns whether it was in."""
        if follower in self.isr and follower != self.leader_id:
            self.isr.discard(follower)
            self._advance()
            return True
        return False

    def laggards(self, now_ms: int) -> list[str]:
        """In-sync followers that have not caught up for lag_time_max_ms (to be removed)."""
        return sorted(
            f
            for f in self.isr
            if f != self.leader_id
            and self.follower_end[f] < self.leader_end
            and now_ms - self.last_caught_up_ms[f] > self.lag_time_max_ms
        )

    def _advance(self) -> bool:
        ends = [self.leader_end] + [self.follower_end[f] for f in self.isr if f != self.leader_id]
        candidate = min(ends)
        if candidate > self.high_watermark:
            self.high_watermark = candidate
            return True
        return False

    def in_sync_count(self) -> int:
        return len(self.isr)
