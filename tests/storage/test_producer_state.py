"""Producer state (KIP-98): each idempotent producer's last batches, rebuilt from the frame
headers of the log on open, from a snapshot plus the frames after it, after a truncation, on a
follower from the leader's frames; idle producers expire (KIP-854); RKB1 frames written by
older versions are still read. No Ray."""

from __future__ import annotations

import os

import pytest
from storage_helpers import frames, payload_of, read_all

from raykafka.storage import HEADER_SIZE, LogConfig, PartitionLog, iter_frames
from raykafka.storage.framing import HEADER_SIZE_V1, MAGIC_V1, pack_header, unpack_header
from raykafka.storage.log import CLEAN_SHUTDOWN_FILE
from raykafka.storage.producer_state import (
    RETAINED_BATCHES,
    BatchMetadata,
    ProducerStateTable,
    list_snapshots,
    snapshot_path,
)

#: 4 batches of 64 payload bytes per segment.
FRAME = HEADER_SIZE + 64
CONFIG = LogConfig(segment_bytes=4 * FRAME)
A, B = 7, (1 << 63) - 1  # producer ids: small, and the largest 63-bit one


def append(log: PartitionLog, producer_id: int, sequence: int, records: int = 1, epoch: int = 0, **kw) -> int:
    return log.append(
        payload_of(64, sequence),
        record_count=records,
        first_timestamp_ms=0,
        max_timestamp_ms=0,
        producer_id=producer_id,
        producer_epoch=epoch,
        sequence=sequence,
        **kw,
    )


def state(log: PartitionLog) -> dict:
    """The table without its last-seen times: {producer id: (epoch, [batches])}."""
    table = log.producer_state
    return {
        pid: (table.entry(pid).epoch, list(table.entry(pid).batches.values())) for pid in table.producer_ids()
    }


def crash(log: PartitionLog) -> None:
    """Leave the log as a killed process does: files as they are, no close, no snapshot, no marker."""
    log._recovery.close()
    for seg in log._segments:
        seg.close()


def fill(log: PartitionLog, batches: int) -> None:
    """Batches of 2 records from producers A and B in turn, sequence numbers 0, 1, ... each."""
    for i in range(batches):
        append(log, (A, B)[i % 2], i // 2, records=2)


# -- the table ---------------------------------------------------------------------------------


def test_the_table_answers_retained_batches_and_starts_over_on_a_new_epoch():
    table = ProducerStateTable()
    for seq in range(RETAINED_BATCHES + 10):
        table.record(A, 0, seq, base_offset=3 * seq, record_count=3, append_time_ms=-1, now_ms=seq)
    assert table.last_sequence(A, 0) == RETAINED_BATCHES + 9
    assert table.find(A, 0, 9) is None  # older than the window
    assert table.find(A, 0, 10) == BatchMetadata(10, 30, 3, -1)
    assert table.find(A, 0, 10).next_offset == 33
    assert table.find(A, 1, 10) is None and table.last_sequence(A, 1) is None  # another epoch
    assert table.last_sequence(B, 0) is None and table.epoch(B) is None
    table.record(A, 1, 0, base_offset=1000, record_count=1, append_time_ms=55, now_ms=0)
    assert (table.epoch(A), table.last_sequence(A, 1), table.find(A, 1, 0)) == (1, 0, (0, 1000, 1, 55))
    assert table.last_sequence(A, 0) is None  # the new epoch replaced the old one's batches


def test_snapshot_bytes_round_trip_and_damage_is_refused():
    table = ProducerStateTable()
    table.record(A, 2, 5, base_offset=10, record_count=4, append_time_ms=-1, now_ms=111)
    table.record(A, 2, 6, base_offset=14, record_count=1, append_time_ms=-1, now_ms=112)
    table.record(B, 0, 0, base_offset=15, record_count=2, append_time_ms=99, now_ms=113)
    data = table.to_bytes(17)
    offset, copy = ProducerStateTable.from_bytes(data)
    assert offset == 17 and sorted(copy.producer_ids()) == [A, B]
    assert list(copy.entry(A).batches.values()) == list(table.entry(A).batches.values())
    assert (copy.entry(A).epoch, copy.entry(A).last_seen_ms, copy.entry(B).last_seen_ms) == (2, 112, 113)
    for bad in (data[:-1], data[:20], b"XXXX" + data[4:], data[:30] + bytes([data[30] ^ 1]) + data[31:]):
        with pytest.raises(ValueError):
            ProducerStateTable.from_bytes(bad)
    assert ProducerStateTable.from_bytes(ProducerStateTable().to_bytes(0))[1].producer_ids() == []


def test_idle_producers_expire():
    table = ProducerStateTable()
    table.record(A, 0, 0, base_offset=0, record_count=1, append_time_ms=-1, now_ms=1_000)
    table.record(B, 0, 0, base_offset=1, record_count=1, append_time_ms=-1, now_ms=5_000)
    assert table.expire(now_ms=10_999, expiration_ms=10_000) == 0
    assert table.expire(now_ms=11_000, expiration_ms=10_000) == 1
    assert table.producer_ids() == [B]
    table.record(B, 0, 1, base_offset=2, record_count=1, append_time_ms=-1, now_ms=20_000)  # seen again
    assert table.expire(now_ms=29_999, expiration_ms=10_000) == 0 and B in table


# -- the log -----------------------------------------------------------------------------------


def test_appends_record_producers_and_headers_carry_them(tmp_path):
    log = PartitionLog(tmp_path, CONFIG)
    assert append(log, A, 0, records=3) == 0
    assert log.append(payload_of(64, 9), record_count=1, first_timestamp_ms=0, max_timestamp_ms=0) == 3
    assert append(log, A, 1, records=2, attributes=1) == 4  # LogAppendTime: the answer holds it
    [(h0, _), (h1, _), _] = [hp for buf in log.read(0, 1 << 20) for hp in iter_frames(memoryview(buf))]
    assert (h0.producer_id, h0.producer_epoch, h0.sequence, h0.header_size) == (A, 0, 0, HEADER_SIZE)
    assert (h1.producer_id, h1.producer_epoch, h1.sequence) == (-1, -1, -1)  # no producer
    assert state(log) == {A: (0, [BatchMetadata(0, 0, 3, -1), BatchMetadata(1, 4, 2, 0)])}
    log.close()


def test_a_clean_close_leaves_a_snapshot_at_the_log_end_and_the_next_open_reads_no_frame(tmp_path):
    log = PartitionLog(tmp_path, CONFIG)
    fill(log, 10)
    before = state(log)
    log.close()
    assert list_snapshots(str(tmp_path))[-1] == 20
    log = PartitionLog(tmp_path, CONFIG)
    assert state(log) == before and log.producer_scanned_batches == 0
    log.close()


def test_after_a_crash_the_state_is_the_last_roll_snapshot_plus_the_active_segment(tmp_path):
    log = PartitionLog(tmp_path, CONFIG)
    fill(log, 10)  # segments at 0, 8, 16 (4 batches of 2 records each)
    assert log.segment_base_offsets == [0, 8, 16]
    assert list_snapshots(str(tmp_path)) == [8, 16]  # one per roll
    before = state(log)
    crash(log)
    log = PartitionLog(tmp_path, CONFIG)
    assert state(log) == before
    assert log.producer_scanned_batches == 2  # the active segment's frames, nothing older
    assert list_snapshots(str(tmp_path))[-1] == 20  # written on open: a next crash scans less
    log.close()


def test_without_snapshots_the_state_is_rebuilt_from_the_whole_log(tmp_path):
    log = PartitionLog(tmp_path, CONFIG)
    fill(log, 10)
    before = state(log)
    crash(log)
    for offset in list_snapshots(str(tmp_path)):
        os.unlink(snapshot_path(str(tmp_path), offset))
    log = PartitionLog(tmp_path, CONFIG)
    assert state(log) == before and log.producer_scanned_batches == 10
    log.close()


def test_a_damaged_snapshot_is_skipped_for_an_older_one(tmp_path):
    log = PartitionLog(tmp_path, CONFIG)
    fill(log, 10)
    before = state(log)
    crash(log)
    newest = snapshot_path(str(tmp_path), 16)
    with open(newest, "r+b") as f:
        f.seek(-1, os.SEEK_END)
        last = f.read(1)[0]
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last ^ 0xFF]))
    log = PartitionLog(tmp_path, CONFIG)
    assert state(log) == before and log.producer_scanned_batches == 6  # from the snapshot at 8
    assert 16 not in list_snapshots(str(tmp_path))
    log.close()


@pytest.mark.parametrize("reopen", [False, True])
def test_truncation_drops_the_state_of_the_batches_it_removes(tmp_path, reopen):
    log = PartitionLog(tmp_path, CONFIG)
    fill(log, 10)  # A: seqs 0-4 at offsets 0, 4, 8, 12, 16; B: 0-4 at 2, 6, 10, 14, 18
    kept = PartitionLog(tmp_path / "kept", CONFIG)
    fill(kept, 5)  # what the log holds below offset 10
    log.truncate_to(11)  # inside B's batch 10-11: the whole batch goes
    assert log.log_end_offset == 10
    assert list_snapshots(str(tmp_path)) == [8]  # the one at 16 described batches that are gone
    assert state(log) == state(kept)
    assert log.producer_state.last_sequence(A, 0) == 2 and log.producer_state.last_sequence(B, 0) == 1
    if reopen:
        crash(log)
        log = PartitionLog(tmp_path, CONFIG)
        assert state(log) == state(kept)
    assert append(log, B, 2, records=2) == 10  # B's batch 2 is stored again, in order
    assert log.producer_state.find(B, 0, 2) == BatchMetadata(2, 10, 2, -1)
    kept.close()
    log.close()


def test_truncation_below_every_snapshot_rescans_from_the_log_start(tmp_path):
    log = PartitionLog(tmp_path, CONFIG)
    fill(log, 10)
    log.truncate_to(4)
    assert list_snapshots(str(tmp_path)) == [] and log.log_end_offset == 4
    assert state(log) == {A: (0, [BatchMetadata(0, 0, 2, -1)]), B: (0, [BatchMetadata(0, 2, 2, -1)])}
    log.close()


def test_a_follower_builds_the_same_state_from_the_leaders_frames(tmp_path):
    leader = PartitionLog(tmp_path / "leader", CONFIG)
    fill(leader, 10)
    follower = PartitionLog(tmp_path / "follower", CONFIG)
    offset = 0
    while offset < leader.log_end_offset:
        for buf in leader.read(offset, 2 * FRAME):  # a few frames per replicate call
            follower.append_frames(buf)
        offset = follower.log_end_offset
    assert state(follower) == state(leader)
    assert list_snapshots(str(tmp_path / "follower")) == [8, 16]  # its own rolls snapshot too
    leader.close()
    follower.close()


def test_idle_producers_expire_by_the_logs_clock_and_config(tmp_path):
    now = [1_000]
    log = PartitionLog(tmp_path, LogConfig(producer_id_expiration_ms=10_000), clock_ms=lambda: now[0])
    append(log, A, 0)
    now[0] = 6_000
    append(log, B, 0)
    now[0] = 11_000
    assert log.expire_producers() == 1 and log.producer_state.producer_ids() == [B]
    log.close()
    now[0] = 15_999
    log = PartitionLog(tmp_path, LogConfig(producer_id_expiration_ms=10_000), clock_ms=lambda: now[0])
    assert log.expire_producers() == 0  # the snapshot kept B's last-seen time (6,000)
    now[0] = 16_000
    assert log.expire_producers() == 1 and len(log.producer_state) == 0
    log.close()


# -- frames of older versions ------------------------------------------------------------------


def write_rkb1_log(directory, batches: int) -> list[bytes]:
    """A log as raykafka wrote it before producer state: 48-byte RKB1 frames in one segment, a
    clean close (its marker), no snapshot. Returns the payloads."""
    os.makedirs(directory)
    payloads = [payload_of(64, 100 + i) for i in range(batches)]
    with open(os.path.join(directory, f"{0:020d}.log"), "wb") as f:
        for i, payload in enumerate(payloads):
            header = pack_header(
                payload,
                base_offset=i,
                record_count=1,
                first_timestamp_ms=i,
                max_timestamp_ms=i,
                magic=MAGIC_V1,
            )
            assert len(header) == HEADER_SIZE_V1 and unpack_header(header).header_size == HEADER_SIZE_V1
            f.write(header + payload)
    with open(os.path.join(directory, CLEAN_SHUTDOWN_FILE), "wb"):
        pass
    return payloads


@pytest.mark.parametrize("clean", [True, False])
def test_rkb1_frames_of_older_versions_are_read_and_new_ones_follow(tmp_path, clean):
    directory = tmp_path / "old"
    payloads = write_rkb1_log(directory, 5)
    if not clean:
        os.unlink(directory / CLEAN_SHUTDOWN_FILE)  # an older version that crashed: recovery scans them
    log = PartitionLog(directory, CONFIG)
    assert log.log_end_offset == 5 and log.recovery_truncated_bytes == 0
    assert len(log.producer_state) == 0
    assert log.producer_scanned_batches == (0 if clean else 5)  # a clean old log has no producers
    assert append(log, A, 0) == 5  # an RKB2 frame after the RKB1 ones
    got = read_all(log)
    assert [(base, count) for base, count, _ in got] == [(i, 1) for i in range(6)]
    assert [p for _, _, p in got[:5]] == payloads
    mixed = [h for buf in log.read(0, 1 << 20) for h, _ in iter_frames(memoryview(buf))]
    assert [h.header_size for h in mixed] == [HEADER_SIZE_V1] * 5 + [HEADER_SIZE]
    assert [h.producer_id for h in mixed] == [-1] * 5 + [A]
    crash(log)  # the RKB1 segment is scanned again, with CRCs, and kept whole
    log = PartitionLog(directory, CONFIG)
    assert log.log_end_offset == 6 and log.recovery_truncated_bytes == 0
    assert state(log) == {A: (0, [BatchMetadata(0, 5, 1, -1)])}
    assert frames(log.read(0, 1 << 20))[0][2] == payloads[0]
    log.close()
