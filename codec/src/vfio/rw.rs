//! REGION_READ/WRITE (§2.9, §2.10), DMA_READ/WRITE (§2.11, §2.12) and REGION_WRITE_MULTI (§2.14).

use zerocopy::little_endian::{U32, U64};

use crate::vfio::device::PCI_REGION_NAMES;
use crate::wire::Show;

crate::wire::wire_struct! {
    /// REGION_READ and REGION_WRITE head, both directions; data follows in the WRITE request and READ reply.
    pub struct RegionAccess("vfio-user spec §2.9/§2.10 VFIO_USER_REGION_READ/WRITE", size 16) {
        /// Offset into the region.
        offset: U64 = Show::Hex; key,
        /// Region index.
        region: U32 = Show::Enum(PCI_REGION_NAMES); key,
        /// Bytes to transfer (reply: bytes transferred).
        count: U32 = Show::Dec; key,
    }

    /// DMA_READ and DMA_WRITE head (server to client); data follows in the WRITE request and READ reply.
    pub struct DmaAccess("vfio-user spec §2.11/§2.12 VFIO_USER_DMA_READ/WRITE", size 16) {
        /// Client IOVA.
        address: U64 = Show::Hex; key,
        /// Bytes to transfer (a 64-bit count; QEMU 10.1 departs, see §2.12).
        count: U64 = Show::Dec; key,
    }

    /// REGION_WRITE_MULTI request head and reply (number of writes).
    pub struct RegionWriteMulti("vfio-user spec §2.14 VFIO_USER_REGION_WRITE_MULTI", size 8) {
        /// Request: number of entries that follow; reply: number completed.
        wr_cnt: U64 = Show::Dec; key,
    }

    /// One REGION_WRITE_MULTI entry.
    pub struct RegionWriteEntry("vfio-user spec §2.14 write entry", size 24) {
        /// Offset into the region.
        offset: U64 = Show::Hex,
        /// Region index.
        region: U32 = Show::Enum(PCI_REGION_NAMES),
        /// Bytes of `data` used (1..8).
        count: U32 = Show::Dec,
        /// The data; only the first `count` bytes are written.
        data: [u8; 8] = Show::Bytes,
    }
}

impl RegionAccess {
    /// A REGION_READ or REGION_WRITE head (§2.9, §2.10), request or reply, for `count` bytes at
    /// `offset` of region `region`; the data (WRITE request, READ reply) goes in the body beside it.
    pub fn new(region: u32, offset: u64, count: u32) -> Self {
        RegionAccess {
            offset: U64::new(offset),
            region: U32::new(region),
            count: U32::new(count),
        }
    }
}

impl DmaAccess {
    /// A DMA_READ or DMA_WRITE head (§2.11, §2.12), request or reply, for `count` bytes at the client
    /// address `address`; the data (WRITE request, READ reply) goes in the body beside it.
    pub fn new(address: u64, count: u64) -> Self {
        DmaAccess {
            address: U64::new(address),
            count: U64::new(count),
        }
    }
}

impl RegionWriteMulti {
    /// A REGION_WRITE_MULTI head (§2.14): in a request the number of entries that follow, in a reply
    /// the number of writes completed.
    pub fn new(wr_cnt: u64) -> Self {
        RegionWriteMulti {
            wr_cnt: U64::new(wr_cnt),
        }
    }
}

impl RegionWriteEntry {
    /// One write of `data` (1 to 8 bytes, `count` = its length) at `offset` of region `region` (§2.14);
    /// `None` when `data` is longer than the entry's 8 bytes.
    pub fn new(region: u32, offset: u64, data: &[u8]) -> Option<Self> {
        let mut bytes = [0u8; 8];
        bytes.get_mut(..data.len())?.copy_from_slice(data);
        Some(RegionWriteEntry {
            offset: U64::new(offset),
            region: U32::new(region),
            count: U32::new(data.len() as u32),
            data: bytes,
        })
    }

    /// The bytes this entry writes (`count` clamped to 8).
    pub fn written(&self) -> &[u8] {
        &self.data[..(self.count.get() as usize).min(8)]
    }
}
