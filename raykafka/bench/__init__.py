"""raykafka benchmark: single node (ratios to a no-op actor ceiling), consumer groups, replication.

Usage::

    python benchmarks/bench.py              # full: single node 1,000,000 msgs x 3 runs, groups, replication
    python benchmarks/bench.py --quick      # short version of every area
    python benchmarks/bench.py --skip replication,latency
    python -m raykafka.bench.replication    # replication alone (it needs its own multi-node Ray)
    raykafka bench [--quick]                # the same from the CLI: progress bars on stderr, tables on stdout

Areas (``raykafka.bench.single_node``, ``.groups``, ``.replication``; see each module):
single node and groups run in one Ray (a fresh local one unless ``--address``); replication
builds its own ``ray.cluster_utils.Cluster`` and so runs afterwards in a subprocess.

Not a test: it prints tables and exits 0; nothing asserts on the numbers.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time

AREAS = ("single", "groups", "replication")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench.py", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick", action="store_true", help="short runs of every area (< 2 min on an idle machine)"
    )
    p.add_argument("--messages", type=int, default=None, help="single node: messages per path and run")
    p.add_argument("--runs", type=int, default=3, help="single node: interleaved runs; medians are reported")
    p.add_argument("--in-flight", type=int, default=5, help="pipelined calls in flight for the ceiling")
    p.add_argument("--restart-mb", type=int, default=None, help="log size for the restart test (MB)")
    p.add_argument("--latency-messages", type=int, default=None)
    p.add_argument("--latency-rate", type=int, default=500, help="messages/s for the latency test")
    p.add_argument("--group-messages", type=int, default=None, help="groups: messages in the drained topic")
    p.add_argument("--group-runs", type=int, default=None, help="groups: interleaved runs per stream count")
    p.add_argument(
        "--skip",
        default="",
        help="comma-separated areas (single, groups, replication) or single-node paths "
        "(queue, latency, restart, memory) to skip",
    )
    p.add_argument(
        "--address", default=None, help="Ray to use for single node and groups (default: a local one)"
    )
    p.add_argument("--namespace", default=None, help="raykafka namespace (default: a fresh bench-* one)")
    return p


def main(argv=None) -> int:
    """``python benchmarks/bench.py``: plain progress lines on stderr, tables on stdout."""
    from raykafka.bench.report import PlainTracker

    opts = parser().parse_args(argv)
    return _run(opts, PlainTracker())


def cli_main(quick: bool, address: str | None = None, namespace: str | None = None) -> int:
    """``raykafka bench``: connects like the other CLI commands, rich progress bars on stderr."""
    from raykafka.bench.report import RichTracker
    from raykafka.cli.context import CliContext

    opts = parser().parse_args(["--quick"] if quick else [])
    opts.address, opts.namespace = address, namespace
    CliContext(address=address, namespace=namespace or "raykafka").connect()
    with RichTracker() as tracker:
        return _run(opts, tracker)


def _run(opts, tracker) -> int:
    from raykafka.bench import report

    opts.skip = {s.strip() for s in opts.skip.split(",") if s.strip()}
    begin = time.perf_counter()
    load_begin = os.getloadavg()[0]
    parts = []
    with tracker:
        if "single" not in opts.skip or "groups" not in opts.skip:
            parts += _in_this_ray(opts, tracker)
        if "replication" not in opts.skip:
            parts.append(_replication_subprocess(opts.quick, tracker))
    report.render(parts)
    load_end = os.getloadavg()[0]
    print(
        f"\ntotal wall time {time.perf_counter() - begin:.0f} s; load average (1 min) "
        f"{load_begin:.1f} at start, {load_end:.1f} at end on {os.cpu_count()} CPUs"
    )
    if max(load_begin, load_end) > (os.cpu_count() or 1):
        print(
            "WARNING: other processes were competing for the CPUs; absolute figures and latency are "
            "unreliable, ratios less so. Re-run on a quiet machine."
        )
    return 0


def _in_this_ray(opts, tracker) -> list[dict]:
    from raykafka.bench import groups, single_node
    from raykafka.bench.common import Session

    session = Session(opts.address, opts.namespace).start()
    parts = []
    try:
        ceiling = None
        if "single" not in opts.skip:
            parts.append(single_node.run(session, opts, tracker))
            ceiling = parts[-1]["ceiling_rate"]
        if "groups" not in opts.skip:
            parts.append(groups.run(session, opts, tracker, ceiling))
    finally:
        session.close()
    return parts


def _replication_subprocess(quick: bool, tracker) -> dict:
    """Run ``raykafka.bench.replication`` in its own process (its own Ray); relay its progress."""
    from raykafka.bench import replication, report

    with tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.Popen(replication.command(quick), stdout=subprocess.PIPE, stderr=err, text=True)
        other: list[str] = []
        result = report.relay(proc.stdout, tracker, other)
        code = proc.wait()
        if code != 0 or result is None:
            err.seek(0)
            tail = ("".join(other) + err.read())[-3000:]
            return {
                "title": "replication: FAILED",
                "load": [0.0, os.getloadavg()[0]],
                "notes": [f"python -m raykafka.bench.replication exited {code}:", tail],
            }
    return result
