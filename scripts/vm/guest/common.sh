# What the guest tests share (busybox sh; scripts/vm/run.sh copies this file beside the test as
# /common.sh, and each test sources it after `set -eu`): messages, waiting, the block device a vdpa
# device became, and the VDUSE and virtio modules loaded.

say() { echo "guest: $*"; }
fail() { echo "guest: FAIL: $*"; exit 1; }
# set -e ends the script on the first failing command; say where.
trap 'rc=$?; [ $rc -eq 0 ] || echo "guest: FAIL: exit $rc after line $LINENO"' EXIT

# wait_for SECONDS COMMAND...: runs COMMAND every 0.1 s until it succeeds.
wait_for() {
    n=$(($1 * 10)); shift
    while ! "$@" >/dev/null 2>&1; do
        n=$((n - 1))
        [ $n -gt 0 ] || return 1
        sleep 0.1
    done
}

# The virtio block device a vdpa device NAME became (vda, vdb, …), once it shows up.
disk_of() {
    for d in /sys/bus/vdpa/devices/"$1"/virtio*/block/*; do
        [ -e "$d" ] && { basename "$d"; return 0; }
    done
    return 1
}
has_disk() { disk_of "$1" >/dev/null; }
size_is() { [ "$(cat /sys/block/"$1"/size)" = "$2" ]; }

# The pid of the process whose command name starts with $1 (a daemon, a tracer's child).
pid_of() {
    for p in /proc/[0-9]*; do
        case "$(cat "$p/comm" 2>/dev/null)" in "$1"*) echo "${p#/proc/}"; return 0 ;; esac
    done
    return 1
}

# vhost_check NAME: moves vdpa device NAME from virtio_vdpa to vhost_vdpa (unbind, then the new
# driver binds the free device) and runs the guest's vhost check on it.
vhost_check() {
    echo "$1" >/sys/bus/vdpa/drivers/virtio_vdpa/unbind
    modprobe vhost_vdpa
    if [ ! -e /sys/bus/vdpa/devices/"$1"/driver ]; then
        echo "$1" >/sys/bus/vdpa/drivers/vhost_vdpa/bind
    fi
    wait_for 10 test -c /dev/vhost-vdpa-0 || fail "no /dev/vhost-vdpa-0"
    vfu-vm-guest vhost /dev/vhost-vdpa-0
}

modprobe vduse
modprobe virtio_vdpa
modprobe virtio_blk
