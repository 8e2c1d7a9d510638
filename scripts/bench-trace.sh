#!/usr/bin/env bash
# The cost of `vfu-dump trace`: round trips (4-byte REGION_READs) of a vfio-user server on the rust-vmm
# crate (vfu-dump/examples/trace_load.rs) with its client untraced, in one run, alternating, for:
#
#   untraced          the server alone
#   trace launch      vfu-dump trace -- SERVER          (seccomp filter: stops only at the decoded calls)
#   strace launch     strace -f --seccomp-bpf -e trace=sendmsg,recvmsg,read,write -o /dev/null SERVER
#   strace launch+    the same with sendto,recvfrom added: the calls this server actually makes
#   trace attach      SERVER, then vfu-dump trace -p PID (every system call stops)
#   strace attach     SERVER, then strace -f -p PID -e trace=sendmsg,recvmsg,read,write -o /dev/null
#   strace attach+    the same with sendto,recvfrom added
#
# The rust-vmm server reads a message with recvmsg (header) and recvfrom (payload) and answers with two
# sendto: the issue's strace set stops at one of these four calls per round trip, the "+" rows at all
# four, as vfu-dump trace must (it records every byte).
#
# vfu-dump's output (every message decoded and printed as `read` prints it) goes to /dev/null; strace
# decodes nothing of vfio-user. The goal (issue #16): trace costs no more than strace.
# Prints a Markdown table for BENCHMARKS.md ("## vfu-dump trace").
#
#   scripts/bench-trace.sh              full run: 5 rounds of 20,000 round trips per row
#   VFU_BENCH_QUICK=1 scripts/...       smoke run: 1 round of 2,000
#   VFU_BENCH_ROUNDS=R VFU_BENCH_N=N     other counts
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v strace >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get install -y -qq strace >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq strace >/dev/null; }
    fi
fi
have_strace=0
command -v strace >/dev/null 2>&1 && have_strace=1
[ "$have_strace" = 1 ] || echo "note: strace is not installed; its rows are left out" >&2

if [ "${VFU_BENCH_QUICK:-0}" = 1 ]; then rounds=1; n=2000; else rounds=5; n=20000; fi
rounds=${VFU_BENCH_ROUNDS:-$rounds}
n=${VFU_BENCH_N:-$n}

cargo build -q --release -p vfu-dump --bin vfu-dump --example trace_load
bin=target/release/vfu-dump
load=target/release/examples/trace_load
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# Waits for the socket file, then runs the client; prints its median, p99 and mean.
client() {
    local sock=$1
    for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.01; done
    "$load" client "$sock" "$n" | sed -E 's/.*median_us=([0-9.]+) p99_us=([0-9.]+) mean_us=([0-9.]+)/\1 \2 \3/'
}

run_row() {
    local row=$1 sock="$dir/$1-$2.sock" pid tracer=""
    rm -f "$sock"
    case $row in
        untraced) "$load" server "$sock" & pid=$! ;;
        trace-launch) "$bin" trace -- "$load" server "$sock" >/dev/null 2>&1 & pid=$! ;;
        strace-launch) strace -f --seccomp-bpf -e trace=sendmsg,recvmsg,read,write -o /dev/null "$load" server "$sock" & pid=$! ;;
        strace-launch+) strace -f --seccomp-bpf -e trace=sendmsg,recvmsg,read,write,sendto,recvfrom -o /dev/null "$load" server "$sock" & pid=$! ;;
        trace-attach|strace-attach|strace-attach+)
            "$load" server "$sock" & pid=$!
            for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.01; done
            if [ "$row" = trace-attach ]; then
                "$bin" trace -p "$pid" >/dev/null 2>"$dir/attach.err" & tracer=$!
                for _ in $(seq 200); do grep -q "attached to pid" "$dir/attach.err" 2>/dev/null && break; sleep 0.01; done
            else
                set=sendmsg,recvmsg,read,write
                [ "$row" = strace-attach+ ] && set=$set,sendto,recvfrom
                strace -f -p "$pid" -e trace=$set -o /dev/null 2>/dev/null & tracer=$!
                for _ in $(seq 200); do grep -q "TracerPid:[[:space:]]*[1-9]" "/proc/$pid/status" 2>/dev/null && break; sleep 0.01; done
            fi ;;
    esac
    client "$sock" >>"$dir/$row.txt"
    wait "$pid" 2>/dev/null || true
    if [ -n "$tracer" ]; then kill -INT "$tracer" 2>/dev/null || true; wait "$tracer" 2>/dev/null || true; fi
}

rows="untraced trace-launch trace-attach"
[ "$have_strace" = 1 ] && rows="untraced trace-launch strace-launch strace-launch+ trace-attach strace-attach strace-attach+"
for r in $(seq "$rounds"); do
    for row in $rows; do run_row "$row" "$r"; done
done

echo "## machine"
echo "- cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
echo "- kernel: $(uname -r); load: $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$have_strace" = 1 ] && echo "- $(strace -V | head -1)"
echo "- $rounds rounds of $n round trips per row, rows alternating; the median over rounds of each round's median"
echo
base=$(sort -n "$dir/untraced.txt" | awk '{print $1}' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "| server | round trip median µs (rounds: min-max) | p99 µs (median) | vs untraced |"
echo "|---|---|---|---|"
for row in $rows; do
    f="$dir/$row.txt"
    med=$(awk '{print $1}' "$f" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    lo=$(awk '{print $1}' "$f" | sort -n | head -1)
    hi=$(awk '{print $1}' "$f" | sort -n | tail -1)
    p99=$(awk '{print $2}' "$f" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    ratio=$(awk -v a="$med" -v b="$base" 'BEGIN {printf "%.2fx", a / b}')
    echo "| $row | $med ($lo-$hi) | $p99 | $ratio |"
done
