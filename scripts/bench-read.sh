#!/usr/bin/env bash
# Throughput of `vfu-dump read --stats` and `vfu-dump validate` on generated captures, against
# `cat FILE > /dev/null` and `tshark -r FILE -q -z io,stat,0`, in one run, each timed 3 times (best kept),
# with peak RSS from /usr/bin/time. Also reads a 2 GiB capture to check peak RSS stays under 64 MiB.
# Usage: scripts/bench-read.sh [SIZE_MIB (default 1024)] [BIG_MIB (default 2048)]
# MIXES="session bulk" (the default) names gen_capture's mixes to run; the session mix (about 290 bytes
# a message, like the real sessions in corpus/) is the one the targets are stated for. tshark with our
# Lua dissector runs on the bulk mix only (on the session mix it would take minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1024}
big=${2:-2048}
dir=${BENCH_DIR:-/tmp/vfu-bench}
mkdir -p "$dir"
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
cargo build --release -q -p vfu-dump --bin vfu-dump --example gen_capture
bin=${CARGO_TARGET_DIR:-target}/release
best() { # prints "seconds peak_kib" of the fastest of 3 runs of "$@" (wall time from EPOCHREALTIME)
    local b=999999 r=0 t0 t1 s m
    for _ in 1 2 3; do
        t0=$EPOCHREALTIME
        /usr/bin/time -f '%M' -o "$dir/t" "$@" >/dev/null 2>"$dir/err" || true
        t1=$EPOCHREALTIME
        s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.4f", b - a}')
        m=$(tail -1 "$dir/t")
        if awk "BEGIN{exit !($s < $b)}"; then b=$s; r=$m; fi
    done
    echo "$b $r"
}
row() { # name seconds peak
    awk -v n="$1" -v s="$2" -v m="$3" -v by="$bytes" -v ms="$msgs" \
        'BEGIN{ printf "| %s | %.3f s | %.0f MB/s | %.2f M msg/s | %.0f MiB |\n", n, s, by/s/1e6, ms/s/1e6, m/1024 }'
}
for mix in ${MIXES:-session bulk}; do
    cap="$dir/$mix-$size.pcapng"
    [ -f "$cap" ] || "$bin/examples/gen_capture" "$cap" "$size" "$mix"
    bytes=$(stat -c %s "$cap")
    msgs=$("$bin/vfu-dump" read --stats "$cap" | head -1 | cut -d' ' -f1)

    echo
    echo "## $mix mix"
    echo "capture: $cap, $bytes bytes, $msgs messages"
    echo "| command | time | throughput | messages | peak RSS |"
    echo "|---|---|---|---|---|"
    read -r s m < <(best sh -c "cat '$cap' > /dev/null"); row "cat FILE > /dev/null" "$s" "$m"; cat_s=$s
    read -r s m < <(best "$bin/vfu-dump" read --stats "$cap"); row "vfu-dump read --stats" "$s" "$m"; read_s=$s
    read -r s m < <(best "$bin/vfu-dump" validate "$cap"); row "vfu-dump validate" "$s" "$m"
    if command -v tshark >/dev/null; then
        read -r s m < <(best tshark -r "$cap" -q -z io,stat,0); row "tshark -r FILE -q -z io,stat,0" "$s" "$m"; tshark_s=$s
        frames=$(tshark -r "$cap" -q -z io,stat,0 2>/dev/null | awk -F'|' '/<>/{gsub(/ /,"",$3); print $3}')
        echo "(tshark counted $frames frames; the capture has $msgs messages)"
        if [ "$mix" = bulk ]; then
            # The same with vfu-dump's generated dissector loaded, so that tshark decodes vfio-user as we do
            # (one run: it is slow).
            "$bin/vfu-dump" wireshark-dissector >"$dir/vfio_user.lua"
            t0=$EPOCHREALTIME
            /usr/bin/time -f '%M' -o "$dir/t" tshark -X lua_script:"$dir/vfio_user.lua" -r "$cap" -q -z io,stat,0 >/dev/null 2>"$dir/err" || true
            t1=$EPOCHREALTIME
            s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.4f", b - a}')
            row "tshark -X lua_script:vfio_user.lua … (decoding vfio-user)" "$s" "$(tail -1 "$dir/t")"; tshark_lua_s=$s
            awk -v c="$cat_s" -v r="$read_s" -v t="$tshark_s" -v l="$tshark_lua_s" 'BEGIN{printf "\nread --stats: %.2f of cat throughput (target >= 0.5), %.1fx bare tshark (target >= 20), %.0fx tshark decoding vfio-user\n", c/r, t/r, l/r}'
        else
            awk -v c="$cat_s" -v r="$read_s" -v t="$tshark_s" 'BEGIN{printf "\nread --stats: %.2f of cat throughput (target >= 0.5), %.1fx tshark (target >= 20)\n", c/r, t/r}'
        fi
    fi
done
bigcap="$dir/bulk-$big.pcapng"
[ -f "$bigcap" ] || "$bin/examples/gen_capture" "$bigcap" "$big" bulk
read -r s m < <(best "$bin/vfu-dump" read --stats "$bigcap")
echo "$(stat -c %s "$bigcap") byte capture: read --stats peak RSS $((m / 1024)) MiB (target < 64 MiB), $s s"
echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
