# Guest test for scripts/vm/run.sh (busybox sh, run as /test.sh): the vduse-blk example under
# virtio_vdpa (O_DIRECT I/O check, capacity change) and vhost_vdpa (UPDATE_IOTLB, GET_VQ_STATE, one
# GET_ID request), then qemu-storage-daemon's vduse-blk export under virtio_vdpa with the same I/O
# check. Captures and daemon logs go to /out, which the harness copies back.
#
#   scripts/vm/run.sh scripts/vm/guest/vduse-blk.sh [example|qsd|all]
set -eu
part=${1:-all}

. /common.sh

example() {
    name=vduse-blk0
    say "vduse-blk: 16 MiB, capture /out/vduse-blk.pcapng"
    vduse-blk --name $name --size-mib 16 --resize-mib 32 --capture /out/vduse-blk.pcapng \
        2>/out/vduse-blk.log &
    pid=$!
    wait_for 10 grep -q 'ready:' /out/vduse-blk.log || fail "the daemon did not start: $(cat /out/vduse-blk.log)"

    vdpa dev add name $name mgmtdev vduse
    wait_for 10 has_disk $name || fail "no block device for $name under virtio_vdpa"
    disk=$(disk_of $name)
    say "virtio_vdpa bound $name: /dev/$disk, $(cat /sys/block/"$disk"/size) sectors"
    size_is "$disk" 32768 || fail "capacity $(cat /sys/block/"$disk"/size), not 32768"
    wait_for 5 test -b /dev/"$disk" || fail "no /dev/$disk"
    vfu-vm-guest blkcheck /dev/"$disk" 4

    kill -USR1 $pid
    wait_for 10 size_is "$disk" 65536 || fail "capacity still $(cat /sys/block/"$disk"/size) after SIGUSR1"
    say "capacity change: /sys/block/$disk/size is 65536"

    # Over to vhost_vdpa.
    vhost_check $name

    vdpa dev del $name
    kill -TERM $pid
    rc=0
    wait $pid || rc=$?
    cat /out/vduse-blk.log
    [ $rc -eq 0 ] || fail "vduse-blk exited with $rc"
    grep -q "VDUSE_DESTROY_DEV $name: ok" /out/vduse-blk.log || fail "DESTROY_DEV did not succeed"
    [ ! -e /dev/vduse/$name ] || fail "/dev/vduse/$name is still there"
    grep -q ' 0 refused' /out/vduse-blk.log || fail "the daemon refused a request"
    # Unload vhost_vdpa so that the next device binds to virtio_vdpa (its dependencies stay).
    modprobe -r vhost_vdpa 2>/dev/null || true
    [ ! -d /sys/module/vhost_vdpa ] || fail "vhost_vdpa could not be unloaded"
    say "vduse-blk: PASS"
}

qsd() {
    name=qsd-blk0
    say "qemu-storage-daemon $(qemu-storage-daemon --version | head -n1): vduse-blk export of a 16 MiB file"
    dd if=/dev/zero of=/tmp/qsd.img bs=1M count=16 2>/dev/null
    qemu-storage-daemon \
        --blockdev driver=file,node-name=file0,filename=/tmp/qsd.img \
        --export type=vduse-blk,id=exp0,node-name=file0,name=$name,writable=on \
        >/out/qsd.log 2>&1 &
    pid=$!
    wait_for 10 test -c /dev/vduse/$name || fail "qemu-storage-daemon made no /dev/vduse/$name: $(cat /out/qsd.log)"
    vdpa dev add name $name mgmtdev vduse
    wait_for 10 has_disk $name || fail "no block device for $name"
    disk=$(disk_of $name)
    wait_for 5 test -b /dev/"$disk" || fail "no /dev/$disk"
    say "virtio_vdpa bound $name: /dev/$disk, $(cat /sys/block/"$disk"/size) sectors"
    vfu-vm-guest blkcheck /dev/"$disk" 4
    vdpa dev del $name
    kill -TERM $pid
    rc=0
    wait $pid || rc=$?
    cat /out/qsd.log
    [ $rc -eq 0 ] || fail "qemu-storage-daemon exited with $rc"
    say "qemu-storage-daemon: PASS"
}

case $part in
example) example ;;
qsd) qsd ;;
all) example; qsd ;;
*) fail "unknown part $part" ;;
esac
