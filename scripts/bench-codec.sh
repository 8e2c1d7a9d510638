#!/usr/bin/env bash
# The codec's criterion benchmarks (decode per message against a copy baseline; VERSION JSON against
# serde_json), then a table of the medians. Usage: scripts/bench-codec.sh [criterion args]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -q -p vfu-codec --bench decode --bench decode_json -- "$@" >/dev/null
python3 scripts/criterion-table.py "${CARGO_TARGET_DIR:-target}/criterion"
echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
