#!/usr/bin/env bash
# Instructions executed (valgrind --tool=callgrind, user space, the whole process) by `vfu-dump read --stats`,
# `read -v`, `read --format json` and `validate` on generated captures: a load-independent measure for
# comparing two builds on a busy machine, where timings are worthless.
# Usage: scripts/instructions-read.sh [SIZE_MIB (default 16)] [VFU_DUMP ...]
# With no binaries given it builds and measures target/release/vfu-dump; give several (e.g. an old build
# copied aside and a new one) to get one column each. MIXES="session bulk" as in bench-read.sh.
# THREADS=main counts the main thread alone: the read-ahead thread's count varies from run to run by
# about 1 % of the whole (how often it waits for the parser), the main thread's by a few thousand.
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-16}
shift || true
dir=${BENCH_DIR:-/tmp/vfu-bench}
mkdir -p "$dir"
command -v valgrind >/dev/null || apt-get install -y -qq valgrind >/dev/null
cargo build --release -q -p vfu-dump --example gen_capture
bins=("$@")
if [ ${#bins[@]} -eq 0 ]; then
    cargo build --release -q -p vfu-dump --bin vfu-dump
    bins=("${CARGO_TARGET_DIR:-target}/release/vfu-dump")
fi
gen=${CARGO_TARGET_DIR:-target}/release/examples/gen_capture
count() { # prints the instructions executed by "$@" (output discarded)
    if [ "${THREADS:-all}" = main ]; then
        rm -f "$dir"/cg.out*
        valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$dir/cg.out" "$@" \
            >/dev/null 2>"$dir/cg.err" || true
        awk '/^summary:/{print $2}' "$dir/cg.out-01"
    else
        valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" "$@" >/dev/null 2>"$dir/cg.err" || true
        awk '/^summary:/{print $2}' "$dir/cg.out"
    fi
}
printf '| mix | command |'; for b in "${bins[@]}"; do printf ' %s |' "$b"; done; echo
printf '|---|---|'; for _ in "${bins[@]}"; do printf '%s' '---:|'; done; echo
for mix in ${MIXES:-session bulk}; do
    cap="$dir/$mix-$size.pcapng"
    [ -f "$cap" ] || "$gen" "$cap" "$size" "$mix" >/dev/null
    for args in "read --stats" "read -v" "read --format json" "validate"; do
        printf '| %s | %s |' "$mix" "$args"
        for b in "${bins[@]}"; do
            # shellcheck disable=SC2086
            printf ' %s |' "$(count "$b" $args "$cap")"
        done
        echo
    done
done
