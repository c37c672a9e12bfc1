#!/usr/bin/env bash
# Quick start: builds swarmcc, then builds a small bundled C/C++ project through
# `swarmcc --run make`. With no host list configured, swarmcc starts an embedded
# swarmccd on loopback for the build, and the summary shows the jobs it compiled.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
swarmcc="$root/target/release/swarmcc"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$root/tests/fixtures/proj" "$work/proj"

echo "== swarmcc --run make   (tests/fixtures/proj: 4 C and 2 C++ sources)"
# An empty host list, so that a /etc/distcc/hosts left by a distcc package does not
# count: with no host, `swarmcc --run` serves the build with an embedded swarmccd.
DISTCC_HOSTS="" "$swarmcc" --run make -C "$work/proj" prog
echo "== the program runs:"
"$work/proj/prog"
