#!/usr/bin/env bash
# Runs every fuzz target (fuzz/libfuzzer/fuzz_targets/) under libFuzzer for N executions
# each and prints, per target, the executions, the time and the findings.
#
#   bash scripts/fuzz.sh [RUNS] [TARGET...]     (RUNS defaults to 1000000; all targets)
#
# Needs the nightly toolchain and cargo-fuzz (installed here if missing). Each target
# starts from its committed seeds (fuzz/seeds/<target>/) plus a working corpus kept in
# $FUZZ_WORK (default /var/tmp/reconciler-fuzz), so later runs go on where earlier ones
# stopped; a crashing input is saved under $FUZZ_WORK/artifacts/<target>/. Limits: inputs
# up to -max_len bytes, 10 s per input (a hang), 2 GB RSS, and no single allocation over
# 512 MB (unbounded allocation). Not part of CI (which runs each body over its seeds and
# mutations in `cargo test -p fuzz-bodies`).
set -uo pipefail
cd "$(dirname "$0")/.."
runs="${1:-1000000}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(canal debezium maxwell job entity config thrift sample)
fi
work="${FUZZ_WORK:-/var/tmp/reconciler-fuzz}"
target_dir="${CARGO_TARGET_DIR:-/var/tmp/reconciler-target}/fuzz"
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
cargo +nightly fuzz build --fuzz-dir fuzz/libfuzzer --target-dir "$target_dir" >/dev/null || exit 1

max_len() {
    case "$1" in
        config) echo 8192 ;;
        thrift) echo 8192 ;;
        *) echo 4096 ;;
    esac
}

printf '%-10s %12s %9s %9s  %s\n' target executions seconds "exec/s" findings
status=0
for t in "${targets[@]}"; do
    mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
    log="$work/$t.log"
    started=$(date +%s.%N)
    cargo +nightly fuzz run --fuzz-dir fuzz/libfuzzer --target-dir "$target_dir" "$t" \
        "$work/corpus/$t" "fuzz/seeds/$t" -- \
        -runs="$runs" -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 \
        -artifact_prefix="$work/artifacts/$t/" -print_final_stats=1 >"$log" 2>&1
    code=$?
    seconds=$(echo "$(date +%s.%N) - $started" | bc)
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    execs="${execs:-?}"
    if [ "$code" -eq 0 ]; then
        findings="none"
    else
        status=1
        reason=$(grep -m1 -A1 'panicked at' "$log" | sed -n 2p)
        [ -n "$reason" ] || reason=$(grep -m1 -o -E '(ERROR: libFuzzer|ERROR: AddressSanitizer): .*' "$log" | cut -c1-80)
        artifact=$(grep -o 'Test unit written to .*' "$log" | tail -1 | sed 's/Test unit written to //')
        findings="${reason:-exit $code}; input ${artifact:-none}; log $log"
    fi
    rate=$([ "$execs" != "?" ] && echo "$execs / $seconds" | bc || echo "?")
    printf '%-10s %12s %9.0f %9s  %s\n' "$t" "$execs" "$seconds" "$rate" "$findings"
done
exit "$status"
