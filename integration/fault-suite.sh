#!/usr/bin/env bash
# Builds swarmcc and swarmccd, then runs the fault-injection suite
# (integration/fault_suite.py: a real C/C++ build through `swarmcc --run make` on a
# loopback farm while one host is killed, restarted, stalled, frozen, answers garbage,
# trickles, fills its disk or resets connections). Arguments go to the suite
# (e.g. --only kill9,reset, --keep). Needs python3, gcc, g++, make; the tmpfs scenarios
# need root (they print SKIPPED otherwise). Exit status: the suite's.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --bins --quiet
# The workload is lzo 2.10 from the lzo-sys crate, a dev-dependency: make sure its
# sources are on disk (a no-op when they are; works offline with a warm cache).
cargo fetch --quiet || echo "fault-suite: cargo fetch failed; the suite looks for lzo-sys itself" >&2
target_dir=$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
exec python3 integration/fault_suite.py --bin-dir "$target_dir/debug" "$@"
