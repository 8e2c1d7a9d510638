//! `vfu-vm-guest`: the checks the VM harness (scripts/vm/run.sh) runs inside the guest.
//!
//! ```text
//! vfu-vm-guest blkcheck /dev/vda 4          # 4 MiB of random data, O_DIRECT, written and read back
//! vfu-vm-guest vhost /dev/vhost-vdpa-0      # drive a VDUSE block device once through vhost-vdpa
//! ```
//!
//! `vhost` is a small vhost-vdpa user (rust-vmm's `vhost` crate): it negotiates features, maps 1 MiB
//! of a memfd at IOVA 0x100000 (the kernel sends the VDUSE daemon UPDATE_IOTLB), lays a split ring
//! out in it, starts the device, sends one GET_ID request and checks the answer, reads the ring base
//! back (GET_VQ_STATE), resets the device and unmaps the memory (UPDATE_IOTLB again). Exit 0 when
//! every check held; the last line says what was seen.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use vhost::vdpa::VhostVdpa;
use vhost::vhost_kern::VhostKernFeatures;
use vhost::vhost_kern::vdpa::VhostKernVdpa;
use vhost::{VhostBackend, VringConfigData};
use virtio_bindings::virtio_blk::{VIRTIO_BLK_ID_BYTES, VIRTIO_BLK_T_GET_ID};
use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_VERSION_1,
};
use virtio_bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use virtio_queue::desc::split::Descriptor;
use vm_memory::{Bytes, FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

type Fallible<T = ()> = Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = match args.as_slice() {
        ["blkcheck", dev, mib] => mib
            .parse()
            .map_err(|e| format!("MiB {mib:?}: {e}"))
            .and_then(|m| blkcheck(dev, m)),
        ["vhost", dev] => vhost(dev),
        _ => Err("usage: vfu-vm-guest blkcheck DEV MIB | vhost DEV".into()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vfu-vm-guest: FAIL: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A page-aligned window of `len` bytes in a vector (O_DIRECT needs aligned buffers).
struct Aligned {
    buf: Vec<u8>,
    at: usize,
    len: usize,
}

impl Aligned {
    fn new(len: usize) -> Self {
        let buf = vec![0u8; len + 4096];
        let at = buf.as_ptr().align_offset(4096);
        Aligned { buf, at, len }
    }
    fn get(&self) -> &[u8] {
        &self.buf[self.at..self.at + self.len]
    }
    fn get_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.at..self.at + self.len]
    }
}

/// Writes `mib` MiB of random data to the start of `dev` with O_DIRECT, reads it back with O_DIRECT
/// and compares.
fn blkcheck(dev: &str, mib: usize) -> Fallible {
    let len = mib << 20;
    let mut data = Aligned::new(len);
    let mut x = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0x9e37_79b9_7f4a_7c15, |d| d.as_nanos() as u64)
        | 1;
    for chunk in data.get_mut().chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let open = |write: bool| -> Fallible<File> {
        OpenOptions::new()
            .read(true)
            .write(write)
            .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
            .open(dev)
            .map_err(|e| format!("{dev} (O_DIRECT): {e}"))
    };
    let f = open(true)?;
    const CHUNK: usize = 1 << 20;
    for (i, c) in data.get().chunks(CHUNK).enumerate() {
        f.write_all_at(c, (i * CHUNK) as u64)
            .map_err(|e| format!("write at {}: {e}", i * CHUNK))?;
    }
    f.sync_all().map_err(|e| format!("fsync: {e}"))?;
    drop(f);
    let f = open(false)?;
    let mut back = Aligned::new(len);
    for (i, c) in back.get_mut().chunks_mut(CHUNK).enumerate() {
        f.read_exact_at(c, (i * CHUNK) as u64)
            .map_err(|e| format!("read at {}: {e}", i * CHUNK))?;
    }
    if let Some(at) = data.get().iter().zip(back.get()).position(|(a, b)| a != b) {
        return Err(format!("{dev}: byte {at} read back differs"));
    }
    println!(
        "blkcheck: {mib} MiB of random data written to {dev} with O_DIRECT read back identical"
    );
    Ok(())
}

const IOVA: u64 = 0x10_0000;
const SIZE: usize = 1 << 20;
const QUEUE: u16 = 8;
const DESC: u64 = IOVA;
const AVAIL: u64 = IOVA + 0x1000;
const USED: u64 = IOVA + 0x2000;
const HDR: u64 = IOVA + 0x3000;
const DATA: u64 = IOVA + 0x4000;
const STATUS: u64 = IOVA + 0x5000;

fn vhost(dev: &str) -> Fallible {
    let fd = rustix::fs::memfd_create("vfu-vm-guest", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| format!("memfd_create: {e}"))?;
    let file = File::from(fd);
    file.set_len(SIZE as u64)
        .map_err(|e| format!("memfd: {e}"))?;
    // Shared and file-backed, as vhost-vdpa needs to hand the memory to a VDUSE daemon.
    let mem = GuestMemoryMmap::<()>::from_ranges_with_files([(
        GuestAddress(IOVA),
        SIZE,
        Some(FileOffset::new(file, 0)),
    )])
    .map_err(|e| format!("mmap: {e}"))?;
    let host = mem
        .get_host_address(GuestAddress(IOVA))
        .map_err(|e| format!("{e}"))?;
    let e = |what: &'static str| move |err: vhost::Error| format!("{what}: {err}");

    let mut v = VhostKernVdpa::new(dev, &mem).map_err(e("open"))?;
    v.set_owner().map_err(e("VHOST_SET_OWNER"))?;
    let id = v.get_device_id().map_err(e("GET_DEVICE_ID"))?;
    let offered = v.get_features().map_err(e("VHOST_GET_FEATURES"))?;
    let backend = v
        .get_backend_features()
        .map_err(e("GET_BACKEND_FEATURES"))?;
    // vhost_types.h: VHOST_BACKEND_F_IOTLB_MSG_V2 is bit 1.
    v.set_backend_features(backend & (1 << 1))
        .map_err(e("SET_BACKEND_FEATURES"))?;
    v.set_status((VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER) as u8)
        .map_err(e("SET_STATUS 3"))?;
    let want = offered & (1 << VIRTIO_F_VERSION_1 | 1 << VIRTIO_F_ACCESS_PLATFORM);
    v.set_features(want).map_err(e("VHOST_SET_FEATURES"))?;
    let s =
        (VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK) as u8;
    v.set_status(s).map_err(e("SET_STATUS 0xb"))?;
    if v.get_status().map_err(e("GET_STATUS"))? & VIRTIO_CONFIG_S_FEATURES_OK as u8 == 0 {
        return Err("the device did not accept the features".into());
    }
    // The kernel turns this IOTLB update into the daemon's UPDATE_IOTLB.
    v.dma_map(IOVA, SIZE as u64, host, false)
        .map_err(e("IOTLB update"))?;

    v.set_vring_num(0, QUEUE).map_err(e("SET_VRING_NUM"))?;
    let ring = VringConfigData {
        queue_max_size: QUEUE,
        queue_size: QUEUE,
        flags: 0,
        desc_table_addr: DESC,
        used_ring_addr: USED,
        avail_ring_addr: AVAIL,
        log_addr: None,
    };
    v.set_vring_addr(0, &ring).map_err(e("SET_VRING_ADDR"))?;
    v.set_vring_base(0, 0).map_err(e("SET_VRING_BASE"))?;
    let kick = EventFd::new(EFD_NONBLOCK).map_err(|err| format!("eventfd: {err}"))?;
    let call = EventFd::new(EFD_NONBLOCK).map_err(|err| format!("eventfd: {err}"))?;
    v.set_vring_kick(0, &kick).map_err(e("SET_VRING_KICK"))?;
    v.set_vring_call(0, &call).map_err(e("SET_VRING_CALL"))?;
    v.set_vring_enable(0, true).map_err(e("SET_VRING_ENABLE"))?;
    v.set_status(s | VIRTIO_CONFIG_S_DRIVER_OK as u8)
        .map_err(e("SET_STATUS 0xf"))?;

    // One GET_ID request: header (device-readable), 20-byte id buffer and status byte (writable).
    let m = |r: Result<(), vm_memory::GuestMemoryError>| r.map_err(|err| format!("memory: {err}"));
    let mut hdr = [0u8; 16];
    hdr[..4].copy_from_slice(&VIRTIO_BLK_T_GET_ID.to_le_bytes());
    m(mem.write_slice(&hdr, GuestAddress(HDR)))?;
    m(mem.write_slice(&[0xa5; 21], GuestAddress(DATA)))?;
    m(mem.write_slice(&[0xa5], GuestAddress(STATUS)))?;
    let (next, write) = (VRING_DESC_F_NEXT as u16, VRING_DESC_F_WRITE as u16);
    let chain = [
        Descriptor::new(HDR, 16, next, 1),
        Descriptor::new(DATA, VIRTIO_BLK_ID_BYTES, write | next, 2),
        Descriptor::new(STATUS, 1, write, 0),
    ];
    for (i, d) in chain.iter().enumerate() {
        m(mem.write_obj(*d, GuestAddress(DESC + 16 * i as u64)))?;
    }
    m(mem.write_obj(0u16, GuestAddress(AVAIL + 4)))?; // ring[0] = head 0
    m(mem.write_obj(1u16, GuestAddress(AVAIL + 2)))?; // idx
    kick.write(1).map_err(|err| format!("kick: {err}"))?;

    let deadline = Instant::now() + Duration::from_secs(20);
    let used = loop {
        let used: u16 = mem
            .read_obj(GuestAddress(USED + 2))
            .map_err(|err| format!("memory: {err}"))?;
        if used != 0 || Instant::now() > deadline {
            break used;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if used != 1 {
        return Err(format!(
            "used idx is {used} after 20 s; the request was not served"
        ));
    }
    let mut idb = [0u8; 20];
    mem.read_slice(&mut idb, GuestAddress(DATA))
        .map_err(|err| format!("memory: {err}"))?;
    let status: u8 = mem
        .read_obj(GuestAddress(STATUS))
        .map_err(|err| format!("memory: {err}"))?;
    let len: u32 = mem
        .read_obj(GuestAddress(USED + 8))
        .map_err(|err| format!("memory: {err}"))?;
    let serial = String::from_utf8_lossy(&idb[..idb.iter().position(|&b| b == 0).unwrap_or(20)])
        .into_owned();
    if status != 0 || len != 21 {
        return Err(format!(
            "GET_ID answered status {status}, used length {len}"
        ));
    }
    let called = call.read().is_ok();

    // The kernel asks the daemon for the queue state (GET_VQ_STATE).
    let base = v.get_vring_base(0).map_err(e("GET_VRING_BASE"))?;
    v.set_status(0).map_err(e("SET_STATUS 0"))?;
    v.dma_unmap(IOVA, SIZE as u64)
        .map_err(e("IOTLB invalidate"))?;
    drop(v);
    let _ = std::io::stdout().flush();
    if base != 1 {
        return Err(format!("vring base is {base} after one request, not 1"));
    }
    println!(
        "vhost: device id {id}, features {want:#x} of {offered:#x}; GET_ID through vhost-vdpa answered {serial:?} \
         (used length {len}, interrupt {}); vring base {base}",
        if called { "seen" } else { "not seen" }
    );
    Ok(())
}
