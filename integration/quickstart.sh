#!/usr/bin/env bash
# Quick start: builds swarmcc, starts a swarmccd on loopback, and compiles a small
# bundled C/C++ project through it, showing that the objects came back from the server.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
bin="$root/target/release"

work="$(mktemp -d)"
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$bin/swarmccd" --no-detach --listen 127.0.0.1 --port "$port" --allow 127.0.0.1 \
    --log-file "$work/swarmccd.log" --log-level info &
server_pid=$!
for _ in $(seq 100); do
    (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
    sleep 0.05
done

cp -r "$root/tests/fixtures/proj" "$work/proj"
echo "== building tests/fixtures/proj with CC=\"swarmcc gcc\" via swarmccd on 127.0.0.1:$port"
DISTCC_HOSTS="127.0.0.1:$port/4,lzo" DISTCC_DIR="$work/distcc" DISTCC_FALLBACK=0 \
    make -C "$work/proj" -j4 CC="$bin/swarmcc gcc" CXX="$bin/swarmcc g++"
echo "== the program runs:"
"$work/proj/prog"
echo "== swarmccd compiled these jobs (its log):"
grep -E 'COMPILE_OK|COMPILE_ERROR' "$work/swarmccd.log" | sed 's/^/   /'
n="$(grep -c COMPILE_OK "$work/swarmccd.log" || true)"
echo "== $n objects came back from swarmccd"
