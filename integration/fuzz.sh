#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for N seconds each and prints a table: target,
# seconds, executions, crashes. Exits non-zero if any target crashed (or failed to
# run), with the reproducer's path in the output.
#
#   integration/fuzz.sh          # 300 s per target
#   integration/fuzz.sh 15       # the CI size
#
# Uses `cargo +nightly fuzz` when a nightly toolchain is installed, else cargo-fuzz on
# stable with RUSTC_BOOTSTRAP=1; installs cargo-fuzz if it is missing. Builds without a
# sanitizer (the fuzzed code has no `unsafe`; the targets' own allocation guard catches
# oversized allocations) but with debug assertions and overflow checks.
#
# Environment: FUZZ_TARGET_DIR (default fuzz/target), FUZZ_SANITIZER (default none),
# FUZZ_TARGETS (space-separated subset), FUZZ_ARGS (extra libFuzzer flags),
# FUZZ_TOOLCHAIN=stable (use stable with RUSTC_BOOTSTRAP=1 even if nightly exists).
# New corpus entries go to fuzz/corpus/<target> (not committed); fuzz/seeds/<target>
# is read as well; crashes land in fuzz/artifacts/<target>.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

secs=${1:-300}
case $secs in
    '' | *[!0-9]*)
        echo "usage: $0 [seconds-per-target]" >&2
        exit 2
        ;;
esac
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$PWD/target}
sanitizer=${FUZZ_SANITIZER:-none}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked || cargo install cargo-fuzz
fi
# liblzo2 (the LZO oracle, via lzo-sys) builds with cmake.
command -v cmake >/dev/null || {
    echo "fuzz: cmake is needed to build liblzo2 (apt-get install cmake)" >&2
    exit 2
}

if [ "${FUZZ_TOOLCHAIN:-}" != stable ] && cargo +nightly --version >/dev/null 2>&1; then
    fuzz=(cargo +nightly fuzz)
    toolchain=nightly
else
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
    toolchain="stable (RUSTC_BOOTSTRAP=1)"
    sanitizer=none
fi
flags=(-O --debug-assertions --sanitizer "$sanitizer")

start=$(date +%s)
echo "fuzz: building with $toolchain, sanitizer $sanitizer"
"${fuzz[@]}" build "${flags[@]}"
echo "fuzz: built in $(($(date +%s) - start)) s"

read -r -a targets <<<"${FUZZ_TARGETS:-$("${fuzz[@]}" list | tr '\n' ' ')}"
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

dict_for() {
    case $1 in
        request_decoder | reply_decoder) echo dict/protocol.dict ;;
        lzo_*) echo dict/lzo.dict ;;
        *) echo "dict/$1.dict" ;;
    esac
}

failed=0
rows=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    dirs=("corpus/$t")
    [ -d "seeds/$t" ] && dirs+=("seeds/$t")
    lf_args=(-max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048)
    dict=$(dict_for "$t")
    [ -f "$dict" ] && lf_args+=(-dict="$dict")
    # shellcheck disable=SC2206
    lf_args+=(${FUZZ_ARGS:-})
    echo "fuzz: $t for $secs s"
    t0=$(date +%s)
    rc=0
    "${fuzz[@]}" run "${flags[@]}" "$t" "${dirs[@]}" -- "${lf_args[@]}" >"$logs/$t.log" 2>&1 || rc=$?
    took=$(($(date +%s) - t0))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log" | tail -n 1)
    crashes=$(grep -cE 'Test unit written to .*/(crash|timeout|oom|leak)-' "$logs/$t.log" || true)
    if [ "$rc" != 0 ] && [ "$crashes" = 0 ]; then
        crashes="?"
    fi
    rows+=("$(printf '%-18s %8s %14s %8s' "$t" "$took" "${execs:-?}" "$crashes")")
    if [ "$rc" != 0 ]; then
        failed=1
        echo "fuzz: $t FAILED (exit $rc); end of its log:"
        grep -E 'panicked at|^fuzz guard|ERROR: libFuzzer|SUMMARY' "$logs/$t.log" | head -n 5 || true
        tail -n 40 "$logs/$t.log"
        for path in $(sed -nE 's#.*Test unit written to (.*/(crash|timeout|oom|leak)-.*)$#\1#p' "$logs/$t.log"); do
            echo "fuzz: reproducer: $path"
            echo "fuzz:   replay:   (cd fuzz && ${fuzz[*]} run ${flags[*]} $t $path)"
            echo "fuzz:   hex:      $(od -An -v -tx1 "$path" | tr -d ' \n' | head -c 2000)"
        done
    fi
done

echo
printf '%-18s %8s %14s %8s\n' target seconds executions crashes
printf '%s\n' "${rows[@]}"
echo "fuzz: total $(($(date +%s) - start)) s"
exit "$failed"
