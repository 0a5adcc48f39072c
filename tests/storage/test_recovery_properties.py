"""Property tests: whatever happens to the bytes, a log never returns wrong data.

(a) a torn active segment and (b) a flipped byte in it reopen as a clean prefix of what
was appended, and appends continue after it; (c) a flipped byte in a sealed segment below
the recovery point is never returned (reads raise CorruptBatch instead), unless it breaks
the chain of headers, when recovery cuts the log at it.
"""

from __future__ import annotations

import os
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from storage_helpers import payload_of

from raykafka.storage import CorruptBatch, LogConfig, PartitionLog, iter_frames, unpack_header
from raykafka.storage.log import CLEAN_SHUTDOWN_FILE

appends_st = st.lists(
    st.tuples(st.integers(0, 64).map(lambda n: 8 * n), st.integers(1, 5)),  # (payload bytes, record count)
    min_size=1,
    max_size=25,
)
config_st = st.builds(
    LogConfig,
    segment_bytes=st.integers(100, 3000),
    index_interval_bytes=st.sampled_from([1, 64, 500, 4096]),
)
SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


def build(directory: str, config: LogConfig, appends: list[tuple[int, int]]) -> list[bytes]:
    """Append and return every frame's bytes (header + payload) in order. The log is left as a
    crash leaves it (no clean-shutdown marker: damage happens to logs that were not closed)."""
    log = PartitionLog(directory, config)
    for i, (size, count) in enumerate(appends):
        log.append(payload_of(size, i), record_count=count, first_timestamp_ms=i, max_timestamp_ms=i)
    frames = []
    for buf in log.read(0, 1 << 30):
        view = memoryview(buf)
        pos = 0
        for header, _ in iter_frames(view):
            frames.append(bytes(view[pos : pos + header.frame_length]))
            pos += header.frame_length
    assert len(frames) == len(appends)
    log.close()
    os.unlink(os.path.join(directory, CLEAN_SHUTDOWN_FILE))
    return frames


def segment_layout(frames: list[bytes], base_offsets: list[int]) -> dict[int, list[tuple[int, int]]]:
    """For each segment base offset: [(frame index, byte position)] of the frames in it."""
    layout: dict[int, list[tuple[int, int]]] = {b: [] for b in base_offsets}
    for i, frame in enumerate(frames):
        base = unpack_header(frame).base_offset
        seg = max(b for b in base_offsets if b <= base)
        pos = sum(len(frames[j]) for j, _ in layout[seg])
        layout[seg].append((i, pos))
    return layout


def read_frames(log: PartitionLog) -> list[bytes]:
    out = []
    offset = log.log_start_offset
    while offset < log.log_end_offset:
        got = []
        for buf in log.read(offset, 700):
            view = memoryview(buf)
            pos = 0
            for header, _ in iter_frames(view):
                got.append(bytes(view[pos : pos + header.frame_length]))
                pos += header.frame_length
        assert got
        for frame in got:
            assert unpack_header(frame).base_offset == offset  # contiguous
            offset = unpack_header(frame).next_offset
        out.extend(got)
    return out


def check_clean_prefix(
    directory: str,
    config: LogConfig,
    frames: list[bytes],
    kept: int,
    file_bytes: int,
    *,
    may_heal: bool = False,
) -> None:
    """Reopen; the log must be ``frames[:kept]`` exactly (or longer when ``may_heal``: zero padding
    after a torn header can recreate the original bytes of a frame whose fields were zero)."""
    log = PartitionLog(directory, config)
    got = read_frames(log)
    if may_heal and len(got) > kept:
        kept = len(got)
    assert got == frames[:kept]
    active_base = int(sorted(n for n in os.listdir(directory) if n.endswith(".log"))[-1][:20])
    kept_in_active = sum(len(f) for f in frames[:kept] if unpack_header(f).base_offset >= active_base)
    assert log.recovery_truncated_bytes == file_bytes - kept_in_active
    expected_end = unpack_header(frames[kept - 1]).next_offset if kept else 0
    assert log.log_end_offset == expected_end
    assert (
        log.append(payload_of(16, 999), record_count=2, first_timestamp_ms=0, max_timestamp_ms=0)
        == expected_end
    )
    got = read_frames(log)
    assert got[:-1] == frames[:kept] and len(got) == kept + 1
    log.close()
    reopened = PartitionLog(directory, config)
    assert reopened.recovery_truncated_bytes == 0 and read_frames(reopened) == got
    reopened.close()


@SETTINGS
@given(config=config_st, appends=appends_st, data=st.data())
def test_torn_active_segment_reopens_as_clean_prefix(config, appends, data):
    with tempfile.TemporaryDirectory() as tmp:
        frames = build(tmp, config, appends)
        bases = sorted(int(n[:20]) for n in os.listdir(tmp) if n.endswith(".log"))
        layout = segment_layout(frames, bases)
        active = layout[bases[-1]]
        size = sum(len(frames[i]) for i, _ in active)
        cut = data.draw(st.integers(0, size), label="cut at byte")
        path = os.path.join(tmp, f"{bases[-1]:020d}.log")
        os.truncate(path, cut)
        extra = data.draw(st.sampled_from([b"", b"\0" * 100, b"garbage!"]), label="trailing junk")
        with open(path, "ab") as f:
            f.write(extra)
        whole = [i for i, pos in active if pos + len(frames[i]) <= cut]
        kept = whole[-1] + 1 if whole else (active[0][0] if active else len(frames))
        check_clean_prefix(tmp, config, frames, kept, cut + len(extra), may_heal=extra.startswith(b"\0"))


@SETTINGS
@given(config=config_st, appends=appends_st, data=st.data())
def test_flipped_byte_in_active_segment_reopens_as_clean_prefix(config, appends, data):
    with tempfile.TemporaryDirectory() as tmp:
        frames = build(tmp, config, appends)
        bases = sorted(int(n[:20]) for n in os.listdir(tmp) if n.endswith(".log"))
        active = segment_layout(frames, bases)[bases[-1]]
        size = sum(len(frames[i]) for i, _ in active)
        if size == 0:
            return
        at = data.draw(st.integers(0, size - 1), label="flip byte")
        bit = data.draw(st.integers(0, 7), label="bit")
        path = os.path.join(tmp, f"{bases[-1]:020d}.log")
        with open(path, "r+b") as f:
            f.seek(at)
            byte = f.read(1)[0]
            f.seek(at)
            f.write(bytes([byte ^ (1 << bit)]))
        hit = next(i for i, pos in active if pos <= at < pos + len(frames[i]))
        check_clean_prefix(tmp, config, frames, hit, size)


@SETTINGS
@given(config=config_st, appends=appends_st, data=st.data())
def test_flipped_byte_in_sealed_segment_is_never_returned(config, appends, data):
    with tempfile.TemporaryDirectory() as tmp:
        frames = build(tmp, config, appends)
        bases = sorted(int(n[:20]) for n in os.listdir(tmp) if n.endswith(".log"))
        if len(bases) < 2:
            return
        layout = segment_layout(frames, bases)
        seg = data.draw(st.sampled_from(bases[:-1]), label="sealed segment")
        size = sum(len(frames[i]) for i, _ in layout[seg])
        at = data.draw(st.integers(0, size - 1), label="flip byte")
        with open(os.path.join(tmp, f"{seg:020d}.log"), "r+b") as f:
            f.seek(at)
            byte = f.read(1)[0]
            f.seek(at)
            f.write(bytes([byte ^ 0x10]))
        hit = next(i for i, pos in layout[seg] if pos <= at < pos + len(frames[i]))
        bad = unpack_header(frames[hit])

        log = PartitionLog(tmp, config)
        if log.recovery_truncated_bytes:
            # The flip broke the chain of headers, so the segment no longer reaches the next
            # one: recovery cut the log at the damaged batch (no read may land in a hole).
            assert read_frames(log) == frames[:hit]
            log.close()
            return
        assert log.log_end_offset == unpack_header(frames[-1]).next_offset
        by_base = {unpack_header(f).base_offset: f for f in frames}
        for offset in range(log.log_end_offset):
            max_bytes = data.draw(st.sampled_from([1, 300, 1 << 20]), label="max_bytes")
            in_damaged_segment = seg <= offset < unpack_header(frames[layout[seg][-1][0]]).next_offset
            try:
                bufs = log.read(offset, max_bytes)
            except CorruptBatch:
                assert in_damaged_segment, "damage in one segment must not break reads starting elsewhere"
                continue
            assert not (bad.base_offset <= offset < bad.next_offset), "read the corrupted batch"
            got = []
            for buf in bufs:
                view = memoryview(buf)
                pos = 0
                for header, _ in iter_frames(view):
                    got.append(bytes(view[pos : pos + header.frame_length]))
                    pos += header.frame_length
            assert got
            first = unpack_header(got[0])
            assert first.base_offset <= offset < first.next_offset
            for frame in got:
                assert frame == by_base[unpack_header(frame).base_offset]  # never wrong data
        log.close()
