#!/usr/bin/env bash
# Creates a masquerade folder: links named like the compilers on this machine, all
# pointing at swarmcc. Put the folder first on PATH and every `gcc`/`cc`/`g++`… call is
# distributed (and falls back locally when needed).
#
#   shims/install-shims.sh [DIR] [SWARMCC]
#
# DIR defaults to /usr/lib/swarmcc/bin as root, else ~/.local/lib/swarmcc/bin.
# SWARMCC defaults to the swarmcc found on PATH. The same folder can serve as
# swarmccd's compiler whitelist (--whitelist-dir DIR).
set -euo pipefail

if [ "$(id -u)" = 0 ]; then default=/usr/lib/swarmcc/bin; else default="$HOME/.local/lib/swarmcc/bin"; fi
dir="${1:-$default}"
swarmcc="${2:-$(command -v swarmcc || true)}"
if [ -z "$swarmcc" ] || [ ! -x "$swarmcc" ]; then
    echo "install-shims: swarmcc not found; pass its path as the second argument" >&2
    exit 1
fi
swarmcc="$(readlink -f "$swarmcc")"
mkdir -p "$dir"

names=(cc c++ c89 c99 gcc g++ c89-gcc c99-gcc clang clang++)
# Target-prefixed and versioned compilers, as update-distcc-symlinks finds them.
for f in /usr/bin/*-gcc /usr/bin/*-g++ /usr/bin/gcc-[0-9]* /usr/bin/g++-[0-9]* \
         /usr/bin/*-gcc-[0-9]* /usr/bin/*-g++-[0-9]* /usr/bin/clang-[0-9]* /usr/bin/clang++-[0-9]*; do
    [ -x "$f" ] || continue
    base="$(basename "$f")"
    case "$base" in *-ar|*-nm|*-ranlib|*gcc-ar*|*gcc-nm*|*gcc-ranlib*) continue ;; esac
    names+=("$base")
done

made=0
for n in "${names[@]}"; do
    # Only names that exist as a real compiler here: a shim for a missing compiler
    # would turn "command not found" into a confusing swarmcc error.
    command -v "$n" >/dev/null 2>&1 || [ -x "/usr/bin/$n" ] || continue
    ln -sfn "$swarmcc" "$dir/$n"
    made=$((made + 1))
done
echo "install-shims: $made links in $dir -> $swarmcc"
echo "use: export PATH=\"$dir:\$PATH\""
