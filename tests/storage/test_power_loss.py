"""Simulated power loss (raykafka/storage/faults.py): the layer itself, then property tests of
the storage engine under random appends, flushes, rolls, truncations, process crashes, clean
restarts and power losses. After every restart the log is a prefix of what was appended (exact
offsets and payloads), holds every record acknowledged as fsynced, and every offset below its
end is readable. Last, the power loss of another process, killed, from its journal. No Ray."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from storage_helpers import frames, payload_of

from raykafka.storage import LogConfig, PartitionLog, faults
from raykafka.storage.checkpoint import atomic_write, fsync_dir
from raykafka.storage.framing import HEADER_SIZE
from raykafka.storage.index import SegmentIndex
from tests.storage.power_loss_child import write as child_write


@pytest.fixture(autouse=True)
def no_faults_left():
    yield
    faults.clear()


def abandon(log: PartitionLog) -> None:
    """Stop the log as a dying process does: its threads stop, its files close, nothing more
    is written (no flush, no checkpoint, no clean-shutdown marker)."""
    log.destroy(remove_files=False)


def write_file(path, data: bytes, *, fsync: bool) -> None:
    fd = faults.open_file(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, data)
    if fsync:
        faults.fsync(fd, path)
    os.close(fd)


def append(log: PartitionLog, size: int, seed: int) -> int:
    return log.append(payload_of(size, seed), record_count=1, first_timestamp_ms=seed, max_timestamp_ms=seed)


# -- the layer ---------------------------------------------------------------------------------


def test_unsynced_bytes_and_entries_are_lost(tmp_path):
    faults.track_power_loss()
    write_file(tmp_path / "a", b"x" * 100, fsync=True)
    fsync_dir(str(tmp_path))  # a's name is durable now, with its 100 fsynced bytes
    fd = faults.open_file(tmp_path / "a", os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"y" * 50)  # never fsynced
    os.close(fd)
    write_file(tmp_path / "c", b"w" * 10, fsync=False)
    fsync_dir(str(tmp_path))  # c's name is durable, none of its bytes
    write_file(tmp_path / "b", b"z" * 10, fsync=True)  # fsynced, but its name never was

    lost = faults.simulate_power_loss(tmp_path)

    assert (tmp_path / "a").read_bytes() == b"x" * 100
    assert not (tmp_path / "b").exists()
    assert (tmp_path / "c").read_bytes() == b""
    assert lost == faults.PowerLoss(bytes_cut=50 + 10, entries_undone=1)
    assert faults.simulate_power_loss(tmp_path) == faults.PowerLoss(0, 0)  # what is left is on disk


def test_an_unsynced_rename_is_undone_and_the_replaced_file_comes_back(tmp_path):
    (tmp_path / "old").write_bytes(b"before tracking: on disk")
    faults.track_power_loss()
    index = SegmentIndex(0)
    index.add(0, 0, 5)
    index.write_files(str(tmp_path / "i.index"), str(tmp_path / "i.timeindex"))  # no fsync at all
    atomic_write(str(tmp_path / "old"), b"new")  # fsync, rename, fsync the directory
    write_file(tmp_path / "tmp", b"newer", fsync=True)
    faults.replace(tmp_path / "tmp", tmp_path / "old")  # its directory is never fsynced after

    faults.simulate_power_loss(tmp_path)

    assert (tmp_path / "old").read_bytes() == b"new"
    # The index files were renamed into place before that directory fsync, so their names are
    # durable, but none of their bytes were fsynced.
    assert sorted(os.listdir(tmp_path)) == ["i.index", "i.timeindex", "old"]
    assert (tmp_path / "i.index").read_bytes() == b""


def test_an_unsynced_unlink_is_undone(tmp_path):
    faults.track_power_loss()
    write_file(tmp_path / "kept", b"k" * 64, fsync=True)
    fsync_dir(str(tmp_path))
    faults.unlink(tmp_path / "kept")
    faults.simulate_power_loss(tmp_path)
    assert (tmp_path / "kept").read_bytes() == b"k" * 64


def test_a_cut_file_leaves_a_readers_memory_map_valid(tmp_path):
    faults.track_power_loss()
    log = PartitionLog(tmp_path / "p")
    append(log, 64, 0)
    log.flush()
    append(log, 64, 1)  # not fsynced: cut by the power loss
    held = log.read(0, 1 << 20)  # zero-copy slices of the segment's memory map
    before = frames(held)
    abandon(log)
    assert faults.simulate_power_loss(tmp_path).bytes_cut == HEADER_SIZE + 64
    assert frames(held) == before  # the old pages: no SIGBUS, same bytes
    log = PartitionLog(tmp_path / "p")
    assert frames(log.read(0, 1 << 20)) == before[:1]
    log.close()


def test_a_new_log_directory_survives_a_power_loss(tmp_path):
    """The log's directory entries (tmp_path/a, tmp_path/a/p) must be durable before anything
    in them is: an acknowledged flush is worth nothing if the directory holding it vanishes."""
    faults.track_power_loss()
    log = PartitionLog(tmp_path / "a" / "p")
    append(log, 64, 0)
    log.flush()
    abandon(log)
    faults.simulate_power_loss(tmp_path)
    log = PartitionLog(tmp_path / "a" / "p")
    assert log.log_end_offset == 1
    log.close()


# -- property tests ----------------------------------------------------------------------------

steps_st = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 50).map(lambda n: 8 * n), st.integers(1, 3)),
        st.tuples(st.just("append"), st.integers(0, 50).map(lambda n: 8 * n), st.integers(1, 3)),
        st.tuples(st.just("append"), st.integers(0, 50).map(lambda n: 8 * n), st.integers(1, 3)),
        st.tuples(st.just("flush")),
        st.tuples(st.just("sync_through"), st.floats(0, 1)),
        st.tuples(st.just("truncate"), st.floats(0, 1)),
        st.tuples(st.just("power loss")),
        st.tuples(st.just("power loss")),
        st.tuples(st.just("crash")),
        st.tuples(st.just("close")),
    ),
    min_size=1,
    max_size=40,
)
config_st = st.builds(
    LogConfig,
    segment_bytes=st.integers(150, 1500),
    index_interval_bytes=st.sampled_from([1, 100, 4096]),
)


class Model:
    """What was appended in the current history: (base offset, record count, payload)."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, int, bytes]] = []
        self.acked = 0  # every offset below was acknowledged as fsynced

    @property
    def end(self) -> int:
        return self.batches[-1][0] + self.batches[-1][1] if self.batches else 0

    def cut_to(self, end: int) -> None:
        """Keep the batches below ``end`` (a batch boundary)."""
        kept = [b for b in self.batches if b[0] + b[1] <= end]
        assert not kept or kept[-1][0] + kept[-1][1] == end, f"{end} is not a batch boundary"
        self.batches = kept
        self.acked = min(self.acked, end)


def check_log(log: PartitionLog, model: Model) -> None:
    """The log holds exactly the model's batches and every offset below its end is readable."""
    assert log.log_start_offset == 0
    got = []
    offset = 0
    while offset < log.log_end_offset:
        chunk = frames(log.read(offset, 700))
        assert chunk and chunk[0][0] == offset
        got.extend(chunk)
        offset = chunk[-1][0] + chunk[-1][1]
    assert got == model.batches
    for offset in range(log.log_end_offset):
        base, count, _ = frames(log.read(offset, 1))[0]
        assert base <= offset < base + count


def run_steps(root: str, config: LogConfig, steps: list[tuple]) -> None:
    """Run ``steps`` on a log in ``root``/log; a power loss hits everything under ``root``."""
    directory = os.path.join(root, "log")
    model = Model()
    log = PartitionLog(directory, config)
    for i, step in enumerate(steps):
        kind = step[0]
        if kind == "append":
            _, size, count = step
            payload = payload_of(size, i)
            base = log.append(payload, record_count=count, first_timestamp_ms=i, max_timestamp_ms=i)
            assert base == model.end
            model.batches.append((base, count, payload))
        elif kind == "flush":
            log.flush()
            model.acked = model.end
        elif kind == "sync_through":
            target = round(step[1] * model.end)
            log.sync_through(target)
            model.acked = max(model.acked, target)
        elif kind == "truncate":
            log.truncate_to(round(step[1] * model.end))
            model.cut_to(log.log_end_offset)
        elif kind == "power loss":
            abandon(log)
            faults.simulate_power_loss(root)
            log = PartitionLog(directory, config)
            end = log.log_end_offset
            assert model.acked <= end <= model.end, "an acknowledged flush was lost"
            model.cut_to(end)
            model.acked = end  # what survived a power loss is on disk
        else:  # a process crash (the page cache survives) or a clean restart: nothing is lost
            if kind == "crash":
                abandon(log)
            else:
                log.close()
            log = PartitionLog(directory, config)
            assert log.log_end_offset == model.end
        check_log(log, model)
    log.close()
    log = PartitionLog(directory, config)
    check_log(log, model)
    log.close()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=config_st, steps=steps_st)
def test_power_loss_keeps_a_prefix_with_every_fsynced_record(config, steps):
    with tempfile.TemporaryDirectory() as tmp:
        faults.track_power_loss()
        try:
            run_steps(tmp, config, steps)
        finally:
            faults.clear()


def test_a_flush_after_a_crash_makes_the_previous_process_s_segments_durable(tmp_path):
    """A roll's new segment is named durably by the next sync round; if the process dies first,
    the next process must still fsync the directory before it acknowledges a flush."""
    faults.track_power_loss()
    config = LogConfig(segment_bytes=200)
    log = PartitionLog(tmp_path / "p", config)
    log._recovery.close()  # the roll's background fsync never runs: the process dies first
    append(log, 64, 0)
    append(log, 64, 1)  # rolls: segment 1 is created, its name not yet durable
    assert log.segment_base_offsets == [0, 1]
    abandon(log)
    log = PartitionLog(tmp_path / "p", config)  # a process crash loses nothing
    assert log.log_end_offset == 2
    append(log, 8, 2)  # into segment 1, no roll
    assert log.segment_base_offsets == [0, 1]
    log.flush()  # acknowledges offsets 0-2 as on disk
    abandon(log)
    faults.simulate_power_loss(tmp_path)
    log = PartitionLog(tmp_path / "p", config)
    assert log.log_end_offset == 3
    log.close()


# -- another process's power loss, from its journal ------------------------------------------

CHILD = str(Path(__file__).with_name("power_loss_child.py"))


class Child:
    """A process with ``RAYKAFKA_TEST_FAULTS_DIR=faults_dir`` running the statements it is sent
    (tests/storage/power_loss_child.py), to be SIGKILLed as a partition actor's would be."""

    def __init__(self, faults_dir: Path) -> None:
        source = str(Path(faults.__file__).parents[2])  # the checkout: raykafka is imported from it
        path = os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "RAYKAFKA_TEST_FAULTS_DIR": str(faults_dir), "PYTHONPATH": path}
        self.process = subprocess.Popen(
            [sys.executable, CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )

    def do(self, statement: str) -> None:
        assert "\n" not in statement
        self.process.stdin.write(statement + "\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().rstrip("\n") == "ok", statement

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.process.stdin.close()
        self.process.stdout.close()


@pytest.fixture
def children():
    started: list[Child] = []

    def start(faults_dir: Path) -> Child:
        started.append(Child(faults_dir))
        return started[-1]

    yield start
    for child in started:
        if child.process.poll() is None:
            child.kill()


def file_script(seed: int, steps: int = 60) -> list[str]:
    """Random valid file operations under ``root`` (a name the script runs with): appends with
    and without fsync, truncating rewrites, directory fsyncs, renames (over existing files too),
    unlinks, hard links, new directories."""
    rng = random.Random(seed)
    dirs, files = [""], ["old"]  # paths relative to root; "old" exists before tracking
    script = []

    def at(rel: str) -> str:
        return f"os.path.join(root, {rel!r})"

    for i in range(steps):
        kind = rng.choice(["write"] * 3 + ["sync_dir"] * 2 + ["rename", "unlink", "link", "mkdir"])
        if kind in ("rename", "unlink", "link") and not files:
            kind = "write"
        if kind == "write":
            new = os.path.join(rng.choice(dirs), f"f{i}")
            rel = rng.choice(files) if files and rng.random() < 0.6 else new
            data = bytes([i]) * rng.randrange(1, 40)
            truncate = rng.random() < 0.15
            script.append(f"write({at(rel)}, {data!r}, fsync={rng.random() < 0.5}, truncate={truncate})")
            if rel not in files:
                files.append(rel)
        elif kind == "sync_dir":
            script.append(f"sync_dir({at(rng.choice(dirs))})")
        elif kind == "mkdir":
            rel = os.path.join(rng.choice(dirs[:3]), f"d{i}")
            script.append(f"faults.mkdir({at(rel)})")
            dirs.append(rel)
        elif kind == "unlink":
            rel = files.pop(rng.randrange(len(files)))
            script.append(f"faults.unlink({at(rel)})")
        else:
            src = rng.choice(files)
            new = os.path.join(rng.choice(dirs), f"n{i}")
            dst = rng.choice(files) if kind == "rename" and rng.random() < 0.5 else new
            if dst == src:
                continue
            if kind == "rename":
                script.append(f"faults.replace({at(src)}, {at(dst)})")
                files.remove(src)
            else:
                script.append(f"faults.link({at(src)}, {at(dst)})")
            if dst not in files:
                files.append(dst)
    return script


def tree(root: Path) -> dict[str, bytes | None]:
    """Every file's bytes and every directory (None) under ``root``, by relative path."""
    found = {}
    for directory, dirs, names in os.walk(root):
        for name in dirs:
            found[os.path.relpath(os.path.join(directory, name), root)] = None
        for name in names:
            path = os.path.join(directory, name)
            found[os.path.relpath(path, root)] = Path(path).read_bytes()
    return found


def test_a_killed_process_loses_by_its_journal_what_the_in_process_simulation_loses(tmp_path, children):
    """The same random file operations, run here (tracked in-process) and in a child process
    (journaled, then SIGKILLed), leave the same trees after the simulated power loss."""
    seeds = range(6)
    scripts = {seed: file_script(seed) for seed in seeds}
    for side in ("here", "there"):
        for seed in seeds:
            (tmp_path / side / str(seed)).mkdir(parents=True)
            (tmp_path / side / str(seed) / "old").write_bytes(b"before tracking")

    faults.track_power_loss()
    for seed in seeds:
        namespace = {"os": os, "faults": faults, "write": child_write, "sync_dir": fsync_dir}
        namespace["root"] = str(tmp_path / "here" / str(seed))
        for statement in scripts[seed]:
            exec(statement, namespace)
    here = {seed: faults.simulate_power_loss(tmp_path / "here" / str(seed)) for seed in seeds}

    faults_dir = tmp_path / "faults"
    faults_dir.mkdir()
    faults.track_power_loss_in(faults_dir, tmp_path / "there")
    child = children(faults_dir)
    for seed in seeds:
        child.do(f"root = {str(tmp_path / 'there' / str(seed))!r}")
        for statement in scripts[seed]:
            child.do(statement)
    child.kill()
    for seed in seeds:
        there = faults.simulate_power_loss_from_journal(faults_dir, tmp_path / "there" / str(seed))
        assert there == here[seed], seed
        assert tree(tmp_path / "there" / str(seed)) == tree(tmp_path / "here" / str(seed)), seed
    assert sum(lost.bytes_cut for lost in here.values()) > 0
    assert sum(lost.entries_undone for lost in here.values()) > 0


def test_a_killed_process_s_log_keeps_what_it_flushed_across_two_power_losses(tmp_path, children):
    faults_dir = tmp_path / "faults"
    faults_dir.mkdir()
    data = tmp_path / "data"
    faults.track_power_loss_in(faults_dir, data)
    start_log = (
        "from raykafka.storage import PartitionLog; from storage_helpers import payload_of; "
        f"log = PartitionLog({str(data / 'p')!r})"
    )

    def append_there(child: Child, seed: int) -> None:
        child.do(
            f"log.append(payload_of(64, {seed}), record_count=1, first_timestamp_ms=0, max_timestamp_ms=0)"
        )

    kept = []
    for rounds in range(2):
        child = children(faults_dir)
        child.do(start_log)
        for _ in range(3):
            append_there(child, len(kept))
            kept.append(payload_of(64, len(kept)))
        child.do("log.flush()")
        append_there(child, 99)  # never fsynced
        child.kill()
        lost = faults.simulate_power_loss_from_journal(faults_dir, data)
        assert lost.bytes_cut == HEADER_SIZE + 64, rounds
        log = PartitionLog(data / "p")
        assert frames(log.read(0, 1 << 20)) == [(i, 1, payload) for i, payload in enumerate(kept)]
        log.close()


def test_a_process_journals_only_under_the_prefixes_a_control_file_lists(tmp_path, children):
    faults_dir = tmp_path / "faults"
    faults_dir.mkdir()
    journal = faults_dir / faults.JOURNAL_FILE
    tracked, other = tmp_path / "tracked", tmp_path / "other"
    tracked.mkdir()
    other.mkdir()
    child = children(faults_dir)
    child.do(f"write({str(tracked / 'a')!r}, b'x', fsync=True)")
    assert not journal.exists()  # no control file: nothing recorded
    faults.track_power_loss_in(faults_dir, tracked)
    child.do(f"write({str(other / 'b')!r}, b'x', fsync=True); faults.unlink({str(other / 'b')!r})")
    assert not journal.exists()
    child.do(f"write({str(tracked / 'c')!r}, b'x', fsync=True); faults.unlink({str(tracked / 'a')!r})")
    events = [line.split(",")[0] for line in journal.read_text().splitlines()]
    assert events == ['["create"', '["synced"', '["unlink"']
    (faults_dir / faults.TRACK_POWER_LOSS_FILE).unlink()
    child.do(f"write({str(tracked / 'd')!r}, b'x', fsync=True)")
    assert len(journal.read_text().splitlines()) == 3
    child.kill()
    # c was created with no directory fsync since: gone; a's unlink is undone, with its bytes
    # (it existed before tracking: on disk as it was); d was never journaled: stays
    assert faults.simulate_power_loss_from_journal(faults_dir, tracked) == faults.PowerLoss(0, 2)
    assert tree(tracked) == {"a": b"x", "d": b"x"}
