#!/usr/bin/env bash
# Instructions per codec operation, under callgrind: what a loaded machine does not change. For each
# case of codec/benches/icount.rs, (Ir(N = 10001) - Ir(N = 1)) / 10000. Compare a change with its
# parent by running this on both. Needs valgrind. Usage: scripts/bench-codec-icount.sh [CASE...]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }
bin=$(cargo bench -p vfu-codec --bench icount --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -1)
[ -x "$bin" ] || { echo "could not build the icount bench" >&2; exit 2; }
cases=("$@")
((${#cases[@]})) || cases=(version_decode caps_lvu caps_qemu caps_spaced dma_map_decode dma_map_encode version_encode session_decode)
ir() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 >/dev/null | awk '/Collected/ {print $4}'; }
printf '%-16s %s\n' case instructions
for c in "${cases[@]}"; do
    a=$(ir "$c" 1)
    b=$(ir "$c" 10001)
    printf '%-16s %d\n' "$c" $(((b - a) / 10000))
done
