#!/usr/bin/env python3
"""Per-job overhead on loopback: swarmcc->swarmccd vs distcc->distccd vs plain gcc.

Now a thin alias for the overhead section (wall overhead and client CPU per job) of the
benchmark suite, integration/bench (integration/bench_suite.py).
Usage: integration/bench_overhead.py [RUNS] [more integration/bench options]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_suite  # noqa: E402

if __name__ == "__main__":
    argv = ["--only", "overhead"]
    rest = sys.argv[1:]
    if rest and rest[0].isdigit():
        argv += ["--runs", rest.pop(0)]
    sys.exit(bench_suite.main(argv + rest))
