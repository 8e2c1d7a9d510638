#!/usr/bin/env bash
# Runs the `vfu-dump proxy` benchmark (vfu-dump/benches/proxy.rs): round trips and 1 MiB REGION_WRITE
# throughput direct, through the proxy (decoding; with -w; with --spin 0; with -q) and through socat,
# alternating, with the proxy's (and socat's) processor time per round trip; the proxy's peak RSS
# from 10,000 to 1,000,000 messages; heap allocations per message.
# Figures are recorded in BENCHMARKS.md under "## vfu-dump proxy".
#
#   scripts/bench-proxy.sh            full run (about a minute and a half on 2 cores)
#   VFU_BENCH_QUICK=1 scripts/...     smoke run
#   VFU_BENCH_THROUGHPUT=1 scripts/...  the 1 MiB REGION_WRITE rows only: direct, -q, -w,
#                                     -w --snaplen 262144, -w with VFU_PROXY_SPLICE=0 (copying)
#   VFU_BENCH_BASE_BIN=PATH (with VFU_BENCH_THROUGHPUT=1): adds the -q and -w rows of another build's
#                                     vfu-dump (e.g. an older commit's target/release/vfu-dump), in the
#                                     same rounds, for an A/B on a machine whose speed drifts
#   TMPDIR=/dev/shm scripts/...       sockets and the -w captures on tmpfs: -w throughput then measures
#                                     the proxy rather than the file system (each run writes ~2.4 GB)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v socat >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get install -y -qq socat >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq socat >/dev/null; }
    else
        echo "note: socat is not installed; its rows are left out" >&2
    fi
fi

echo "## machine"
echo "- cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
echo "- memory: $(free -h | awk '/^Mem:/ {print $2}')"
echo "- kernel: $(uname -r)"
echo "- $(rustc --version)"
command -v socat >/dev/null 2>&1 && echo "- $(socat -V 2>/dev/null | grep -m1 'socat version')"
echo
cargo bench -p vfu-dump --bench proxy
