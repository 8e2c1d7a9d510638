//! `vduse-blk`: a virtio-blk device in userspace, served through VDUSE, whose every VDUSE message and
//! ioctl argument goes through vfu-codec's types.
//!
//! It creates `/dev/vduse/NAME` (VDUSE_CREATE_DEV with a virtio-blk configuration space), sets up
//! its virtqueue, answers every control request the kernel sends (SET_STATUS, GET_VQ_STATE,
//! UPDATE_IOTLB; anything else FAILED), serves the split virtqueue (read, write, flush, get-id)
//! from a disk held in memory through the IOTLB descriptors (VDUSE_IOTLB_GET_FD), changes its
//! capacity on SIGUSR1 (VDUSE_DEV_SET_CONFIG and VDUSE_DEV_INJECT_CONFIG_IRQ), and destroys the
//! device on SIGTERM or SIGINT (VDUSE_DESTROY_DEV). `--capture FILE` records every request and
//! response in the project's capture format.
//!
//! ```text
//! modprobe vduse virtio_vdpa
//! vduse-blk --name blk0 --size-mib 16 --capture blk0.pcapng &
//! vdpa dev add name blk0 mgmtdev vduse      # /dev/vda appears
//! kill -USR1 %1                             # capacity 32 MiB
//! vdpa dev del blk0; kill %1                # the daemon destroys the device and exits
//! vfu-dump read blk0.pcapng
//! ```

mod blk;
mod control;
mod sys;

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use rustix::event::{EventfdFlags, PollFd, PollFlags, eventfd, poll};
use vfu_codec::Direction;
use vfu_codec::capture::{self as pcapng, DISSECTOR_VDUSE, IF_NAME_VDUSE, Packet};
use vfu_codec::vduse::{
    VDUSE_ACCESS_RO, VDUSE_ACCESS_WO, VDUSE_API_VERSION, VDUSE_CREATE_DEV, VDUSE_DESTROY_DEV,
    VDUSE_DEV_INJECT_CONFIG_IRQ, VDUSE_DEV_SET_CONFIG, VDUSE_GET_API_VERSION, VDUSE_IOTLB_GET_FD,
    VDUSE_MSG_SIZE, VDUSE_NAME_MAX, VDUSE_SET_API_VERSION, VDUSE_VQ_GET_INFO, VDUSE_VQ_INJECT_IRQ,
    VDUSE_VQ_SETUP, VDUSE_VQ_SETUP_KICKFD, VduseConfigData, VduseDevConfig, VduseIotlbEntry,
    VduseVqConfig, VduseVqEventfd, VduseVqInfo,
};
use virtio_bindings::virtio_ids::VIRTIO_ID_BLOCK;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::mmap::MmapRegion;
use vm_memory::{FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestRegionMmap};
use zerocopy::IntoBytes;
use zerocopy::native_endian::{I32, U16, U32, U64};

use blk::Disk;
use control::{Backend, Control};

/// A virtio-blk device served through VDUSE (/dev/vduse/NAME), built on vfu-codec.
#[derive(Parser, Debug)]
#[command(
    name = "vduse-blk",
    after_help = "Examples:\n  \
        vduse-blk --name blk0 --size-mib 16 &\n  \
        vdpa dev add name blk0 mgmtdev vduse        # /dev/vda appears (virtio_vdpa)\n  \
        kill -USR1 %1                               # capacity becomes --resize-mib\n  \
        vdpa dev del blk0; kill %1                  # destroys the device, exits 0\n\n  \
        vduse-blk --name blk0 --size-mib 16 --capture blk0.pcapng\n  \
        vfu-dump read blk0.pcapng                   # every request and response\n\n\
        Needs the vduse module and root. Signals: SIGUSR1 changes the capacity, SIGTERM or SIGINT\n\
        destroys the device (detach it with `vdpa dev del` first) and exits."
)]
struct Args {
    /// Device name: /dev/vduse/NAME and the vdpa device name (at most 255 bytes, no NUL).
    #[arg(long)]
    name: String,
    /// Disk size in MiB, held in memory.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    size_mib: u32,
    /// Capacity after SIGUSR1, in MiB [default: twice --size-mib].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=8192))]
    resize_mib: Option<u32>,
    /// Write every request and response to FILE in the project's capture format (pcapng).
    #[arg(long, value_name = "FILE")]
    capture: Option<PathBuf>,
    /// Largest virtqueue size offered (a power of two, 2 to 32768).
    #[arg(long, default_value_t = 256, value_parser = queue_size)]
    queue_size: u16,
}

fn queue_size(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(n) if n >= 2 && n.is_power_of_two() => Ok(n),
        _ => Err(format!("{s} is not a power of two from 2 to 32768")),
    }
}

fn log(msg: impl std::fmt::Display) {
    eprintln!("vduse-blk: {msg}");
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Records requests and responses in the capture format: one interface, `vduse:0:/dev/vduse/NAME`.
struct Capture {
    out: BufWriter<File>,
    buf: Vec<u8>,
}

impl Capture {
    fn create(path: &PathBuf, device: &str) -> io::Result<Self> {
        let mut c = Capture {
            out: BufWriter::new(File::create(path)?),
            buf: vec![0; 512],
        };
        let if_name = format!("{IF_NAME_VDUSE}0:{device}");
        let n = pcapng::write_shb(&mut c.buf).map_err(other)?;
        c.out.write_all(&c.buf[..n])?;
        c.buf.resize(pcapng::idb_len(&if_name), 0);
        let n = pcapng::write_idb(&if_name, &mut c.buf).map_err(other)?;
        c.out.write_all(&c.buf[..n])?;
        c.out.flush()?;
        Ok(c)
    }

    /// One message; flushed at once, so that a daemon that is killed loses nothing it answered.
    fn record(&mut self, direction: Direction, data: &[u8], ts_ns: u64) -> io::Result<()> {
        let p = Packet {
            interface: 0,
            ts_ns,
            dissector: DISSECTOR_VDUSE,
            direction,
            fds: 0,
            truncated: data.len() != VDUSE_MSG_SIZE,
            data,
            orig_len: data.len(),
        };
        self.buf.resize(pcapng::epb_len(&p), 0);
        let n = pcapng::write_epb(&p, &mut self.buf).map_err(other)?;
        self.out.write_all(&self.buf[..n])?;
        self.out.flush()
    }
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// One IOVA region mapped from a VDUSE_IOTLB_GET_FD descriptor.
struct Map {
    start: u64,
    last: u64,
    region: Arc<GuestRegionMmap>,
}

/// The driver's memory as the device sees it: the IOTLB regions, mapped, looked up again after
/// UPDATE_IOTLB or a reset.
#[derive(Default)]
struct Memory {
    maps: Vec<Map>,
    mem: Option<GuestMemoryMmap>,
}

/// At most this many regions are looked up (the kernel has the bounce map, a few coherent maps for
/// the rings, or the regions a vhost-vdpa user mapped).
const MAX_REGIONS: usize = 1024;
/// A region larger than this is not mapped (the bounce map is 64 MiB by default).
const MAX_REGION: u64 = 1 << 36;

impl Memory {
    fn drop_range(&mut self, start: u64, last: u64) {
        self.maps.retain(|m| m.last < start || m.start > last);
        self.mem = None;
    }

    fn clear(&mut self) {
        self.maps.clear();
        self.mem = None;
    }

    /// The memory, looking up with VDUSE_IOTLB_GET_FD every region not mapped yet.
    fn get(&mut self, dev: &File) -> io::Result<&GuestMemoryMmap> {
        if self.mem.is_none() {
            self.refresh(dev)?;
        }
        self.mem
            .as_ref()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the IOTLB has no region"))
    }

    fn refresh(&mut self, dev: &File) -> io::Result<()> {
        let mut start = 0u64;
        for _ in 0..MAX_REGIONS {
            let mut e = VduseIotlbEntry {
                start: U64::new(start),
                last: U64::new(u64::MAX),
                ..Default::default()
            };
            let fd = match sys::io_read_write(dev, VDUSE_IOTLB_GET_FD, &mut e) {
                Ok(fd) => sys::owned_fd(fd)?,
                // EINVAL: no region at or after `start`.
                Err(err) if err.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                    break;
                }
                Err(err) => return Err(err),
            };
            let (s, l) = (e.start.get(), e.last.get());
            if l < s || l < start {
                return Err(other(format!(
                    "IOTLB_GET_FD returned [{s:#x}, {l:#x}] for {start:#x}"
                )));
            }
            if !self.maps.iter().any(|m| m.start == s && m.last == l) {
                // A region that overlaps it is one the kernel replaced without saying so.
                self.maps.retain(|m| m.last < s || m.start > l);
                self.map(fd, &e)?;
            }
            match l.checked_add(1) {
                Some(next) => start = next,
                None => break,
            }
        }
        self.maps.sort_by_key(|m| m.start);
        let regions = self.maps.iter().map(|m| Arc::clone(&m.region)).collect();
        self.mem = GuestMemoryMmap::from_arc_regions(regions).ok();
        Ok(())
    }

    fn map(&mut self, fd: OwnedFd, e: &VduseIotlbEntry) -> io::Result<()> {
        let (start, last, perm) = (e.start.get(), e.last.get(), e.perm);
        let size = last - start + 1;
        if size > MAX_REGION || perm == VDUSE_ACCESS_WO {
            // A write-only descriptor cannot be mapped (mmap needs read access); requests that
            // point there find no memory and are not served.
            log(format!(
                "IOVA [{start:#x}, {last:#x}] not mapped ({} bytes, perm {perm})",
                size
            ));
            return Ok(());
        }
        let rw = (rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE).bits() as i32;
        // A read-only region is mapped private: a request that writes there (against the driver's
        // word) changes a private copy instead of faulting.
        let flags = if perm == VDUSE_ACCESS_RO {
            rustix::mm::MapFlags::PRIVATE.bits() as i32
        } else {
            rustix::mm::MapFlags::SHARED.bits() as i32
        };
        let file = File::from(fd);
        let region = MmapRegion::build(
            Some(FileOffset::new(file, e.offset.get())),
            size as usize,
            rw,
            flags,
        )
        .map_err(|err| other(format!("mmap of IOVA [{start:#x}, {last:#x}]: {err}")))?;
        let region = GuestRegionMmap::new(region, GuestAddress(start))
            .ok_or_else(|| other(format!("IOVA [{start:#x}, {last:#x}] overflows")))?;
        log(format!(
            "mapped IOVA [{start:#x}, {last:#x}] (perm {perm}, offset {:#x})",
            e.offset.get()
        ));
        self.maps.push(Map {
            start,
            last,
            region: Arc::new(region),
        });
        Ok(())
    }
}

/// One virtqueue: the ring while the driver runs it, its kick eventfd, the avail index last known.
struct Vq {
    queue: Option<Queue>,
    kick: OwnedFd,
    avail: u16,
}

struct Device {
    dev: File,
    disk: Disk,
    vqs: Vec<Vq>,
    memory: Memory,
    max_size: u16,
    /// Queues to serve once the current request is answered (set by DRIVER_OK).
    pending_kick: bool,
    /// Control requests read, and how many of them were refused (answered FAILED or unreadable).
    requests: u64,
    refused: u64,
}

impl Backend for Device {
    fn num_queues(&self) -> u32 {
        self.vqs.len() as u32
    }

    fn driver_ok(&mut self) -> Result<(), String> {
        for (i, vq) in self.vqs.iter_mut().enumerate() {
            let mut info = VduseVqInfo {
                index: U32::new(i as u32),
                ..Default::default()
            };
            sys::io_read_write(&self.dev, VDUSE_VQ_GET_INFO, &mut info)
                .map_err(|e| format!("VDUSE_VQ_GET_INFO {i}: {e}"))?;
            let avail = info.split().avail_index.get();
            log(format!(
                "queue {i}: num {} desc {:#x} driver {:#x} device {:#x} avail_index {avail} ready {}",
                info.num.get(),
                info.desc_addr.get(),
                info.driver_addr.get(),
                info.device_addr.get(),
                info.ready
            ));
            vq.avail = avail;
            if !info.is_ready() {
                vq.queue = None;
                continue;
            }
            let mut q = Queue::new(self.max_size).map_err(|e| format!("queue {i}: {e}"))?;
            let num =
                u16::try_from(info.num.get()).map_err(|_| format!("queue {i}: num too large"))?;
            q.try_set_size(num)
                .map_err(|e| format!("queue {i} size {num}: {e}"))?;
            q.try_set_desc_table_address(GuestAddress(info.desc_addr.get()))
                .map_err(|e| format!("queue {i} desc: {e}"))?;
            q.try_set_avail_ring_address(GuestAddress(info.driver_addr.get()))
                .map_err(|e| format!("queue {i} driver area: {e}"))?;
            q.try_set_used_ring_address(GuestAddress(info.device_addr.get()))
                .map_err(|e| format!("queue {i} device area: {e}"))?;
            q.set_next_avail(avail);
            q.set_next_used(avail);
            q.set_ready(true);
            vq.queue = Some(q);
            let kick = VduseVqEventfd {
                index: U32::new(i as u32),
                fd: I32::new(std::os::fd::AsRawFd::as_raw_fd(&vq.kick)),
            };
            sys::io_write(&self.dev, VDUSE_VQ_SETUP_KICKFD, &kick)
                .map_err(|e| format!("VDUSE_VQ_SETUP_KICKFD {i}: {e}"))?;
        }
        self.memory.clear();
        self.pending_kick = true;
        Ok(())
    }

    fn reset(&mut self) {
        for vq in &mut self.vqs {
            if let Some(q) = vq.queue.take() {
                vq.avail = q.next_avail();
            }
        }
        self.memory.clear();
    }

    fn avail_index(&mut self, index: u32) -> u16 {
        match self.vqs.get(index as usize) {
            Some(Vq { queue: Some(q), .. }) => q.next_avail(),
            Some(vq) => vq.avail,
            None => 0,
        }
    }

    fn iotlb_changed(&mut self, start: u64, last: u64) {
        self.memory.drop_range(start, last);
    }
}

impl Device {
    /// Serves every available request of queue `i`, then interrupts the driver if any was served.
    ///
    /// The kernel adds IOVA regions without telling the daemon (the bounce map appears with the
    /// first streaming DMA mapping, after DRIVER_OK), so a request whose buffers lie outside the
    /// regions mapped so far makes the memory be looked up again, once per call, before it is served.
    fn serve_queue(&mut self, i: usize) {
        let Some(vq) = self.vqs.get_mut(i) else {
            return;
        };
        // Drain the kick counter (non-blocking; nothing to read is fine).
        let mut count = [0u8; 8];
        let _ = rustix::io::read(&vq.kick, &mut count);
        let mut served = 0u32;
        let mut looked_again = false;
        loop {
            match self.serve_some(i, !looked_again) {
                Ok(n) => {
                    served += n;
                    break;
                }
                Err(n) => {
                    served += n;
                    looked_again = true;
                    self.memory.mem = None;
                }
            }
        }
        if served > 0 {
            let index = i as u32;
            if let Err(e) = sys::io_write(&self.dev, VDUSE_VQ_INJECT_IRQ, &index) {
                log(format!("VDUSE_VQ_INJECT_IRQ {i}: {e}"));
            }
        }
    }

    /// Serves requests of queue `i` until none is left (`Ok(served)`), or, when `stop_on_miss`, until
    /// one has a buffer outside the mapped memory (`Err(served)`; that request is left in the ring).
    fn serve_some(&mut self, i: usize, stop_on_miss: bool) -> Result<u32, u32> {
        let Device {
            dev,
            disk,
            vqs,
            memory,
            ..
        } = self;
        let Some(q) = vqs.get_mut(i).and_then(|vq| vq.queue.as_mut()) else {
            return Ok(0);
        };
        let mem = match memory.get(dev) {
            Ok(m) => m,
            Err(e) => {
                log(format!("queue {i}: no memory to serve it: {e}"));
                return Ok(0);
            }
        };
        let mut served = 0u32;
        loop {
            if let Err(e) = q.disable_notification(mem) {
                log(format!("queue {i}: {e}"));
                return Ok(served);
            }
            while let Some(chain) = q.pop_descriptor_chain(mem) {
                let head = chain.head_index();
                let mapped = chain
                    .clone()
                    .all(|d| mem.check_range(d.addr(), d.len() as usize));
                if !mapped && stop_on_miss {
                    q.go_to_previous_position();
                    return Err(served);
                }
                let s = disk.serve(mem, chain);
                if s.status != Some(0) {
                    log(format!("queue {i}: request at head {head}: {s:?}"));
                }
                if let Err(e) = q.add_used(mem, head, s.written) {
                    log(format!("queue {i}: add_used: {e}"));
                }
                served += 1;
            }
            match q.enable_notification(mem) {
                Ok(true) => continue,
                Ok(false) => return Ok(served),
                Err(e) => {
                    log(format!("queue {i}: {e}"));
                    return Ok(served);
                }
            }
        }
    }

    /// Changes the capacity: the disk grows or shrinks, the configuration space's `capacity` is
    /// rewritten (VDUSE_DEV_SET_CONFIG) and the driver told (VDUSE_DEV_INJECT_CONFIG_IRQ).
    fn resize(&mut self, bytes: usize) -> io::Result<()> {
        self.disk.data.resize(bytes, 0);
        let sectors = self.disk.sectors().to_le_bytes();
        let head = VduseConfigData {
            offset: U32::new(blk::CAPACITY_OFFSET as u32),
            length: U32::new(sectors.len() as u32),
        };
        let mut arg = head.as_bytes().to_vec();
        arg.extend_from_slice(&sectors);
        sys::io_write_with_tail(&self.dev, VDUSE_DEV_SET_CONFIG, &arg, sectors.len())?;
        sys::io_none(&self.dev, VDUSE_DEV_INJECT_CONFIG_IRQ)?;
        log(format!("capacity is now {} sectors", self.disk.sectors()));
        Ok(())
    }
}

/// Handles one readable device: reads a request, answers it, records both.
fn control_request(
    device: &mut Device,
    control: &mut Control,
    capture: &mut Option<Capture>,
) -> io::Result<()> {
    let mut buf = [0u8; 2 * VDUSE_MSG_SIZE];
    let n = match device.dev.read(&mut buf) {
        Ok(n) => n,
        Err(e)
            if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted =>
        {
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let req = &buf[..n];
    if let Some(c) = capture {
        c.record(Direction::ClientToServer, req, now_ns())?;
    }
    let h = control.handle(req, device);
    log(&h.log);
    device.requests += 1;
    device.refused += u64::from(h.refused);
    if let Some(resp) = h.response {
        let ts = now_ns();
        if let Some(c) = capture {
            c.record(Direction::ServerToClient, &resp, ts)?;
        }
        // A refused write (the kernel gave up waiting, or no longer knows the id) is the kernel's
        // answer to this response, not a reason to stop serving the others.
        match device.dev.write(&resp) {
            Ok(w) if w == resp.len() => {}
            Ok(w) => log(format!(
                "wrote {w} of the {} bytes of the response",
                resp.len()
            )),
            Err(e) => log(format!("the kernel refused the response: {e}")),
        }
    }
    if device.pending_kick {
        device.pending_kick = false;
        for i in 0..device.vqs.len() {
            device.serve_queue(i);
        }
    }
    Ok(())
}

fn name_buf(name: &str) -> [u8; VDUSE_NAME_MAX] {
    let mut b = [0u8; VDUSE_NAME_MAX];
    b[..name.len()].copy_from_slice(name.as_bytes());
    b
}

fn open_rw(path: &str, nonblock: bool) -> io::Result<File> {
    let flags = if nonblock {
        rustix::fs::OFlags::NONBLOCK.bits() as i32
    } else {
        0
    };
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(flags)
        .open(path)
}

fn create(ctrl: &File, args: &Args) -> Result<(), String> {
    let mut version = 0u64;
    sys::io_read_write(ctrl, VDUSE_GET_API_VERSION, &mut version)
        .map_err(|e| format!("VDUSE_GET_API_VERSION: {e}"))?;
    sys::io_write(ctrl, VDUSE_SET_API_VERSION, &VDUSE_API_VERSION)
        .map_err(|e| format!("VDUSE_SET_API_VERSION {VDUSE_API_VERSION}: {e}"))?;
    let space = blk::config_space(u64::from(args.size_mib) << 20);
    let mut config = VduseDevConfig {
        vendor_id: U32::new(0),
        device_id: U32::new(VIRTIO_ID_BLOCK),
        features: U64::new(blk::FEATURES),
        vq_num: U32::new(1),
        vq_align: U32::new(4096),
        config_size: U32::new(space.len() as u32),
        ..Default::default()
    };
    if !config.set_name(args.name.as_bytes()) {
        return Err(format!(
            "device name {:?}: at most {} bytes and no NUL",
            args.name,
            VDUSE_NAME_MAX - 1
        ));
    }
    let mut arg = config.as_bytes().to_vec();
    arg.extend_from_slice(&space);
    sys::io_write_with_tail(ctrl, VDUSE_CREATE_DEV, &arg, space.len())
        .map_err(|e| format!("VDUSE_CREATE_DEV {}: {e}", args.name))?;
    log(format!(
        "created {} (kernel VDUSE API {version}, set {VDUSE_API_VERSION}): {} MiB, features {:#x}",
        args.name,
        args.size_mib,
        blk::FEATURES
    ));
    Ok(())
}

fn destroy(ctrl: &File, name: &str) -> bool {
    match sys::io_write(ctrl, VDUSE_DESTROY_DEV, &name_buf(name)) {
        Ok(_) => {
            log(format!("VDUSE_DESTROY_DEV {name}: ok"));
            true
        }
        Err(e) => {
            log(format!(
                "VDUSE_DESTROY_DEV {name}: {e} (is it still attached? `vdpa dev del {name}` first)"
            ));
            false
        }
    }
}

fn setup(args: &Args, path: &str) -> Result<Device, String> {
    let mut dev = Err(io::Error::other("not tried"));
    // devtmpfs makes the node as the device is created; give it a moment all the same.
    for _ in 0..50 {
        dev = open_rw(path, true);
        if dev.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let dev = dev.map_err(|e| format!("{path}: {e}"))?;
    let vq = VduseVqConfig {
        index: U32::new(0),
        max_size: U16::new(args.queue_size),
        ..Default::default()
    };
    sys::io_write(&dev, VDUSE_VQ_SETUP, &vq).map_err(|e| format!("VDUSE_VQ_SETUP 0: {e}"))?;
    let kick = eventfd(0, EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC)
        .map_err(|e| format!("eventfd: {e}"))?;
    Ok(Device {
        dev,
        disk: Disk::new((args.size_mib as usize) << 20),
        vqs: vec![Vq {
            queue: None,
            kick,
            avail: 0,
        }],
        memory: Memory::default(),
        max_size: args.queue_size,
        pending_kick: false,
        requests: 0,
        refused: 0,
    })
}

fn signal_pipe(signals: &[i32]) -> io::Result<UnixStream> {
    let (rx, tx) = UnixStream::pair()?;
    rx.set_nonblocking(true)?;
    for &s in signals {
        signal_hook::low_level::pipe::register(s, tx.try_clone()?)?;
    }
    Ok(rx)
}

fn run(args: &Args) -> Result<(), String> {
    let ctrl = open_rw("/dev/vduse/control", false).map_err(|e| {
        format!("/dev/vduse/control: {e} (is the vduse module loaded, are you root?)")
    })?;
    create(&ctrl, args)?;
    let path = format!("/dev/vduse/{}", args.name);
    let outcome = serve(args, &path);
    // The device node must be closed (Device dropped in serve) before the device can go.
    let destroyed = destroy(&ctrl, &args.name);
    outcome?;
    if destroyed {
        Ok(())
    } else {
        Err("the device was not destroyed".into())
    }
}

fn serve(args: &Args, path: &str) -> Result<(), String> {
    let mut device = setup(args, path)?;
    let mut capture = match &args.capture {
        Some(p) => Some(Capture::create(p, path).map_err(|e| format!("{}: {e}", p.display()))?),
        None => None,
    };
    let term = signal_pipe(&[signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT])
        .map_err(|e| format!("signals: {e}"))?;
    let usr1 = signal_pipe(&[signal_hook::consts::SIGUSR1]).map_err(|e| format!("signals: {e}"))?;
    let resize = (args.resize_mib.unwrap_or(args.size_mib.saturating_mul(2)) as usize) << 20;
    let mut control = Control::new();
    log(format!(
        "ready: {path}; attach it with `vdpa dev add name {} mgmtdev vduse`",
        args.name
    ));
    loop {
        let (dev_in, term_in, usr1_in, kicks) = {
            let mut fds = vec![
                PollFd::new(&device.dev, PollFlags::IN),
                PollFd::new(&term, PollFlags::IN),
                PollFd::new(&usr1, PollFlags::IN),
            ];
            for vq in &device.vqs {
                fds.push(PollFd::new(&vq.kick, PollFlags::IN));
            }
            match poll(&mut fds, None) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(format!("poll: {e}")),
            }
            let ready = |f: &PollFd<'_>| !f.revents().is_empty();
            let kicks: Vec<bool> = fds[3..].iter().map(ready).collect();
            (ready(&fds[0]), ready(&fds[1]), ready(&fds[2]), kicks)
        };
        if term_in {
            log("SIGTERM: stopping");
            break;
        }
        if usr1_in {
            let mut b = [0u8; 16];
            let _ = (&usr1).read(&mut b);
            if let Err(e) = device.resize(resize) {
                log(format!("resize: {e}"));
            }
        }
        if dev_in {
            control_request(&mut device, &mut control, &mut capture)
                .map_err(|e| format!("{path}: {e}"))?;
        }
        for (i, k) in kicks.into_iter().enumerate() {
            if k {
                device.serve_queue(i);
            }
        }
    }
    log(format!(
        "{} control requests, {} refused",
        device.requests, device.refused
    ));
    drop(device);
    if let Some(c) = capture {
        c.out.into_inner().map_err(|e| format!("capture: {e}"))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log(format!("error: {e}"));
            ExitCode::FAILURE
        }
    }
}
