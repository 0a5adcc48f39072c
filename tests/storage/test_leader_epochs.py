"""LeaderEpochCache: epoch -> start offset, the basis of a rejoining follower's truncation (KIP-101)."""

from __future__ import annotations

from raykafka.storage.leader_epochs import LEADER_EPOCH_CHECKPOINT, LeaderEpochCache


def test_end_offsets_follow_the_epoch_starts(tmp_path):
    cache = LeaderEpochCache(tmp_path)
    assert cache.latest_epoch == -1
    cache.assign(0, 0)
    cache.assign(2, 40)
    cache.assign(1, 20)  # older than the latest: ignored
    cache.assign(5, 90)
    assert cache.entries == [(0, 0), (2, 40), (5, 90)]
    # where each epoch ended in this log: the start of the next one; the latest ends at the log end
    assert cache.end_offset_for(0, log_end_offset=120) == 40
    assert cache.end_offset_for(1, log_end_offset=120) == 40  # never led here: ends where 2 began
    assert cache.end_offset_for(2, log_end_offset=120) == 90
    assert cache.end_offset_for(5, log_end_offset=120) == 120
    assert cache.end_offset_for(-1, log_end_offset=120) == 0


def test_survives_reopen_and_truncation(tmp_path):
    cache = LeaderEpochCache(tmp_path)
    for epoch, start in [(0, 0), (3, 10), (4, 25)]:
        cache.assign(epoch, start)
    assert LeaderEpochCache(tmp_path).entries == [(0, 0), (3, 10), (4, 25)]
    cache.truncate_from(25)  # the log was cut at 25: epoch 4 began there, so it goes
    assert LeaderEpochCache(tmp_path).entries == [(0, 0), (3, 10)]
    cache.truncate_from(11)
    assert LeaderEpochCache(tmp_path).entries == [(0, 0), (3, 10)]


def test_unreadable_file_counts_as_empty(tmp_path):
    (tmp_path / LEADER_EPOCH_CHECKPOINT).write_text("raykafka-leader-epochs 1\n3 x\n")
    assert LeaderEpochCache(tmp_path).entries == []
    (tmp_path / LEADER_EPOCH_CHECKPOINT).write_bytes(b"\xff\xfe garbage")
    assert LeaderEpochCache(tmp_path).entries == []
