#!/usr/bin/env bash
# Creates or updates a masquerade folder: links named like the compilers on this
# machine (cc, gcc, g++, x86_64-linux-gnu-gcc-12, clang-15…), all pointing at swarmcc.
# Put the folder first on PATH and every compiler call is distributed (and falls back
# locally when needed). The same folder can serve as swarmccd's compiler whitelist
# (--whitelist-dir DIR).
#
#   shims/install-shims.sh [DIR] [SWARMCC]
#
# DIR defaults to /usr/lib/swarmcc/bin as root, else ~/.local/lib/swarmcc/bin.
# SWARMCC defaults to the swarmcc found on PATH. The work is done by
# `swarmcc --install-shims DIR` (see README, "Install"); this script only finds swarmcc.
set -euo pipefail

swarmcc="${2:-$(command -v swarmcc || true)}"
if [ -z "$swarmcc" ] || [ ! -x "$swarmcc" ]; then
    echo "install-shims: swarmcc not found; pass its path as the second argument" >&2
    exit 1
fi
if [ -n "${1:-}" ]; then
    exec "$swarmcc" --install-shims "$1"
else
    exec "$swarmcc" --install-shims
fi
