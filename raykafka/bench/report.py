"""The report (tables on stdout) and the progress shown while the benchmark runs (stderr).

Each area (single node, groups, replication) returns a *part*: a JSON-serializable dict
``{"title", "header", "load": [start, end], "rows": [...], "timings": [...], "notes": [...]}``;
``render`` prints the parts. A throughput row is ``{"label", "rate", "ratio", "target", "ok",
"runs"}`` (msgs/s, ratio to the part's reference, target text, "yes"/"NO"/"", seconds of
each run); a timing row is ``{"label", "samples", "target", "ok"}`` (seconds).

Progress: ``tracker.task(description, total)`` returns an object with ``advance(n)``. The
CLI uses ``RichTracker`` (bars on stderr), the script ``PlainTracker`` (one stderr line per
finished task), the replication subprocess ``EventTracker`` (JSON lines its parent relays).
"""

from __future__ import annotations

import json
import os
import sys
import time

from raykafka.bench.common import MESSAGE_BYTES, median

#: Prefix of the lines a benchmark subprocess writes for its parent (progress and the result).
EVENT_PREFIX = "@@raykafka-bench "


# -- progress ---------------------------------------------------------------------------------


class _Task:
    def __init__(self, tracker, key, description: str, total: int):
        self.tracker, self.key, self.description, self.total = tracker, key, description, total
        self.completed = 0
        self.started = time.perf_counter()

    def advance(self, n: int = 1) -> None:
        self.completed += n
        self.tracker._advance(self, n)

    def finish(self) -> None:
        if self.completed < self.total:
            self.advance(self.total - self.completed)


class PlainTracker:
    """No bars: one line on stderr when a task completes."""

    def task(self, description: str, total: int) -> _Task:
        return _Task(self, None, description, max(1, total))

    def _advance(self, task: _Task, n: int) -> None:
        if task.completed >= task.total and task.completed - n < task.total:
            print(
                f"  {task.description}: done in {time.perf_counter() - task.started:.1f} s", file=sys.stderr
            )

    def log(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


class RichTracker(PlainTracker):
    """rich progress bars on stderr, one per task."""

    def __init__(self):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("{task.description:<44}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            refresh_per_second=4,
        )

    def task(self, description: str, total: int) -> _Task:
        key = self.progress.add_task(description, total=max(1, total))
        return _Task(self, key, description, max(1, total))

    def _advance(self, task: _Task, n: int) -> None:
        self.progress.advance(task.key, n)

    def log(self, text: str) -> None:
        self.progress.console.print(text, markup=False, highlight=False)

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()


class EventTracker(PlainTracker):
    """For a subprocess: progress as JSON lines on stdout, relayed by ``relay`` in the parent."""

    def __init__(self):
        self._next = 0

    def task(self, description: str, total: int) -> _Task:
        self._next += 1
        emit({"task": self._next, "description": description, "total": max(1, total)})
        return _Task(self, self._next, description, max(1, total))

    def _advance(self, task: _Task, n: int) -> None:
        emit({"advance": task.key, "n": n})

    def log(self, text: str) -> None:
        emit({"log": text})


def emit(event: dict) -> None:
    sys.stdout.write(EVENT_PREFIX + json.dumps(event) + "\n")
    sys.stdout.flush()


def relay(lines, tracker, other: list[str] | None = None) -> dict | None:
    """Feed a subprocess's stdout lines to ``tracker``; returns its ``result`` event (None if none).
    Lines that are not events (messages Ray pushes to drivers) are kept in ``other``."""
    tasks: dict[int, _Task] = {}
    result = None
    for line in lines:
        if not line.startswith(EVENT_PREFIX):
            if other is not None:
                other.append(line)
            continue
        event = json.loads(line[len(EVENT_PREFIX) :])
        if "task" in event:
            tasks[event["task"]] = tracker.task(event["description"], event["total"])
        elif "advance" in event:
            tasks[event["advance"]].advance(event["n"])
        elif "log" in event:
            tracker.log(event["log"])
        elif "result" in event:
            result = event["result"]
    return result


# -- tables -----------------------------------------------------------------------------------


def throughput_row(
    label: str,
    n_messages: int,
    runs_s: list[float],
    reference_rate: float | None,
    target: float | None = None,
    must_beat: float | None = None,
) -> dict:
    """A row from the seconds each run took for ``n_messages``; ok when ratio >= target
    (and rate > ``must_beat`` msgs/s, when given)."""
    rate = n_messages / median(runs_s)
    ratio = rate / reference_rate if reference_rate else None
    ok = ""
    if target is not None and ratio is not None:
        ok = "yes" if ratio >= target and (must_beat is None or rate > must_beat) else "NO"
    return {
        "label": label,
        "rate": rate,
        "ratio": ratio,
        "target": f">={target}" if target is not None else "",
        "ok": ok,
        "runs": [round(x, 3) for x in runs_s],
    }


def timing_row(label: str, samples_s: list[float], target_s: float | None = None) -> dict:
    ok = ""
    if target_s is not None and samples_s:
        ok = "yes" if max(samples_s) <= target_s else "NO"
    return {
        "label": label,
        "samples": [round(x, 3) for x in samples_s],
        "target": f"<={target_s:g} s" if target_s is not None else "",
        "ok": ok,
    }


def render(parts: list[dict], out=None) -> None:
    out = out or sys.stdout
    for part in parts:
        load = part.get("load") or [0.0, 0.0]
        print(f"\n## {part['title']}", file=out)
        print(
            f"load average (1 min) {load[0]:.1f} at start, {load[1]:.1f} at end, on {os.cpu_count()} CPUs"
            + (
                "  -- NOISY: other processes competed for the CPUs"
                if max(load) > (os.cpu_count() or 1)
                else ""
            ),
            file=out,
        )
        if part.get("header"):
            print(part["header"], file=out)
        if part.get("rows"):
            print(file=out)
            _throughput_table(part["rows"], part.get("reference", "x ceiling"), out)
        if part.get("timings"):
            print(file=out)
            _timing_table(part["timings"], out)
        for note in part.get("notes", []):
            print(note, file=out)


def _throughput_table(rows: list[dict], reference: str, out) -> None:
    header = (
        f"| {'path':<44} | {'msgs/s':>11} | {'MB/s':>7} | {reference:>10} | {'target':>7} | {'ok':^4} "
        f"| runs (s)"
    )
    print(header, file=out)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|---", file=out)
    for r in rows:
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "-"
        runs = ", ".join(f"{x:.2f}" for x in r["runs"])
        print(
            f"| {r['label']:<44} | {r['rate']:>11,.0f} | {r['rate'] * MESSAGE_BYTES / 1e6:>7.1f} "
            f"| {ratio:>10} | {r['target']:>7} | {r['ok']:^4} | {runs}",
            file=out,
        )


def _timing_table(rows: list[dict], out) -> None:
    header = f"| {'timing':<44} | {'median s':>8} | {'worst s':>7} | {'target':>8} | {'ok':^4} | samples (s)"
    print(header, file=out)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|---", file=out)
    for r in rows:
        s = r["samples"]
        med = f"{median(s):.2f}" if s else "-"
        worst = f"{max(s):.2f}" if s else "-"
        print(
            f"| {r['label']:<44} | {med:>8} | {worst:>7} | {r['target']:>8} | {r['ok']:^4} | "
            + ", ".join(f"{x:.2f}" for x in s),
            file=out,
        )
