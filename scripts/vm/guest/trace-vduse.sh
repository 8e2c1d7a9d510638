# Guest test for scripts/vm/run.sh (busybox sh, run as /test.sh): `vfu-dump trace` launching the
# vduse-blk example and then qemu-storage-daemon's vduse-blk export, while the kernel binds and
# uses each device (virtio_vdpa with an I/O check; for the example also vhost_vdpa). The tracer's
# captures (/out/trace-vduse-blk.pcapng, /out/trace-qsd.pcapng), its printed output and the daemons'
# logs go to /out, which the harness copies back.
#
#   scripts/vm/run.sh scripts/vm/guest/trace-vduse.sh [example|qsd|all]
set -eu
part=${1:-all}

. /common.sh

# Waits for the tracer $1 (which ends when its daemon does) and checks what it recorded.
finish() {
    rc=0
    wait "$1" || rc=$?
    [ $rc -eq 0 ] || fail "vfu-dump trace exited with $rc (the daemon's status): $(tail -n 5 /out/$2.txt)"
    vfu-dump validate --info /out/$2.pcapng >/out/$2-validate.txt || fail "validate: $(cat /out/$2-validate.txt)"
    grep -q 'VDUSE_CREATE_DEV = 0' /out/$2.txt || fail "no CREATE_DEV in the trace"
    grep -q 'VDUSE_SET_STATUS' /out/$2.txt || fail "no kernel request in the trace"
    say "$2: $(grep -c '^#' /out/$2.txt) records, validates clean"
}

example() {
    name=vduse-blk0
    say "vfu-dump trace -- vduse-blk: 16 MiB"
    vfu-dump trace -w /out/trace-vduse-blk.pcapng -- \
        vduse-blk --name $name --size-mib 16 --resize-mib 32 2>/out/vduse-blk.log \
        >/out/trace-vduse-blk.txt &
    tracer=$!
    wait_for 20 grep -q 'ready:' /out/vduse-blk.log || fail "the daemon did not start: $(cat /out/vduse-blk.log)"
    pid=$(pid_of vduse-blk) || fail "no vduse-blk process"
    vdpa dev add name $name mgmtdev vduse
    wait_for 20 has_disk $name || fail "no block device for $name under virtio_vdpa"
    disk=$(disk_of $name)
    wait_for 5 test -b /dev/"$disk" || fail "no /dev/$disk"
    vfu-vm-guest blkcheck /dev/"$disk" 4
    kill -USR1 $pid
    sleep 1
    vhost_check $name
    vdpa dev del $name
    kill -TERM $pid
    finish $tracer trace-vduse-blk
    modprobe -r vhost_vdpa 2>/dev/null || true
}

qsd() {
    name=qsd-blk0
    say "vfu-dump trace -- qemu-storage-daemon: vduse-blk export of a 16 MiB file"
    dd if=/dev/zero of=/tmp/qsd.img bs=1M count=16 2>/dev/null
    vfu-dump trace -w /out/trace-qsd.pcapng -- qemu-storage-daemon \
        --blockdev driver=file,node-name=file0,filename=/tmp/qsd.img \
        --export type=vduse-blk,id=exp0,node-name=file0,name=$name,writable=on \
        >/out/trace-qsd.txt 2>/out/qsd.log &
    tracer=$!
    wait_for 20 test -c /dev/vduse/$name || fail "qemu-storage-daemon made no /dev/vduse/$name: $(cat /out/qsd.log)"
    pid=$(pid_of qemu-storage) || fail "no qemu-storage-daemon process"
    vdpa dev add name $name mgmtdev vduse
    wait_for 20 has_disk $name || fail "no block device for $name"
    disk=$(disk_of $name)
    wait_for 5 test -b /dev/"$disk" || fail "no /dev/$disk"
    vfu-vm-guest blkcheck /dev/"$disk" 4
    vdpa dev del $name
    kill -TERM $pid
    finish $tracer trace-qsd
}

case $part in
example) example ;;
qsd) qsd ;;
all) example; qsd ;;
*) fail "unknown part $part" ;;
esac
