#!/usr/bin/env bash
# scripts/install-test-deps.sh: installs (Debian, as root) what `cargo test --workspace` needs beyond the
# Rust toolchain, so that no test skips: tshark (the dissector tests), jq (the --help examples that
# pipe into it), socat (the proxy comparison benchmark), and the VM test's QEMU, qemu-storage-daemon,
# static busybox, vdpa, initramfs tools and apt's lists (tests/tests/vm.rs, scripts/vm/run.sh).
# Only what is missing is installed; it ends with `scripts/vm/run.sh --check`.
# .ci/run runs it; a test that still skips prints `SKIPPED: <test>: needs …`.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

updated=0
apt_update() { ((updated)) || { apt-get update -qq; updated=1; }; }

need=()
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v tshark >/dev/null 2>&1 || need+=(tshark)
command -v jq >/dev/null 2>&1 || need+=(jq)
command -v socat >/dev/null 2>&1 || need+=(socat)
if ((${#need[@]})); then
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections || true
    apt_update
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- VM test (tests/tests/vm.rs, scripts/vm/run.sh): VDUSE against a real Linux 6.12 guest -----------
vm_busybox_ok() {
    local b
    b=$(command -v busybox) || return 1
    if ldd "$b" >/dev/null 2>&1; then return 1; fi # dynamic: the guest has no libraries for it
    "$b" --list 2>/dev/null | grep -x modprobe >/dev/null
}
vm_need=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || vm_need+=(qemu-system-x86)
command -v qemu-storage-daemon >/dev/null 2>&1 || vm_need+=(qemu-system-common)
vm_busybox_ok || vm_need+=(busybox-static)
command -v vdpa >/dev/null 2>&1 || vm_need+=(iproute2)
command -v cpio >/dev/null 2>&1 || vm_need+=(cpio)
command -v xz >/dev/null 2>&1 || vm_need+=(xz-utils)
command -v depmod >/dev/null 2>&1 || vm_need+=(kmod)
if ((${#vm_need[@]})); then
    apt_update
    apt-get install -y -qq --no-install-recommends "${vm_need[@]}" >/dev/null
fi
# The test fetches the kernel with `apt-get download linux-image-6.12-cloud-amd64`'s dependency
# (bookworm-security): apt's lists must know it.
apt-cache show linux-image-6.12-cloud-amd64 >/dev/null 2>&1 || apt-get update -qq
bash scripts/vm/run.sh --check
# --- end of the VM test block ---------------------------------------------------------------------------
