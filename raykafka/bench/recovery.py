"""Storage recovery: how long ``PartitionLog`` takes to open a large log after a clean and an
unclean stop. No Ray: the storage engine alone, in this process.

    python -m raykafka.bench.recovery [--mb 1100] [--batch-kb 1024] [--segment-mb 1024] [--runs 3]
                                      [--cold] [--dir DIR]

Builds a log of ``--mb`` MB (batches of ``--batch-kb`` KiB, 1 GiB segments by default, so 1.1 GB
is two segments: a full sealed one and an active one of ~26 MB), then reopens it, ``--runs``
times each way, interleaved:

* clean     -- after ``close()`` (the clean-shutdown marker): nothing is scanned;
* unclean   -- after a crash (``destroy(remove_files=False)``: no marker) with the recovery
  point checkpointed at the log end: the active segment is CRC-scanned;
* no recovery point -- a crash before any roll's fsync had checkpointed it: every segment is
  CRC-scanned (the worst case).

With ``--cold`` each segment file's pages are dropped from the page cache before every open
(``posix_fadvise(DONTNEED)`` on those files only), as after a power loss; otherwise the scan
reads the page cache. Prints the median open time of each, the segments scanned, and the
ratio of the clean open to each unclean one. Not a test: nothing asserts on the numbers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time

from raykafka.storage import LogConfig, PartitionLog
from raykafka.storage.checkpoint import RECOVERY_POINT_CHECKPOINT


def build(directory: str, megabytes: int, batch_bytes: int, config: LogConfig) -> int:
    """A log of ``megabytes`` MB of ``batch_bytes`` frames, closed cleanly; returns its log end."""
    log = PartitionLog(directory, config)
    payload = os.urandom(batch_bytes - 64)  # about a frame: the header is 48 or 64 bytes
    while log.size_bytes < megabytes * 1_000_000:
        log.append(payload, record_count=1000, first_timestamp_ms=0, max_timestamp_ms=0)
    end = log.log_end_offset
    log.close()
    return end


def drop_page_cache(directory: str) -> None:
    for name in os.listdir(directory):
        if name.endswith(".log"):
            fd = os.open(os.path.join(directory, name), os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def timed_open(directory: str, config: LogConfig, end: int, cold: bool) -> tuple[float, PartitionLog]:
    if cold:
        drop_page_cache(directory)
    started = time.perf_counter()
    log = PartitionLog(directory, config)
    seconds = time.perf_counter() - started
    assert log.log_end_offset == end, (log.log_end_offset, end)
    return seconds, log


def run(directory: str, config: LogConfig, end: int, runs: int, cold: bool) -> dict[str, list]:
    results: dict[str, list] = {"clean": [], "unclean": [], "no recovery point": []}
    for _ in range(runs):
        seconds, log = timed_open(directory, config, end, cold)  # the build or the last run closed it
        results["clean"].append((seconds, log.recovery_scanned_segments))
        log.destroy(remove_files=False)  # a crash: no clean-shutdown marker
        seconds, log = timed_open(directory, config, end, cold)
        results["unclean"].append((seconds, log.recovery_scanned_segments))
        log.destroy(remove_files=False)
        os.unlink(os.path.join(directory, RECOVERY_POINT_CHECKPOINT))
        seconds, log = timed_open(directory, config, end, cold)
        results["no recovery point"].append((seconds, log.recovery_scanned_segments))
        log.close()  # clean again, with the recovery point at the log end
    return results


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m raykafka.bench.recovery", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--mb", type=int, default=1100, help="log size in MB (default 1100)")
    p.add_argument("--batch-kb", type=int, default=1024, help="batch (frame) size in KiB (default 1024)")
    p.add_argument("--segment-mb", type=int, default=1024, help="segment size in MiB (default 1024)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument(
        "--cold", action="store_true", help="drop the segments' pages from the cache before each open"
    )
    p.add_argument("--dir", default=None, help="where to build the log (default: a temporary directory)")
    opts = p.parse_args(argv)
    config = LogConfig(segment_bytes=opts.segment_mb << 20)
    parent = tempfile.mkdtemp(prefix="raykafka-recovery-bench-", dir=opts.dir)
    directory = os.path.join(parent, "log")
    try:
        started = time.perf_counter()
        end = build(directory, opts.mb, opts.batch_kb << 10, config)
        size = sum(
            os.path.getsize(os.path.join(directory, n)) for n in os.listdir(directory) if n.endswith(".log")
        )
        segments = sum(n.endswith(".log") for n in os.listdir(directory))
        print(
            f"log: {size / 1e9:.2f} GB in {segments} segments of {opts.batch_kb} KiB batches, {end} offsets "
            f"(built in {time.perf_counter() - started:.1f} s); {opts.runs} runs, "
            f"{'cold' if opts.cold else 'warm'} page cache, load average {os.getloadavg()[0]:.1f}"
        )
        results = run(directory, config, end, opts.runs, opts.cold)
        clean = statistics.median(s for s, _ in results["clean"])
        print(f"{'open after':<20} {'median s':>9} {'runs (s)':<28} {'scanned':>7} {'clean/this':>10}")
        for name, rows in results.items():
            median = statistics.median(s for s, _ in rows)
            each = ", ".join(f"{s:.3f}" for s, _ in rows)
            print(f"{name:<20} {median:>9.3f} {each:<28} {rows[0][1]:>7} {clean / median:>10.3f}")
        print(f"load average at the end {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(parent, ignore_errors=True)


if __name__ == "__main__":
    main()
