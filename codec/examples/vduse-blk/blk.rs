//! The virtio-blk device model: a disk held in memory, its configuration space, and one request
//! (a descriptor chain of the split ring) served against it. The ring itself is rust-vmm's
//! `virtio-queue`; the request layout and constants are `virtio-bindings`'.

use std::io::{Read, Write};
use std::mem::{offset_of, size_of};

use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_ID_BYTES,
    VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_FLUSH,
    VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, virtio_blk_config, virtio_blk_outhdr,
};
use virtio_bindings::virtio_config::{VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_VERSION_1};
use virtio_queue::DescriptorChain;
use vm_memory::GuestMemoryMmap;

/// Bytes per sector: virtio-blk addresses the disk in 512-byte sectors whatever `blk_size` says.
pub const SECTOR: u64 = 512;
/// Largest number of data segments a request may have (`seg_max`).
pub const SEG_MAX: u32 = 64;
/// What GET_ID answers (up to 20 bytes, NUL-padded).
pub const SERIAL: &[u8] = b"vfu-vduse-blk";

/// The features the device offers: VERSION_1 and ACCESS_PLATFORM (both needed by VDUSE_CREATE_DEV),
/// SEG_MAX, BLK_SIZE and FLUSH.
pub const FEATURES: u64 = 1 << VIRTIO_F_VERSION_1
    | 1 << VIRTIO_F_ACCESS_PLATFORM
    | 1 << VIRTIO_BLK_F_SEG_MAX
    | 1 << VIRTIO_BLK_F_BLK_SIZE
    | 1 << VIRTIO_BLK_F_FLUSH;

/// Offset of `capacity` in the configuration space (what VDUSE_DEV_SET_CONFIG rewrites).
pub const CAPACITY_OFFSET: usize = offset_of!(virtio_blk_config, capacity);

/// The configuration space (`struct virtio_blk_config`, little-endian as virtio 1.0 says) for a
/// disk of `bytes`: capacity, seg_max and blk_size; the rest zero.
pub fn config_space(bytes: u64) -> Vec<u8> {
    let mut c = vec![0u8; size_of::<virtio_blk_config>()];
    put(&mut c, CAPACITY_OFFSET, &(bytes / SECTOR).to_le_bytes());
    put(
        &mut c,
        offset_of!(virtio_blk_config, seg_max),
        &SEG_MAX.to_le_bytes(),
    );
    put(
        &mut c,
        offset_of!(virtio_blk_config, blk_size),
        &(SECTOR as u32).to_le_bytes(),
    );
    c
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(d) = buf.get_mut(at..at + bytes.len()) {
        d.copy_from_slice(bytes);
    }
}

/// The disk: its bytes, in memory.
pub struct Disk {
    pub data: Vec<u8>,
}

/// What serving one request did, for the used ring and the log.
#[derive(Debug, PartialEq, Eq)]
pub struct Served {
    /// Bytes written into the chain's device-writable buffers (the used length).
    pub written: u32,
    /// The request type (`VIRTIO_BLK_T_*`), or `None` if the header could not be read.
    pub kind: Option<u32>,
    /// The status byte answered (`VIRTIO_BLK_S_*`), or `None` if there was nowhere to put it.
    pub status: Option<u8>,
}

impl Disk {
    pub fn new(bytes: usize) -> Self {
        Disk {
            data: vec![0; bytes],
        }
    }

    /// Capacity in sectors.
    pub fn sectors(&self) -> u64 {
        self.data.len() as u64 / SECTOR
    }

    /// Serves one descriptor chain: a 16-byte `virtio_blk_outhdr` in the device-readable part, the
    /// data, and the status byte at the end of the device-writable part. Never panics: a chain whose
    /// memory cannot be reached, or that is too short for its header or status, is answered with
    /// what can be answered (`IOERR`, or nothing).
    pub fn serve(
        &mut self,
        mem: &GuestMemoryMmap,
        chain: DescriptorChain<&GuestMemoryMmap>,
    ) -> Served {
        let nothing = Served {
            written: 0,
            kind: None,
            status: None,
        };
        let (Ok(mut reader), Ok(mut writer)) = (chain.clone().reader(mem), chain.writer(mem))
        else {
            return nothing;
        };
        let Some(status_at) = writer.available_bytes().checked_sub(1) else {
            return nothing;
        };
        let Ok(mut status_w) = writer.split_at(status_at) else {
            return nothing;
        };
        let mut hdr = [0u8; size_of::<virtio_blk_outhdr>()];
        let (kind, status) = if reader.read_exact(&mut hdr).is_err() {
            (None, VIRTIO_BLK_S_IOERR)
        } else {
            let field = |at: usize, n: usize| hdr.get(at..at + n).unwrap_or(&[]);
            let kind = u32::from_le_bytes(
                field(offset_of!(virtio_blk_outhdr, type_), 4)
                    .try_into()
                    .unwrap_or([0xff; 4]),
            );
            let sector = u64::from_le_bytes(
                field(offset_of!(virtio_blk_outhdr, sector), 8)
                    .try_into()
                    .unwrap_or([0xff; 8]),
            );
            let status = match kind {
                VIRTIO_BLK_T_IN => {
                    let len = writer.available_bytes();
                    match self.range(sector, len) {
                        Some(r) => ok_or_ioerr(writer.write_all(&self.data[r])),
                        None => VIRTIO_BLK_S_IOERR,
                    }
                }
                VIRTIO_BLK_T_OUT => {
                    let len = reader.available_bytes();
                    match self.range(sector, len) {
                        Some(r) => ok_or_ioerr(reader.read_exact(&mut self.data[r])),
                        None => VIRTIO_BLK_S_IOERR,
                    }
                }
                // Memory is as durable as this disk gets.
                VIRTIO_BLK_T_FLUSH => VIRTIO_BLK_S_OK,
                VIRTIO_BLK_T_GET_ID => {
                    let mut id = [0u8; VIRTIO_BLK_ID_BYTES as usize];
                    id[..SERIAL.len()].copy_from_slice(SERIAL);
                    let n = writer.available_bytes().min(id.len());
                    ok_or_ioerr(writer.write_all(&id[..n]))
                }
                _ => VIRTIO_BLK_S_UNSUPP,
            };
            (Some(kind), status)
        };
        let status = status as u8;
        let wrote_status = status_w.write_all(&[status]).is_ok();
        Served {
            written: (writer.bytes_written() + status_w.bytes_written()) as u32,
            kind,
            status: wrote_status.then_some(status),
        }
    }

    /// The byte range of `len` bytes from `sector`, if it lies on the disk.
    fn range(&self, sector: u64, len: usize) -> Option<std::ops::Range<usize>> {
        let start = usize::try_from(sector.checked_mul(SECTOR)?).ok()?;
        let end = start.checked_add(len)?;
        (end <= self.data.len()).then_some(start..end)
    }
}

fn ok_or_ioerr(r: std::io::Result<()>) -> u32 {
    if r.is_ok() {
        VIRTIO_BLK_S_OK
    } else {
        VIRTIO_BLK_S_IOERR
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use virtio_bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
    use virtio_queue::desc::split::Descriptor;
    use virtio_queue::{Queue, QueueT};
    use vm_memory::{Bytes, GuestAddress};

    const DESC: u64 = 0x1000;
    const AVAIL: u64 = 0x2000;
    const USED: u64 = 0x3000;
    const HDR: u64 = 0x4000;
    const DATA: u64 = 0x5000;
    const STATUS: u64 = 0x9000;

    /// A driver's side of one request: a header, a data buffer, a status byte, in a fresh ring.
    fn one_request(
        mem: &GuestMemoryMmap,
        kind: u32,
        sector: u64,
        data_len: u32,
        data_writable: bool,
    ) -> Queue {
        let mut hdr = [0u8; 16];
        hdr[..4].copy_from_slice(&kind.to_le_bytes());
        hdr[8..].copy_from_slice(&sector.to_le_bytes());
        mem.write_slice(&hdr, GuestAddress(HDR)).unwrap();
        let w = if data_writable {
            VRING_DESC_F_WRITE as u16
        } else {
            0
        };
        let next = VRING_DESC_F_NEXT as u16;
        let descs = [
            Descriptor::new(HDR, 16, next, 1),
            Descriptor::new(DATA, data_len, w | next, 2),
            Descriptor::new(STATUS, 1, VRING_DESC_F_WRITE as u16, 0),
        ];
        for (i, d) in descs.iter().enumerate() {
            mem.write_obj(*d, GuestAddress(DESC + 16 * i as u64))
                .unwrap();
        }
        mem.write_obj(0u16, GuestAddress(AVAIL)).unwrap(); // flags
        mem.write_obj(1u16, GuestAddress(AVAIL + 2)).unwrap(); // idx
        mem.write_obj(0u16, GuestAddress(AVAIL + 4)).unwrap(); // ring[0]
        let mut q = Queue::new(8).unwrap();
        q.try_set_desc_table_address(GuestAddress(DESC)).unwrap();
        q.try_set_avail_ring_address(GuestAddress(AVAIL)).unwrap();
        q.try_set_used_ring_address(GuestAddress(USED)).unwrap();
        q.set_ready(true);
        q
    }

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap()
    }

    fn serve(disk: &mut Disk, mem: &GuestMemoryMmap, mut q: Queue) -> Served {
        let chain = q.pop_descriptor_chain(mem).unwrap();
        disk.serve(mem, chain)
    }

    fn status(mem: &GuestMemoryMmap) -> u8 {
        mem.read_obj(GuestAddress(STATUS)).unwrap()
    }

    #[test]
    fn write_then_read_back() {
        let (mem, mut disk) = (mem(), Disk::new(1 << 20));
        let pattern: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
        mem.write_slice(&pattern, GuestAddress(DATA)).unwrap();
        let q = one_request(&mem, VIRTIO_BLK_T_OUT, 3, 4096, false);
        let s = serve(&mut disk, &mem, q);
        assert_eq!(
            s,
            Served {
                written: 1,
                kind: Some(VIRTIO_BLK_T_OUT),
                status: Some(0)
            }
        );
        assert_eq!(&disk.data[3 * 512..3 * 512 + 4096], &pattern[..]);

        mem.write_slice(&[0u8; 4096], GuestAddress(DATA)).unwrap();
        let q = one_request(&mem, VIRTIO_BLK_T_IN, 3, 4096, true);
        let s = serve(&mut disk, &mem, q);
        assert_eq!(
            s,
            Served {
                written: 4097,
                kind: Some(VIRTIO_BLK_T_IN),
                status: Some(0)
            }
        );
        let mut back = vec![0u8; 4096];
        mem.read_slice(&mut back, GuestAddress(DATA)).unwrap();
        assert_eq!(back, pattern);
        assert_eq!(status(&mem), VIRTIO_BLK_S_OK as u8);
    }

    #[test]
    fn beyond_the_end_is_ioerr() {
        let (mem, mut disk) = (mem(), Disk::new(8192));
        for sector in [15, 16, u64::MAX / 512, u64::MAX] {
            let q = one_request(&mem, VIRTIO_BLK_T_IN, sector, 1024, true);
            let s = serve(&mut disk, &mem, q);
            assert_eq!(s.status, Some(VIRTIO_BLK_S_IOERR as u8), "sector {sector}");
            assert_eq!(status(&mem), VIRTIO_BLK_S_IOERR as u8);
        }
    }

    #[test]
    fn get_id_flush_and_unsupported() {
        let (mem, mut disk) = (mem(), Disk::new(8192));
        let q = one_request(&mem, VIRTIO_BLK_T_GET_ID, 0, 20, true);
        let s = serve(&mut disk, &mem, q);
        assert_eq!(s.written, 21);
        let mut id = [0u8; 20];
        mem.read_slice(&mut id, GuestAddress(DATA)).unwrap();
        assert_eq!(&id[..SERIAL.len()], SERIAL);
        assert_eq!(id[SERIAL.len()..], [0; 7]);

        let q = one_request(&mem, VIRTIO_BLK_T_FLUSH, 0, 0, false);
        assert_eq!(serve(&mut disk, &mem, q).status, Some(0));
        let q = one_request(&mem, 0x1234, 0, 16, false);
        assert_eq!(
            serve(&mut disk, &mem, q).status,
            Some(VIRTIO_BLK_S_UNSUPP as u8)
        );
    }

    #[test]
    fn a_chain_outside_memory_is_not_served() {
        let (mem, mut disk) = (mem(), Disk::new(8192));
        let mut q = one_request(&mem, VIRTIO_BLK_T_IN, 0, 512, true);
        mem.write_obj(
            Descriptor::new(
                0xdead_0000,
                512,
                (VRING_DESC_F_WRITE | VRING_DESC_F_NEXT) as u16,
                2,
            ),
            GuestAddress(DESC + 16),
        )
        .unwrap();
        let chain = q.pop_descriptor_chain(&mem).unwrap();
        let s = disk.serve(&mem, chain);
        assert_eq!(
            s,
            Served {
                written: 0,
                kind: None,
                status: None
            }
        );
    }

    #[test]
    fn config_space_has_the_capacity() {
        let c = config_space(16 << 20);
        assert_eq!(c.len(), size_of::<virtio_blk_config>());
        assert_eq!(&c[..8], &32768u64.to_le_bytes());
        assert_eq!(CAPACITY_OFFSET, 0);
        assert_eq!(FEATURES, 0x3_0000_0244);
    }
}
