"""``python -m raykafka.chaos``: a seeded chaos run on a local multi-node cluster, then its verdict.

Exit status 0 when every invariant held, 1 when one broke (the seed is printed either way:
``--seed`` with it replays the same fault schedule), 2 when the run itself failed.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import traceback
from pathlib import Path

from raykafka.chaos.schedule import FAULT_KINDS

#: Short mode (CI): every fault kind once (the schedule deals each kind once per round).
SHORT = {"cycles": len(FAULT_KINDS), "partitions": 2, "pause_s": (0.5, 1.5), "rate_per_s": 30.0}
#: Long mode: >= 100 cycles.
LONG = {"cycles": 108, "partitions": 3, "pause_s": (1.0, 4.0), "rate_per_s": 40.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m raykafka.chaos", description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--short", action="store_true", help=f"{SHORT['cycles']} cycles (the default)")
    mode.add_argument("--long", action="store_true", help=f"{LONG['cycles']} cycles")
    parser.add_argument("--seed", type=int, default=None, help="the schedule's seed (default: random)")
    parser.add_argument("--cycles", type=int, default=None, help="override the mode's cycle count")
    parser.add_argument("--kinds", default=None, help=f"comma-separated subset of {','.join(FAULT_KINDS)}")
    parser.add_argument("--out", type=Path, default=None, help="write the history as JSON here")
    parser.add_argument("--report", type=Path, default=None, help="write the report's text here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (data, logs)")
    parser.add_argument(
        "--check", type=Path, default=None, metavar="HISTORY", help="check a history written by --out; no run"
    )
    return parser.parse_args(argv)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    from raykafka.chaos.driver import ChaosConfig, run

    args = parse_args(argv)
    if args.check is not None:
        from raykafka.chaos.checker import check
        from raykafka.chaos.history import History

        report = check(History.read(args.check))
        print(report.render())
        return 0 if report.ok else 1
    mode = LONG if args.long else SHORT
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    kinds = tuple(k.strip() for k in args.kinds.split(",")) if args.kinds else FAULT_KINDS
    config = ChaosConfig(
        seed=seed,
        cycles=args.cycles if args.cycles is not None else mode["cycles"],
        partitions=mode["partitions"],
        pause_s=mode["pause_s"],
        rate_per_s=mode["rate_per_s"],
        kinds=kinds,
        out=args.out,
        keep_dir=args.keep,
    )
    # A SIGTERM (a test's timeout) unwinds like Ctrl-C, so the cluster is shut down on the way out.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        _history, report = run(config)
    except BaseException as exc:
        traceback.print_exc()
        print(f"chaos run failed (seed {seed}): {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    text = report.render()
    print(text)
    if args.report is not None:
        args.report.write_text(text + "\n")
    if not report.ok:
        print(f"INVARIANTS VIOLATED -- replay with: python -m raykafka.chaos --seed {seed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
