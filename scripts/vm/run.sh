#!/usr/bin/env bash
# Boots a Linux 6.12 guest under QEMU (TCG) with the project's static binaries and runs one guest test
# script in it; reports pass/fail from what the guest prints.
#
#   scripts/vm/run.sh [--out DIR] [--keep] [--no-build] GUEST_SCRIPT [ARGS...]
#   scripts/vm/run.sh --check                 # only say what is missing (exit 77 if anything is)
#
# --keep leaves the guest's root tree in target/vm/rootfs; --no-build reuses the binaries of the last
# build (target/vm/bin), for iterating on a guest script.
#
# Everything comes from Debian packages: the kernel and its modules from linux-image-6.12-cloud-amd64
# (bookworm-security; downloaded with `apt-get download` and unpacked with `dpkg-deb -x`, nothing is
# installed), busybox from busybox-static, `vdpa` from iproute2 and `qemu-storage-daemon` from
# qemu-system-common (both copied with the libraries `ldd` names), plus the project's binaries built
# static (`-C target-feature=+crt-static`) in their own target dir. Downloads are cached under
# target/vm/cache; the kernel package is fetched once.
#
# The guest's /init mounts /proc, /sys and devtmpfs, runs GUEST_SCRIPT with ARGS, prints
# `VFU-VM: PASS` or `VFU-VM: FAIL (exit N)` and powers off. Files the script puts in /out (captures) are
# sent back base64-encoded over the serial console and written to DIR (default target/vm/out). The
# whole console output is in DIR/console.log.
#
# Exit status: 0 the guest test passed, 1 it failed (or the guest did not finish), 2 bad usage,
# 77 a prerequisite is missing (named on stderr).
#
# Environment: VFU_VM_KERNEL_PKG (a linux-image package name, default the one
# linux-image-6.12-cloud-amd64 depends on), VFU_VM_TIMEOUT (seconds per boot, default 240: TCG on a
# loaded 2-core machine), VFU_VM_MEM (MiB, default 512), CARGO (default cargo).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work="$root/target/vm"
cache="$work/cache"
out="$work/out"
keep=0
check_only=0
build=1

usage() { # the comment at the top of this file; exit status $1 (default 2)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
    exit "${1:-2}"
}

while (($#)); do
    case "$1" in
    --out) out=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --no-build) build=0; shift ;;
    --check) check_only=1; shift ;;
    -h | --help) usage 0 ;;
    --) shift; break ;;
    -*) echo "run.sh: unknown option $1" >&2; usage ;;
    *) break ;;
    esac
done

log() { printf 'vm: %s\n' "$*" >&2; }

# --- prerequisites ------------------------------------------------------------------------------------

missing=()
need_cmd() { # command, Debian package that ships it
    command -v "$1" >/dev/null 2>&1 || missing+=("$1 (Debian package $2)")
}
need_cmd qemu-system-x86_64 qemu-system-x86
need_cmd qemu-storage-daemon qemu-system-common
need_cmd vdpa iproute2
need_cmd busybox busybox-static
need_cmd apt-get apt
need_cmd dpkg-deb dpkg
need_cmd cpio cpio
need_cmd gzip gzip
need_cmd xz xz-utils
need_cmd depmod kmod
need_cmd modinfo kmod
need_cmd base64 coreutils
need_cmd ldd libc-bin
need_cmd "${CARGO:-cargo}" "rustup (cargo)"
if command -v busybox >/dev/null 2>&1 && ! busybox --list 2>/dev/null | grep -qx modprobe; then
    missing+=("a busybox with modprobe (Debian package busybox-static)")
fi
if command -v busybox >/dev/null 2>&1 && ldd "$(command -v busybox)" >/dev/null 2>&1; then
    missing+=("a static busybox (Debian package busybox-static, not busybox)")
fi

kernel_pkg=${VFU_VM_KERNEL_PKG:-}
if [ -z "$kernel_pkg" ] && command -v apt-cache >/dev/null 2>&1; then
    kernel_pkg=$(apt-cache depends linux-image-6.12-cloud-amd64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-6\.12\.[^ ]*-cloud-amd64\)$/\1/p' | head -n1 || true)
fi
if [ -z "$kernel_pkg" ] && ! ls "$cache"/linux-image-6.12.*-cloud-amd64_*.deb >/dev/null 2>&1; then
    missing+=("the package linux-image-6.12-cloud-amd64 in apt's lists (Debian bookworm-security; run apt-get update)")
fi

if ((${#missing[@]})); then
    for m in "${missing[@]}"; do echo "vm: missing: $m" >&2; done
    exit 77
fi
if ((check_only)); then
    echo "vm: every prerequisite is here (kernel package ${kernel_pkg:-cached})" >&2
    exit 0
fi

(($#)) || usage
guest_script=$1
shift
[ -f "$guest_script" ] || { echo "run.sh: no such guest script: $guest_script" >&2; exit 2; }

mkdir -p "$cache" "$out"

# --- kernel and modules -----------------------------------------------------------------------------

deb=""
if [ -n "$kernel_pkg" ]; then
    deb=$(ls "$cache/${kernel_pkg}"_*.deb 2>/dev/null | head -n1 || true)
    if [ -z "$deb" ]; then
        log "downloading $kernel_pkg"
        (cd "$cache" && apt-get download -q "$kernel_pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2) ||
            { echo "vm: missing: apt-get download $kernel_pkg failed" >&2; exit 77; }
        deb=$(ls "$cache/${kernel_pkg}"_*.deb | head -n1)
    fi
else
    deb=$(ls "$cache"/linux-image-6.12.*-cloud-amd64_*.deb | head -n1)
fi
kdir="$cache/$(basename "$deb" .deb)"
if [ ! -d "$kdir/boot" ]; then
    log "unpacking $(basename "$deb")"
    rm -rf "$kdir.tmp"
    dpkg-deb -x "$deb" "$kdir.tmp"
    mv "$kdir.tmp" "$kdir"
fi
kver=$(ls "$kdir/lib/modules" | head -n1)
vmlinuz="$kdir/boot/vmlinuz-$kver"
[ -f "$vmlinuz" ] || { echo "vm: no vmlinuz in $deb" >&2; exit 1; }

# --- project binaries, static -------------------------------------------------------------------------

bins="$work/bin"
mkdir -p "$bins"
if ((build)); then
log "building the project's binaries (static, target/vm/cargo)"
locked=()
if [ "${CI:-}" = true ]; then locked=(--locked); fi
# The dev profile at opt-level 1 without debug info: quick to build, quick enough under TCG, small.
(cd "$root" && RUSTFLAGS='-C target-feature=+crt-static' CARGO_PROFILE_DEV_OPT_LEVEL=1 \
    CARGO_PROFILE_DEV_DEBUG=0 CARGO_PROFILE_DEV_STRIP=debuginfo CARGO_PROFILE_DEV_INCREMENTAL=false \
    "${CARGO:-cargo}" build -q "${locked[@]}" --target x86_64-unknown-linux-gnu --target-dir "$work/cargo" \
    -p vfu-codec --example vduse-blk -p vfu-tests --bin vfu-vm-guest -p vfu-dump --bin vfu-dump)
rel="$work/cargo/x86_64-unknown-linux-gnu/debug"
cp "$rel/examples/vduse-blk" "$rel/vfu-vm-guest" "$rel/vfu-dump" "$bins/"
for b in "$bins"/*; do
    if ! ldd "$b" 2>&1 | grep -qE 'statically linked|not a dynamic executable'; then
        echo "vm: $b is not static" >&2
        exit 1
    fi
done
fi

# --- initramfs ----------------------------------------------------------------------------------------

rootfs="$work/rootfs"
rm -rf "$rootfs"
mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,out,run,etc,lib/modules}

cp "$(command -v busybox)" "$rootfs/bin/busybox"
for applet in $(busybox --list); do
    [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"
done

copy_with_libs() { # binary, destination dir inside the rootfs
    local bin=$1 dest=$2
    mkdir -p "$rootfs$dest"
    cp -L "$bin" "$rootfs$dest/"
    ldd "$bin" | awk '/=>/ { print $3 } /^[[:space:]]*\/[^ ]*ld-linux/ { print $1 }' | while read -r lib; do
        [ -n "$lib" ] && [ -f "$lib" ] || continue
        mkdir -p "$rootfs$(dirname "$lib")"
        cp -L "$lib" "$rootfs$lib"
    done
}
copy_with_libs "$(command -v vdpa)" /sbin
copy_with_libs "$(command -v qemu-storage-daemon)" /usr/bin
for b in "$bins"/*; do [ -f "$b" ] && cp "$b" "$rootfs/usr/bin/"; done

# The modules the tests load and everything they depend on, decompressed (busybox modprobe reads plain
# .ko files), with a modules.dep from depmod.
kmods="$kdir/lib/modules/$kver"
moddir="$rootfs/lib/modules/$kver"
mkdir -p "$moddir"
declare -A seen=()
add_module() {
    local name=$1 path dep
    [ -n "${seen[$name]:-}" ] && return
    seen[$name]=1
    path=$(find "$kmods/kernel" -name "$name.ko*" | head -n1)
    [ -n "$path" ] || { echo "vm: module $name is not in $kver" >&2; exit 1; }
    for dep in $(modinfo -F depends "$path" | tr ',' ' '); do add_module "$dep"; done
    local rel=${path#"$kmods/"}
    rel=${rel%.xz}
    mkdir -p "$moddir/$(dirname "$rel")"
    case "$path" in
    *.xz) xz -dc "$path" >"$moddir/$rel" ;;
    *) cp "$path" "$moddir/$rel" ;;
    esac
}
for m in vduse vdpa virtio_vdpa vhost_vdpa virtio_blk; do add_module "$m"; done
for f in modules.builtin modules.builtin.modinfo modules.order; do [ -f "$kmods/$f" ] && cp "$kmods/$f" "$moddir/"; done
depmod -b "$rootfs" "$kver"

cp "$guest_script" "$rootfs/test.sh"
chmod +x "$rootfs/test.sh"
# What the guest tests share, sourced by them as /common.sh.
common="$(dirname "$guest_script")/common.sh"
[ -f "$common" ] && cp "$common" "$rootfs/common.sh"
args_q=""
for a in "$@"; do args_q+=" '${a//\'/\'\\\'\'}'"; done

cat >"$rootfs/init" <<EOF
#!/bin/sh
# Written by scripts/vm/run.sh.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
echo "VFU-VM: kernel \$(uname -r), starting /test.sh"
cd /tmp
sh /test.sh$args_q
rc=\$?
for f in /out/*; do
    [ -f "\$f" ] || continue
    echo "VFU-VM: FILE \${f#/out/} \$(wc -c <"\$f")"
    base64 "\$f"
    echo "VFU-VM: END"
done
if [ \$rc -eq 0 ]; then echo "VFU-VM: PASS"; else echo "VFU-VM: FAIL (exit \$rc)"; fi
sync
poweroff -f
EOF
chmod +x "$rootfs/init"

initrd="$work/initrd.gz"
(cd "$rootfs" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1 >"$initrd")
log "initramfs: $(du -h "$initrd" | cut -f1), kernel $kver"

# --- boot ---------------------------------------------------------------------------------------------

console="$out/console.log"
rm -f "$out"/*.pcapng "$console"
start=$(date +%s)
log "booting (console: $console)"
set +e
timeout "${VFU_VM_TIMEOUT:-240}" qemu-system-x86_64 -accel tcg -cpu max -m "${VFU_VM_MEM:-512}" -smp 1 \
    -nodefaults -no-user-config -display none -serial stdio -no-reboot \
    -kernel "$vmlinuz" -initrd "$initrd" \
    -append 'console=ttyS0 quiet panic=-1 rdinit=/init' </dev/null >"$console" 2>&1
qrc=$?
set -e
log "guest ran for $(($(date +%s) - start)) s (qemu exit $qrc)"

# Files sent back between `VFU-VM: FILE name size` and `VFU-VM: END`.
tr -d '\r' <"$console" | awk -v dir="$out" '
    /^VFU-VM: FILE / { name = $3; file = dir "/" name ".b64"; printf "" > file; next }
    /^VFU-VM: END/ { if (file) close(file); file = ""; next }
    file { print >> file }
' || true
for b in "$out"/*.b64; do
    [ -f "$b" ] || continue
    base64 -d "$b" >"${b%.b64}" && rm "$b"
    log "got $(basename "${b%.b64}") ($(wc -c <"${b%.b64}") bytes)"
done

((keep)) || rm -rf "$rootfs"
if tr -d '\r' <"$console" | grep -qx 'VFU-VM: PASS'; then
    log "PASS"
    exit 0
fi
tr -d '\r' <"$console" | grep -x 'VFU-VM: FAIL.*' >&2 || log "the guest did not finish (timeout or panic); see $console"
# The console without the files sent back.
tr -d '\r' <"$console" | awk '/^VFU-VM: FILE /{skip=1; next} /^VFU-VM: END/{skip=0; next} !skip' | tail -n 40 >&2
exit 1
