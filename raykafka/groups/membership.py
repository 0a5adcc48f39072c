"""GroupState: one consumer group's members and assignment, as a pure state machine.

The coordinator actor is a thin shell around this class; all the rules live
here and are unit-tested without Ray. The protocol is Kafka's new consumer
protocol (KIP-848) in spirit:

* The coordinator computes each member's *target* assignment itself (with the
  group's assignor) whenever membership, subscriptions or partition counts
  change; each such change bumps the group ``generation``, and a member whose
  target changed gets that generation as its ``epoch``.
* Every heartbeat answer is numbered and tells the member exactly which
  partitions it may read (``assigned``): its target minus whatever another
  member may still be reading. The member applies the latest answer -- commits
  and stops reading partitions not in it, starts the new ones -- and reports
  what it reads together with the number of the answer it applied. Until that
  report arrives, everything granted by later answers still counts as read by
  it, so a partition is never handed to two members, even when answers and
  reports cross. Partitions that do not move are never paused (cooperative
  rebalancing).
* Reports may also arrive out of order (Ray does not order calls to an async
  actor, and a heartbeat that timed out at the member is still delivered).
  Answer numbers are therefore unique in the group and only grow, also across
  a member's removal and rejoin and -- seeded from the clock -- across
  coordinator restarts: a report of an answer older than one already reported
  is ignored, and one from before the member's current membership only adds
  claims nobody else holds (as a rejoin does), never withdraws any.
* A coordinator that restarted knows nobody: members rejoin claiming what they
  still read. Until the group's session timeout has passed since the restart
  (``recover``), a member is granted only what it claims itself -- a partition
  nobody claimed may still be read by a member that has not rejoined yet (it
  fences itself within its session timeout if it cannot).
* A member silent for its session timeout is removed (its partitions become
  free at once: it is presumed dead), and its commits are refused from then on.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from raykafka.errors import InvalidConfig, StaleGeneration
from raykafka.groups.assignors import STRATEGIES, assign
from raykafka.types import TopicPartition


class UnknownMember(Exception):
    """The member is not (or no longer) in the group: rejoin."""


@dataclass
class Member:
    member_id: str
    node_id: str | None
    topics: frozenset[str]
    session_timeout_ms: int
    last_seen_ms: int
    owned: set[TopicPartition] = field(default_factory=set)  # as last reported
    target: set[TopicPartition] = field(default_factory=set)
    epoch: int = 0
    join_seq: int = 0  # number of the first answer of this membership
    acked_seq: int = 0  # newest answer the member reported applying
    # answer number -> what it granted, until the member reports applying it (or a later one)
    unacked: dict[int, frozenset[TopicPartition]] = field(default_factory=dict)

    def reading(self) -> set[TopicPartition]:
        """Everything this member may be reading right now, as far as the coordinator can tell."""
        out = set(self.owned)
        for granted in self.unacked.values():
            out |= granted
        return out


@dataclass(frozen=True)
class HeartbeatAnswer:
    """Answer ``seq`` to a member: read exactly ``assigned`` (stop reading anything else);
    ``pending`` partitions of its target still wait for another member to let go."""

    seq: int
    generation: int
    epoch: int
    assigned: frozenset[TopicPartition]
    pending: int


class GroupState:
    def __init__(self, group_id: str, first_seq: int = 0):
        """``first_seq``: answers are numbered from ``first_seq + 1``. A coordinator that may
        restart passes a clock reading, so numbers keep growing across its incarnations."""
        self.group_id = group_id
        self.members: dict[str, Member] = {}
        self.generation = 0
        self.rebalance_pending = False  # a join was recorded with rebalance=False
        self.strategy: str | None = None
        self.partition_counts: dict[str, int] = {}
        self.last_seq = first_seq  # of the newest answer to any member
        self.recovering_since_ms: int | None = None  # see recover()

    def recover(self, now_ms: int) -> None:
        """This state replaces one that was lost (the coordinator restarted): members unknown to it
        may still read partitions, so until the session timeout has passed only claims are granted."""
        self.recovering_since_ms = now_ms

    def _recovering(self, now_ms: int) -> bool:
        if self.recovering_since_ms is None:
            return False
        hold_ms = max((m.session_timeout_ms for m in self.members.values()), default=0)
        if now_ms - self.recovering_since_ms > hold_ms:
            self.recovering_since_ms = None
            return False
        return True

    # -- membership ------------------------------------------------------------

    def join(
        self,
        member_id: str,
        topics: Iterable[str],
        node_id: str | None,
        owned: Collection[TopicPartition],
        session_timeout_ms: int,
        strategy: str,
        now_ms: int,
        rebalance: bool = True,
    ) -> HeartbeatAnswer:
        """Add (or re-add, after a coordinator restart) a member; rebalances -- or, with
        ``rebalance=False``, leaves ``rebalance_pending`` set so that joins arriving together
        are settled by one later ``rebalance()``."""
        if strategy not in STRATEGIES:
            raise InvalidConfig(
                f"partition_assignment_strategy must be one of {STRATEGIES}, got {strategy!r}"
            )
        if self.members and self.strategy not in (None, strategy):
            raise InvalidConfig(
                f"group {self.group_id!r} uses partition_assignment_strategy={self.strategy!r}; "
                f"a member cannot join with {strategy!r}"
            )
        self.strategy = strategy
        existing = self.members.get(member_id)
        member = Member(member_id, node_id, frozenset(topics), session_timeout_ms, now_ms)
        if existing is not None:
            member.owned, member.target, member.epoch = existing.owned, existing.target, existing.epoch
            member.join_seq, member.acked_seq = existing.join_seq, existing.acked_seq
            member.unacked = existing.unacked
        else:
            # A rejoining member (the coordinator restarted) keeps what it still owns,
            # unless another member claimed it first.
            taken = self._owned_by_others(member_id)
            member.owned = {tp for tp in owned if tp not in taken}
            member.target = set(member.owned)
            member.join_seq, member.acked_seq = self.last_seq + 1, self.last_seq
            # What it still reads stays with it: no one else reads it (that was checked), so no
            # one else's target should keep it either (the assignor keeps targets sticky).
            for other in self.members.values():
                other.target -= member.owned
        self.members[member_id] = member
        if rebalance:
            self.rebalance()
        else:
            self.rebalance_pending = True
        return self._answer(member, now_ms)

    def leave(self, member_id: str) -> bool:
        if self.members.pop(member_id, None) is None:
            return False
        self.rebalance()
        return True

    def expire(self, now_ms: int) -> list[str]:
        """Remove members silent for longer than their session timeout; returns their ids."""
        gone = [m.member_id for m in self.members.values() if now_ms - m.last_seen_ms > m.session_timeout_ms]
        for member_id in gone:
            del self.members[member_id]
        if gone:
            self.rebalance()
        return gone

    def heartbeat(
        self, member_id: str, owned: Collection[TopicPartition], applied_seq: int, now_ms: int
    ) -> HeartbeatAnswer:
        """``owned``: what the member reads after applying answer ``applied_seq`` (0: none of
        its current membership yet)."""
        member = self.members.get(member_id)
        if member is None:
            raise UnknownMember(member_id)
        member.last_seen_ms = now_ms
        if applied_seq < member.join_seq:
            # From before this membership (a late report of an earlier one, or sent right after
            # a rejoin): it may show partitions the member still reads, so keep those nobody
            # else holds -- as join does -- but it cannot tell what the member let go of.
            taken = self._owned_by_others(member_id)
            member.owned |= {tp for tp in owned if tp not in taken}
        elif applied_seq > member.acked_seq:
            member.owned = set(owned)
            member.acked_seq = applied_seq
            for seq in [s for s in member.unacked if s <= applied_seq]:
                del member.unacked[seq]
        elif applied_seq == member.acked_seq:
            # Between two answers a member only drops partitions (when it fences itself), so it
            # reads no more than any report of this answer showed, whatever order they came in.
            member.owned &= set(owned)
        # else: a report of an older answer arriving late -- what it shows is out of date.
        return self._answer(member, now_ms)

    def set_partition_counts(self, counts: Mapping[str, int]) -> bool:
        """Record topic sizes; rebalances when they changed."""
        counts = dict(counts)
        if counts == self.partition_counts:
            return False
        self.partition_counts = counts
        self.rebalance()
        return True

    def subscribed_topics(self) -> set[str]:
        return {t for m in self.members.values() for t in m.topics}

    # -- assignment ------------------------------------------------------------

    def rebalance(self) -> None:
        self.rebalance_pending = False
        self.generation += 1
        if not self.members:
            self.strategy = None
            return
        targets = assign(
            self.strategy or "cooperative-sticky",
            {m.member_id: m.topics for m in self.members.values()},
            self.partition_counts,
            {m.member_id: m.target for m in self.members.values()},
        )
        for member in self.members.values():
            new = set(targets.get(member.member_id, ()))
            if new != member.target:
                member.target = new
                member.epoch = self.generation

    def _owned_by_others(self, member_id: str) -> set[TopicPartition]:
        return {tp for m in self.members.values() if m.member_id != member_id for tp in m.reading()}

    def _answer(self, member: Member, now_ms: int) -> HeartbeatAnswer:
        taken = self._owned_by_others(member.member_id)
        assigned = frozenset(tp for tp in member.target if tp not in taken)
        if self._recovering(now_ms):
            assigned &= member.reading()  # only its own claims, for now
        self.last_seq += 1
        member.unacked[self.last_seq] = assigned
        return HeartbeatAnswer(
            seq=self.last_seq,
            generation=self.generation,
            epoch=member.epoch,
            assigned=assigned,
            pending=len(member.target) - len(assigned),
        )

    def state(self) -> str:
        """Kafka's group states: Empty, Stable, or PreparingRebalance while owners move."""
        if not self.members:
            return "Empty"
        if all(m.reading() == m.target for m in self.members.values()):
            return "Stable"
        return "PreparingRebalance"

    def owner(self, tp: TopicPartition) -> str | None:
        for member in self.members.values():
            if tp in member.reading():
                return member.member_id
        return None

    # -- commits ---------------------------------------------------------------

    def check_commit(self, member_id: str | None, tps: Iterable[TopicPartition]) -> None:
        """Refuse commits from removed members, or for partitions the committer does not own."""
        if member_id is None:  # a consumer using assign() with a group_id: allowed where no member reads
            for tp in tps:
                owner = self.owner(tp)
                if owner is not None:
                    raise StaleGeneration(
                        f"{tp.topic}-{tp.partition} is owned by member {owner} of group {self.group_id!r}; "
                        f"a consumer outside the group's membership cannot commit it"
                    )
            return
        member = self.members.get(member_id)
        if member is None:
            raise StaleGeneration(
                f"member {member_id} is no longer in group {self.group_id!r} (session timeout or left); "
                f"its partitions were reassigned, so the commit was refused. Rejoin and read again"
            )
        reading = member.reading()
        for tp in tps:
            if tp not in reading:
                raise StaleGeneration(
                    f"{tp.topic}-{tp.partition} was moved away from member {member_id} in generation "
                    f"{self.generation} of group {self.group_id!r}; the commit was refused"
                )
