"""raykafka benchmark -- the paper's workload; the code is the ``raykafka.bench`` package.

Usage::

    python benchmarks/bench.py              # full: single node (1,000,000 msgs per path, 3 runs,
                                            # 1 GB restart), consumer groups, replication
    python benchmarks/bench.py --quick      # short version of every area (< 2 min on an idle machine)
    python benchmarks/bench.py --messages 500000 --runs 5 --restart-mb 500 --skip queue,latency,replication
    python benchmarks/bench.py --false-failover [--duration-s 300]   # a mode of its own: leader
                                            # changes of a fault-free RF 3 cluster under load

``raykafka bench [--quick]`` runs the same from the installed CLI. See docs/PERFORMANCE.md.
"""

import sys

from raykafka.bench import main

if __name__ == "__main__":
    if "--false-failover" in sys.argv[1:]:  # its own cluster and options: not an area of the full run
        from raykafka.bench import false_failover

        sys.exit(false_failover.main([a for a in sys.argv[1:] if a != "--false-failover"]))
    sys.exit(main())
