//! DEVICE_GET_REGION_INFO (§2.5): the fixed part and the capabilities of its chain.

use zerocopy::little_endian::{U16, U32, U64};

use crate::wire::{FlagSpec, Named, Show, named};

/// Parts of a region's `flags` (`VFIO_REGION_INFO_FLAG_*`).
pub const REGION_INFO_FLAGS: &[FlagSpec] = &[
    FlagSpec::bit(1, "READ"),
    FlagSpec::bit(2, "WRITE"),
    FlagSpec::bit(4, "MMAP"),
    FlagSpec::bit(8, "CAPS"),
];
/// `VFIO_REGION_INFO_FLAG_READ`.
pub const VFIO_REGION_INFO_FLAG_READ: u32 = 1;
/// `VFIO_REGION_INFO_FLAG_WRITE`.
pub const VFIO_REGION_INFO_FLAG_WRITE: u32 = 2;
/// `VFIO_REGION_INFO_FLAG_MMAP`.
pub const VFIO_REGION_INFO_FLAG_MMAP: u32 = 4;
/// `VFIO_REGION_INFO_FLAG_CAPS`.
pub const VFIO_REGION_INFO_FLAG_CAPS: u32 = 8;

/// PCI region indices (`VFIO_PCI_*_REGION_INDEX`).
pub const PCI_REGION_NAMES: &[Named] = &[
    named(0, "BAR0"),
    named(1, "BAR1"),
    named(2, "BAR2"),
    named(3, "BAR3"),
    named(4, "BAR4"),
    named(5, "BAR5"),
    named(6, "ROM"),
    named(7, "CONFIG"),
    named(8, "VGA"),
    named(9, "MIGRATION(legacy)"),
];

/// Region capability ids (`VFIO_REGION_INFO_CAP_*`).
pub const REGION_CAP_NAMES: &[Named] = &[
    named(1, "SPARSE_MMAP"),
    named(2, "TYPE"),
    named(16, "SPARSE_MMAP_FDS"),
];
/// `VFIO_REGION_INFO_CAP_SPARSE_MMAP`.
pub const VFIO_REGION_INFO_CAP_SPARSE_MMAP: u16 = 1;
/// `VFIO_REGION_INFO_CAP_TYPE`.
pub const VFIO_REGION_INFO_CAP_TYPE: u16 = 2;
/// `VFIO_REGION_INFO_CAP_SPARSE_MMAP_FDS` \[pending\].
pub const VFIO_REGION_INFO_CAP_SPARSE_MMAP_FDS: u16 = 16;

crate::wire::wire_struct! {
    /// DEVICE_GET_REGION_INFO request and reply fixed part (`struct vfio_region_info`).
    pub struct RegionInfo("vfio-user spec §2.5 VFIO_USER_DEVICE_GET_REGION_INFO; <linux/vfio.h> vfio_region_info", size 32) {
        /// Request: largest reply accepted; reply: full size, 32 + capabilities.
        argsz: U32 = Show::Dec,
        /// Reply: READ, WRITE, MMAP, CAPS.
        flags: U32 = Show::Flags(REGION_INFO_FLAGS); reply_key,
        /// Region index.
        index: U32 = Show::Enum(PCI_REGION_NAMES); key,
        /// Reply: payload offset of the first capability (valid with CAPS).
        cap_offset: U32 = Show::Dec,
        /// Reply: region size.
        size: U64 = Show::Hex; reply_key,
        /// Reply: mmap offset into the fd, and base of sparse areas.
        offset: U64 = Show::Hex,
    }

    /// Header of every region capability (`struct vfio_info_cap_header`).
    pub struct CapHeader("vfio-user spec §2.5 capability chain; <linux/vfio.h> vfio_info_cap_header", size 8) {
        /// Capability id: SPARSE_MMAP 1, TYPE 2, SPARSE_MMAP_FDS 16.
        id: U16 = Show::Enum(REGION_CAP_NAMES),
        /// Capability version (1).
        version: U16 = Show::Dec,
        /// Payload offset of the next capability; 0 ends the chain.
        next: U32 = Show::Dec,
    }

    /// SPARSE_MMAP capability head (`struct vfio_region_info_cap_sparse_mmap`); `nr_areas` areas follow.
    pub struct CapSparseMmap("vfio-user spec §2.5; <linux/vfio.h> vfio_region_info_cap_sparse_mmap", size 16) {
        /// Capability id (1).
        id: U16 = Show::Enum(REGION_CAP_NAMES); key,
        /// Capability version.
        version: U16 = Show::Dec,
        /// Payload offset of the next capability.
        next: U32 = Show::Dec,
        /// Number of areas that follow.
        nr_areas: U32 = Show::Dec; key,
        /// Reserved, zero.
        reserved: U32 = Show::Reserved,
    }

    /// One sparse mmap area (`struct vfio_region_sparse_mmap_area`).
    pub struct SparseMmapArea("vfio-user spec §2.5; <linux/vfio.h> vfio_region_sparse_mmap_area", size 16) {
        /// Offset within the region.
        offset: U64 = Show::Hex,
        /// Size of the area.
        size: U64 = Show::Hex,
    }

    /// TYPE capability (`struct vfio_region_info_cap_type`): device-specific region type.
    pub struct CapType("vfio-user spec §2.5; <linux/vfio.h> vfio_region_info_cap_type", size 16) {
        /// Capability id (2).
        id: U16 = Show::Enum(REGION_CAP_NAMES); key,
        /// Capability version.
        version: U16 = Show::Dec,
        /// Payload offset of the next capability.
        next: U32 = Show::Dec,
        /// Region type (C name `type`).
        region_type: U32 = Show::Hex; key,
        /// Region subtype.
        subtype: U32 = Show::Hex; key,
    }

    /// SPARSE_MMAP_FDS capability head \[pending\]; `nr_areas` fd areas follow.
    pub struct CapSparseMmapFds("vfio-user pending §2.5 SPARSE_MMAP_FDS", size 16) {
        /// Capability id (16).
        id: U16 = Show::Enum(REGION_CAP_NAMES); key,
        /// Capability version.
        version: U16 = Show::Dec,
        /// Payload offset of the next capability.
        next: U32 = Show::Dec,
        /// Number of areas that follow.
        nr_areas: U32 = Show::Dec; key,
        /// Reserved, zero.
        reserved: U32 = Show::Reserved,
    }

    /// One SPARSE_MMAP_FDS area \[pending\].
    pub struct SparseMmapFdArea("vfio-user pending §2.5 SPARSE_MMAP_FDS area", size 32) {
        /// Offset within the region.
        offset: U64 = Show::Hex,
        /// Offset within the fd.
        fd_offset: U64 = Show::Hex,
        /// Size of the area.
        size: U64 = Show::Hex,
        /// Index into the reply's SCM_RIGHTS array.
        fd_index: U32 = Show::Dec,
        /// Padding, zero.
        pad: U32 = Show::Reserved,
    }
}

impl RegionInfo {
    /// A DEVICE_GET_REGION_INFO request (§2.5) for region `index`, accepting a reply of up to `argsz`
    /// payload bytes (at least 32; more to receive capabilities).
    pub fn request(index: u32, argsz: u32) -> Self {
        RegionInfo {
            argsz: U32::new(argsz),
            index: U32::new(index),
            ..RegionInfo::default()
        }
    }

    /// A DEVICE_GET_REGION_INFO reply (§2.5) for region `index`: `flags` (READ, WRITE, MMAP), the
    /// region's `size`, and `offset`, the mmap offset into the fd sent with it. `argsz` = 32 and no
    /// capabilities; see [`with_caps`](Self::with_caps).
    pub fn reply(index: u32, flags: u32, size: u64, offset: u64) -> Self {
        RegionInfo {
            argsz: U32::new(32),
            flags: U32::new(flags),
            index: U32::new(index),
            cap_offset: U32::new(0),
            size: U64::new(size),
            offset: U64::new(offset),
        }
    }

    /// This reply with a capability chain that starts at payload offset `cap_offset` (≥ 32; the
    /// capabilities follow the fixed part in the body): sets CAPS. [`encode`](crate::encode) sets
    /// `argsz` to the full payload, 32 + the capability area.
    pub fn with_caps(mut self, cap_offset: u32) -> Self {
        self.flags
            .set(self.flags.get() | VFIO_REGION_INFO_FLAG_CAPS);
        self.cap_offset.set(cap_offset);
        self
    }
}

impl CapHeader {
    /// A capability header (§2.5): capability `id`, its `version`, and `next`, the payload offset of
    /// the next capability (0 ends the chain).
    pub fn new(id: u16, version: u16, next: u32) -> Self {
        CapHeader {
            id: U16::new(id),
            version: U16::new(version),
            next: U32::new(next),
        }
    }
}

impl CapSparseMmap {
    /// A SPARSE_MMAP capability head, version 1 (§2.5), for `nr_areas` areas that follow it; `next`
    /// is the payload offset of the next capability (0 ends the chain).
    pub fn new(next: u32, nr_areas: u32) -> Self {
        CapSparseMmap {
            id: U16::new(VFIO_REGION_INFO_CAP_SPARSE_MMAP),
            version: U16::new(1),
            next: U32::new(next),
            nr_areas: U32::new(nr_areas),
            reserved: U32::new(0),
        }
    }
}

impl SparseMmapArea {
    /// One area that may be mmapped: `size` bytes at `offset` within the region (§2.5).
    pub fn new(offset: u64, size: u64) -> Self {
        SparseMmapArea {
            offset: U64::new(offset),
            size: U64::new(size),
        }
    }
}

impl CapType {
    /// A TYPE capability, version 1 (§2.5): the device-specific `region_type` and `subtype`; `next` is
    /// the payload offset of the next capability (0 ends the chain).
    pub fn new(next: u32, region_type: u32, subtype: u32) -> Self {
        CapType {
            id: U16::new(VFIO_REGION_INFO_CAP_TYPE),
            version: U16::new(1),
            next: U32::new(next),
            region_type: U32::new(region_type),
            subtype: U32::new(subtype),
        }
    }
}

impl CapSparseMmapFds {
    /// A SPARSE_MMAP_FDS capability head, version 1 \[pending\] (§2.5), for `nr_areas` fd areas that
    /// follow it; `next` is the payload offset of the next capability (0 ends the chain).
    pub fn new(next: u32, nr_areas: u32) -> Self {
        CapSparseMmapFds {
            id: U16::new(VFIO_REGION_INFO_CAP_SPARSE_MMAP_FDS),
            version: U16::new(1),
            next: U32::new(next),
            nr_areas: U32::new(nr_areas),
            reserved: U32::new(0),
        }
    }
}

impl SparseMmapFdArea {
    /// One fd area \[pending\] (§2.5): `size` bytes at `offset` within the region, mapped from
    /// `fd_offset` of the reply's descriptor number `fd_index`.
    pub fn new(offset: u64, fd_offset: u64, size: u64, fd_index: u32) -> Self {
        SparseMmapFdArea {
            offset: U64::new(offset),
            fd_offset: U64::new(fd_offset),
            size: U64::new(size),
            fd_index: U32::new(fd_index),
            pad: U32::new(0),
        }
    }
}
