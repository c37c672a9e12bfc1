#!/usr/bin/env bash
# Installs swarmcc from this source checkout in one step:
#   1. builds and installs the binaries (cargo install --path . --root PREFIX);
#   2. `swarmcc --install PREFIX`: masquerade links, man pages, shell completions
#      (and with --distcc-names: PREFIX/bin/distcc, PREFIX/bin/distccd, and as root the
#      distcc masquerade folder), recorded for `swarmcc --uninstall PREFIX`;
#   3. with --service: the swarmccd service (systemd unit + /etc/default/swarmccd, or
#      OpenRC script + /etc/conf.d/swarmccd), pointing at PREFIX/bin/swarmccd. Existing
#      option files are never overwritten; the service is not started.
#
#   shims/install.sh [--prefix DIR] [--distcc-names] [--service] [--no-build]
#
# PREFIX defaults to /usr/local as root, else ~/.local. --no-build uses the binaries
# already in PREFIX/bin. SYSCONFDIR (default /etc) and SYSTEMD_UNIT_DIR (default
# /etc/systemd/system) place the service files elsewhere (packaging, tests).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ]; then prefix=/usr/local; else prefix="$HOME/.local"; fi
distcc_names=() service=no build=yes
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix="$2"; shift 2 ;;
        --prefix=*) prefix="${1#--prefix=}"; shift ;;
        --distcc-names) distcc_names=(--distcc-names); shift ;;
        --service) service=yes; shift ;;
        --no-build) build=no; shift ;;
        -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
sysconfdir="${SYSCONFDIR:-/etc}"
unitdir="${SYSTEMD_UNIT_DIR:-/etc/systemd/system}"

if [ "$build" = yes ]; then
    cargo install --locked --path . --root "$prefix"
fi
for b in swarmcc swarmccd; do
    [ -x "$prefix/bin/$b" ] || { echo "install.sh: $prefix/bin/$b is missing" >&2; exit 1; }
done
"$prefix/bin/swarmcc" --install "$prefix" "${distcc_names[@]}"

# Copies $1 to $2 (mode $3) unless $2 exists; says which.
place() {
    if [ -e "$2" ]; then
        echo "kept $2 (exists)"
    else
        install -D -m "$3" "$1" "$2"
        echo "installed $2"
    fi
}

if [ "$service" = yes ]; then
    if [ -d /run/systemd/system ] || [ -n "${SYSTEMD_UNIT_DIR:-}" ]; then
        mkdir -p "$unitdir"
        sed "s#/usr/local/bin/swarmccd#$prefix/bin/swarmccd#" dist/systemd/swarmccd.service \
            > "$unitdir/swarmccd.service"
        chmod 644 "$unitdir/swarmccd.service"
        echo "installed $unitdir/swarmccd.service"
        place dist/systemd/swarmccd.env "$sysconfdir/default/swarmccd" 644
        command -v systemctl >/dev/null && [ -d /run/systemd/system ] && systemctl daemon-reload
        echo "next: set --allow in $sysconfdir/default/swarmccd, then: systemctl enable --now swarmccd"
    elif command -v openrc-run >/dev/null || [ -d "$sysconfdir/init.d" ]; then
        sed "s#/usr/local/bin/swarmccd#$prefix/bin/swarmccd#" dist/openrc/swarmccd \
            > "$sysconfdir/init.d/swarmccd"
        chmod 755 "$sysconfdir/init.d/swarmccd"
        echo "installed $sysconfdir/init.d/swarmccd"
        place dist/openrc/swarmccd.conf "$sysconfdir/conf.d/swarmccd" 644
        echo "next: set --allow in $sysconfdir/conf.d/swarmccd, then: rc-update add swarmccd default && rc-service swarmccd start"
    else
        echo "install.sh: neither systemd nor OpenRC found; see dist/ and README (The server as a service)" >&2
        exit 1
    fi
fi
