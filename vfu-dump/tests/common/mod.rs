//! A device and a client session on the rust-vmm `vfio_user` crate, shared by `tests/proxy.rs`
//! (the session directly and through the proxy) and `tests/replay.rs` (the session recorded,
//! replayed against a fresh device and served to a fresh client).
//!
//! Where the crate departs from the spec is said where each test file depends on it.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::thread::JoinHandle;

use vfio_bindings::bindings::vfio::{
    VFIO_IRQ_INFO_EVENTFD, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_DATA_EVENTFD,
    VFIO_REGION_INFO_FLAG_MMAP, VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE,
    vfio_region_info, vfio_region_sparse_mmap_area,
};
use vfio_user::{
    Client, DmaMapFlags, DmaUnmapFlags, IrqInfo, Server, ServerBackend, ServerRegion, SparseArea,
};
use vm_memory::{Bytes, FileOffset, MmapRegion, VolatileMemory};

const DOORBELL: u64 = 0x100;
const IOVA: u64 = 0x10_0000;

/// A device: BAR0 is plain memory, except that a write to DOORBELL makes the device write the
/// written bytes into the start of the DMA window (through its mapping of the client's memfd) and
/// then trigger interrupt 0 (the client's eventfd).
///
/// It asserts what the session sends (region 0, the window at IOVA, one eventfd for IRQ 0), so a
/// proxy or a replay that changed a request on the way fails the test at the server.
struct Device {
    bar0: Vec<u8>,
    dma: Option<MmapRegion>,
    irq: Option<File>,
}

impl ServerBackend for Device {
    fn region_read(&mut self, region: u32, offset: u64, data: &mut [u8]) -> io::Result<()> {
        assert_eq!(region, 0);
        let o = offset as usize;
        let src = self
            .bar0
            .get(o..o + data.len())
            .ok_or_else(|| io::Error::other("outside BAR0"))?;
        data.copy_from_slice(src);
        Ok(())
    }

    fn region_write(&mut self, region: u32, offset: u64, data: &[u8]) -> io::Result<()> {
        assert_eq!(region, 0);
        if offset == DOORBELL {
            let dma = self
                .dma
                .as_ref()
                .ok_or_else(|| io::Error::other("no DMA window"))?;
            dma.get_slice(0, data.len())
                .map_err(io::Error::other)?
                .write_slice(data, 0)
                .map_err(io::Error::other)?;
            self.irq
                .as_ref()
                .ok_or_else(|| io::Error::other("no eventfd"))?
                .write_all(&1u64.to_ne_bytes())?;
            return Ok(());
        }
        let o = offset as usize;
        self.bar0
            .get_mut(o..o + data.len())
            .ok_or_else(|| io::Error::other("outside BAR0"))?
            .copy_from_slice(data);
        Ok(())
    }

    fn dma_map(
        &mut self,
        flags: DmaMapFlags,
        offset: u64,
        address: u64,
        size: u64,
        fd: Option<File>,
    ) -> io::Result<()> {
        assert_eq!((flags, address), (DmaMapFlags::READ_WRITE, IOVA));
        let fd = fd.ok_or_else(|| io::Error::other("DMA_MAP without a descriptor"))?;
        // The memfd must be at least offset + size long: the device writes through the mapping.
        if fd.metadata()?.len() < offset + size {
            return Err(io::Error::other("DMA memfd too small"));
        }
        self.dma = Some(
            MmapRegion::from_file(FileOffset::new(fd, offset), size as usize)
                .map_err(io::Error::other)?,
        );
        Ok(())
    }

    fn dma_unmap(&mut self, _flags: DmaUnmapFlags, address: u64, _size: u64) -> io::Result<()> {
        assert_eq!(address, IOVA);
        self.dma = None;
        Ok(())
    }

    fn reset(&mut self) -> io::Result<()> {
        self.bar0.fill(0);
        Ok(())
    }

    fn set_irqs(
        &mut self,
        index: u32,
        _flags: u32,
        _start: u32,
        count: u32,
        mut fds: Vec<File>,
    ) -> io::Result<()> {
        assert_eq!((index, count, fds.len()), (0, 1, 1));
        self.irq = fds.pop();
        Ok(())
    }
}

/// How [`serve`] lays out the device. The two test files keep the layouts their captures were
/// written against: the number of regions and IRQ indices decides how many DEVICE_GET_REGION_INFO
/// requests the client sends, and BAR0's size is what a replay against a changed server sees differ.
#[derive(Clone, Copy)]
pub struct Layout {
    /// BAR0's size in bytes.
    pub bar0_size: u64,
    /// Whether BAR1 is mmap-able: its info reply then carries a sparse-mmap capability (one area
    /// over all of it) and a memfd of the server's whose first bytes are `BAR1 mem`.
    pub bar1_mmap: bool,
    /// The regions and IRQ indices of a PCI device (9 and 5, the ones after BAR1 and IRQ 0 empty),
    /// or only BAR0, BAR1 and IRQ 0.
    pub pci: bool,
}

/// Serves one client at `path` (the crate's `Server::run` serves exactly one) with the [`Device`]
/// laid out as `layout` says.
pub fn serve(path: &Path, layout: Layout) -> JoinHandle<Result<(), String>> {
    let bar1_mem = layout.bar1_mmap.then(|| {
        let fd = rustix::fs::memfd_create("bar1", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, 0x1000).unwrap();
        rustix::io::pwrite(&fd, b"BAR1 mem", 0).unwrap();
        fd
    });
    let rw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
    let mut regions = vec![
        ServerRegion {
            region_info: vfio_region_info {
                argsz: 32,
                flags: rw,
                index: 0,
                cap_offset: 0,
                size: layout.bar0_size,
                offset: 0,
            },
            sparse_areas: vec![],
            mmap_fd: None,
        },
        ServerRegion {
            region_info: vfio_region_info {
                argsz: 32,
                flags: rw
                    | if layout.bar1_mmap {
                        VFIO_REGION_INFO_FLAG_MMAP
                    } else {
                        0
                    },
                index: 1,
                cap_offset: 0,
                size: 0x1000,
                offset: 0,
            },
            sparse_areas: bar1_mem
                .iter()
                .map(|_| SparseArea {
                    area: vfio_region_sparse_mmap_area {
                        offset: 0,
                        size: 0x1000,
                    },
                })
                .collect(),
            mmap_fd: bar1_mem.as_ref().map(AsRawFd::as_raw_fd),
        },
    ];
    let mut irqs = vec![IrqInfo {
        index: 0,
        flags: VFIO_IRQ_INFO_EVENTFD,
        count: 1,
    }];
    if layout.pci {
        // A PCI device has 9 regions (BAR0-5, ROM, CONFIG, VGA) and 5 IRQ indices; the rest are
        // empty.
        for index in 2..9 {
            regions.push(ServerRegion {
                region_info: vfio_region_info {
                    argsz: 32,
                    index,
                    ..Default::default()
                },
                sparse_areas: vec![],
                mmap_fd: None,
            });
        }
        irqs.extend((1..5).map(|index| IrqInfo {
            index,
            flags: VFIO_IRQ_INFO_EVENTFD,
            count: 0,
        }));
    }
    let server = Server::new(path, true, irqs, regions).unwrap();
    std::thread::spawn(move || {
        // The server has only the memfd's number: it must stay open while the server runs.
        let _keep = bar1_mem;
        let mut dev = Device {
            bar0: vec![0; layout.bar0_size as usize],
            dma: None,
            irq: None,
        };
        server.run(&mut dev).map_err(|e| e.to_string())
    })
}

/// What [`session`] notes beyond the regions, IRQ 0's info and BAR0's contents.
#[derive(Clone, Copy)]
pub struct Checks {
    /// Wait for the interrupt and note what the device's DMA wrote into guest memory
    /// (`guest memory "DMA works"`). Only a live [`Device`] does either; a replayed recording
    /// serving the client does not.
    pub device: bool,
    /// With `device`, also note how many interrupts the eventfd counted (`interrupts 1`).
    pub interrupt_count: bool,
    /// When BAR1 came with a descriptor, note its first bytes (`region 1 memory "BAR1 mem"`).
    pub bar1_memory: bool,
}

/// A client session at `path`: what it observed, with nothing that depends on descriptor numbers.
/// `checks` says which lines beyond the common ones it notes; a test that compares transcripts
/// gets the same lines from both sides only when both sessions had the same `checks`.
pub fn session(path: &Path, checks: Checks) -> Vec<String> {
    let mut seen = Vec::new();
    let mut client = Client::new(path).unwrap();
    for i in 0..2 {
        let r = client.region(i).unwrap();
        seen.push(format!(
            "region {} flags {:#x} size {:#x} sparse {:?} fd {}",
            r.index,
            r.flags,
            r.size,
            r.sparse_areas
                .iter()
                .map(|a| (a.offset, a.size))
                .collect::<Vec<_>>(),
            r.file_offset.is_some()
        ));
    }
    // With an mmap-able BAR1, its descriptor came from the server with the region info reply:
    // it is the server's memfd (read what the server wrote into it).
    if checks.bar1_memory
        && let Some(r1) = client.region(1).unwrap().file_offset.as_ref()
    {
        let mut head = [0u8; 8];
        r1.file().read_exact_at(&mut head, 0).unwrap();
        seen.push(format!(
            "region 1 memory {:?}",
            String::from_utf8_lossy(&head)
        ));
    }
    seen.push(format!("irq {:?}", client.get_irq_info(0).unwrap()));
    client.region_write(0, 0x10, b"hello").unwrap();
    let mut b = [0u8; 5];
    client.region_read(0, 0x10, &mut b).unwrap();
    seen.push(format!("bar0 {:?}", String::from_utf8_lossy(&b)));

    let memfd = rustix::fs::memfd_create("guest-ram", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    rustix::fs::ftruncate(&memfd, 0x2000).unwrap();
    client.dma_map(0, IOVA, 0x2000, memfd.as_raw_fd()).unwrap();
    let evt = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC).unwrap();
    client
        .set_irqs(
            0,
            VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
            0,
            1,
            &[evt.as_raw_fd()],
        )
        .unwrap();
    client.region_write(0, DOORBELL, b"DMA works").unwrap();
    if checks.device {
        // The interrupt: the eventfd counts the device's signal.
        let mut p = [rustix::event::PollFd::new(
            &evt,
            rustix::event::PollFlags::IN,
        )];
        let timeout = rustix::event::Timespec {
            tv_sec: 5,
            tv_nsec: 0,
        };
        assert_eq!(
            rustix::event::poll(&mut p, Some(&timeout)).unwrap(),
            1,
            "no interrupt"
        );
        if checks.interrupt_count {
            let mut count = [0u8; 8];
            rustix::io::read(&evt, &mut count).unwrap();
            seen.push(format!("interrupts {}", u64::from_ne_bytes(count)));
        }
        // The device wrote through its mapping of our memfd.
        let mut ram = [0u8; 9];
        File::from(memfd.try_clone().unwrap())
            .read_exact_at(&mut ram, 0)
            .unwrap();
        seen.push(format!("guest memory {:?}", String::from_utf8_lossy(&ram)));
    }
    client.dma_unmap(IOVA, 0x2000).unwrap();
    client.reset().unwrap();
    client.region_read(0, 0x10, &mut b).unwrap();
    seen.push(format!("bar0 after reset {b:?}"));
    client.shutdown().unwrap();
    seen
}
