"""ReplicaTracker: Kafka's ISR and high-watermark rules, driven deterministically (no Ray)."""

from __future__ import annotations

from raykafka.replication.isr import ReplicaTracker


def tracker(*, leader_end: int, high_watermark: int, epoch_start_offset: int, in_sync=("L",)):
    return ReplicaTracker(
        "L",
        ["S", "T"],
        in_sync,
        leader_end=leader_end,
        high_watermark=high_watermark,
        lag_time_max_ms=1_000,
        now_ms=0,
        epoch_start_offset=epoch_start_offset,
    )


def test_a_follower_below_the_epoch_start_is_not_admitted_against_a_stale_high_watermark():
    """KAFKA-7128: a new leader (log end 10, its epoch starts there) holds a stale high watermark
    of 5. A follower at 7 is past that HW but lacks 7..9, which the previous leader may have
    acknowledged: it must not join the ISR (it could be elected next)."""
    t = tracker(leader_end=10, high_watermark=5, epoch_start_offset=10)
    assert t.on_follower_ack("S", 7, 10, now_ms=1) is False
    assert t.isr == {"L"}
    assert t.high_watermark == 10  # alone in the ISR, the leader's whole log is the high watermark
    assert t.on_follower_ack("S", 10, 10, now_ms=2) is True
    assert t.isr == {"L", "S"}


def test_a_stuck_in_sync_follower_holds_the_high_watermark_and_a_short_one_still_waits():
    t = tracker(leader_end=10, high_watermark=5, epoch_start_offset=10, in_sync=("L", "S"))
    t.on_follower_ack("S", 6, 10, now_ms=1)
    assert t.high_watermark == 6  # S is in sync: the HW is the smallest log end among the ISR
    assert t.on_follower_ack("T", 8, 10, now_ms=1) is False  # past the HW, short of the epoch start
    assert t.isr == {"L", "S"}
    assert t.on_follower_ack("T", 10, 10, now_ms=2) is True
    assert t.isr == {"L", "S", "T"}
    assert t.high_watermark == 6


def test_in_a_running_epoch_a_follower_rejoins_at_the_high_watermark():
    t = tracker(leader_end=30, high_watermark=30, epoch_start_offset=10, in_sync=("L",))
    t.on_append(40)
    assert t.on_follower_ack("S", 29, 40, now_ms=1) is False
    assert t.on_follower_ack("S", 40, 40, now_ms=2) is True
    assert t.high_watermark == 40


def test_a_laggard_is_reported_after_lag_time_max_ms_and_removal_moves_the_high_watermark():
    t = tracker(leader_end=10, high_watermark=10, epoch_start_offset=0, in_sync=("L", "S"))
    t.on_follower_ack("S", 10, 10, now_ms=0)
    t.on_append(20)
    assert t.laggards(now_ms=500) == []
    assert t.laggards(now_ms=1_001) == ["S"]
    assert t.high_watermark == 10
    assert t.remove("S") is True
    assert t.high_watermark == 20
    assert t.remove("L") is False  # the leader never leaves its own ISR
