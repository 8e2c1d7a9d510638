//! DEVICE_GET_INFO (§2.4), DEVICE_GET_REGION_INFO and its capability chain (§2.5),
//! DEVICE_GET_REGION_IO_FDS (§2.6), DEVICE_GET_IRQ_INFO (§2.7) and DEVICE_SET_IRQS (§2.8).

use zerocopy::FromBytes;
use zerocopy::little_endian::{U16, U32, U64};

use crate::error::{DecodeError, Rule};
use crate::wire::{FlagSpec, Named, Show, named};

/// Parts of DEVICE_GET_INFO's `flags` (`VFIO_DEVICE_FLAGS_*`).
pub const DEVICE_INFO_FLAGS: &[FlagSpec] = &[FlagSpec::bit(1, "RESET"), FlagSpec::bit(2, "PCI")];
/// `VFIO_DEVICE_FLAGS_RESET`.
pub const VFIO_DEVICE_FLAGS_RESET: u32 = 1;
/// `VFIO_DEVICE_FLAGS_PCI`.
pub const VFIO_DEVICE_FLAGS_PCI: u32 = 2;

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

/// PCI IRQ indices (`VFIO_PCI_*_IRQ_INDEX`).
pub const PCI_IRQ_NAMES: &[Named] = &[
    named(0, "INTX"),
    named(1, "MSI"),
    named(2, "MSIX"),
    named(3, "ERR"),
    named(4, "REQ"),
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

/// IO_FDS sub-region types.
pub const IO_FD_TYPE_NAMES: &[Named] = &[
    named(0, "IOEVENTFD"),
    named(1, "IOREGIONFD"),
    named(2, "IOEVENTFD_SHADOW"),
];
/// Parts of an IO_FDS entry's `flags` (KVM ioeventfd flags).
pub const IO_FD_FLAGS: &[FlagSpec] = &[
    FlagSpec::bit(1, "DATAMATCH"),
    FlagSpec::bit(2, "PIO"),
    FlagSpec::bit(8, "VIRTIO_CCW_NOTIFY"),
];

/// Parts of IRQ info's `flags` (`VFIO_IRQ_INFO_*`).
pub const IRQ_INFO_FLAGS: &[FlagSpec] = &[
    FlagSpec::bit(1, "EVENTFD"),
    FlagSpec::bit(2, "MASKABLE"),
    FlagSpec::bit(4, "AUTOMASKED"),
    FlagSpec::bit(8, "NORESIZE"),
];

/// `VFIO_IRQ_SET_DATA_NONE`.
pub const VFIO_IRQ_SET_DATA_NONE: u32 = 1;
/// `VFIO_IRQ_SET_DATA_BOOL`.
pub const VFIO_IRQ_SET_DATA_BOOL: u32 = 2;
/// `VFIO_IRQ_SET_DATA_EVENTFD`.
pub const VFIO_IRQ_SET_DATA_EVENTFD: u32 = 4;
/// `VFIO_IRQ_SET_ACTION_MASK`.
pub const VFIO_IRQ_SET_ACTION_MASK: u32 = 8;
/// `VFIO_IRQ_SET_ACTION_UNMASK`.
pub const VFIO_IRQ_SET_ACTION_UNMASK: u32 = 16;
/// `VFIO_IRQ_SET_ACTION_TRIGGER`.
pub const VFIO_IRQ_SET_ACTION_TRIGGER: u32 = 32;
/// `VFIO_IRQ_SET_DATA_TYPE_MASK`.
pub const VFIO_IRQ_SET_DATA_TYPE_MASK: u32 = 7;
/// `VFIO_IRQ_SET_ACTION_TYPE_MASK`.
pub const VFIO_IRQ_SET_ACTION_TYPE_MASK: u32 = 0x38;

/// Parts of SET_IRQS's `flags`: one data type and one action.
pub const IRQ_SET_FLAGS: &[FlagSpec] = &[
    FlagSpec::bit(1, "DATA_NONE"),
    FlagSpec::bit(2, "DATA_BOOL"),
    FlagSpec::bit(4, "DATA_EVENTFD"),
    FlagSpec::bit(8, "ACTION_MASK"),
    FlagSpec::bit(16, "ACTION_UNMASK"),
    FlagSpec::bit(32, "ACTION_TRIGGER"),
];

crate::wire::wire_struct! {
    /// DEVICE_GET_INFO request and reply body (`struct vfio_device_info`, first 16 bytes).
    pub struct DeviceInfo("vfio-user spec §2.4 VFIO_USER_DEVICE_GET_INFO; <linux/vfio.h> vfio_device_info", size 16) {
        /// Request: largest reply accepted (≥ 16); reply: 16.
        argsz: U32 = Show::Dec,
        /// Reply: RESET, PCI.
        flags: U32 = Show::Flags(DEVICE_INFO_FLAGS); reply_key,
        /// Reply: number of regions (≥ 9 for PCI).
        num_regions: U32 = Show::Dec; reply_key,
        /// Reply: number of IRQ indices (5 for PCI).
        num_irqs: U32 = Show::Dec; reply_key,
    }

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

    /// DEVICE_GET_REGION_IO_FDS request and reply head; the reply's entries follow.
    pub struct RegionIoFds("vfio-user spec §2.6 VFIO_USER_DEVICE_GET_REGION_IO_FDS", size 16) {
        /// Request: largest reply accepted; reply: 16 + count·stride.
        argsz: U32 = Show::Dec,
        /// Must be 0.
        flags: U32 = Show::Hex,
        /// Region index.
        index: U32 = Show::Enum(PCI_REGION_NAMES); key,
        /// Request: 0; reply: number of sub-regions.
        count: U32 = Show::Dec; reply_key,
    }

    /// IO_FDS sub-region entry in the spec's 40-byte layout.
    pub struct IoFdEntry("vfio-user spec §2.6 sub-region entry (40 bytes)", size 40) {
        /// Offset in the region.
        offset: U64 = Show::Hex,
        /// Access size (0 = any).
        size: U64 = Show::Dec,
        /// Index into the reply's SCM_RIGHTS array.
        fd_index: U32 = Show::Dec,
        /// IOEVENTFD 0, IOREGIONFD 1 (C name `type`).
        entry_type: U32 = Show::Enum(IO_FD_TYPE_NAMES),
        /// KVM ioeventfd flags.
        flags: U32 = Show::Flags(IO_FD_FLAGS),
        /// Padding.
        padding: U32 = Show::Reserved,
        /// Datamatch value (ioeventfd) or user data (ioregionfd).
        datamatch: U64 = Show::Hex,
    }

    /// IO_FDS sub-region entry in libvfio-user's 48-byte layout (shadow ioeventfd, \[impl\]).
    pub struct IoFdShadowEntry("vfio-user §2.6 (impl) lvu shadow ioeventfd entry (48 bytes)", size 48) {
        /// Offset in the region.
        gpa_offset: U64 = Show::Hex,
        /// Access size (0 = any).
        size: U64 = Show::Dec,
        /// Index into the reply's SCM_RIGHTS array.
        fd_index: U32 = Show::Dec,
        /// IOEVENTFD 0, IOREGIONFD 1, IOEVENTFD_SHADOW 2 (C name `type`).
        entry_type: U32 = Show::Enum(IO_FD_TYPE_NAMES),
        /// KVM ioeventfd flags.
        flags: U32 = Show::Flags(IO_FD_FLAGS),
        /// Index of the shadow memory fd.
        shadow_mem_fd_index: U32 = Show::Dec,
        /// Offset in the shadow memory.
        shadow_offset: U64 = Show::Hex,
        /// Datamatch value.
        datamatch: U64 = Show::Hex,
    }

    /// DEVICE_GET_IRQ_INFO request and reply body (`struct vfio_irq_info`).
    pub struct IrqInfo("vfio-user spec §2.7 VFIO_USER_DEVICE_GET_IRQ_INFO; <linux/vfio.h> vfio_irq_info", size 16) {
        /// Request: largest reply accepted; reply: 16.
        argsz: U32 = Show::Dec,
        /// Reply: EVENTFD, MASKABLE, AUTOMASKED, NORESIZE.
        flags: U32 = Show::Flags(IRQ_INFO_FLAGS); reply_key,
        /// IRQ index.
        index: U32 = Show::Enum(PCI_IRQ_NAMES); key,
        /// Reply: number of vectors.
        count: U32 = Show::Dec; reply_key,
    }

    /// DEVICE_SET_IRQS request fixed part (`struct vfio_irq_set`); DATA_BOOL bytes follow.
    pub struct IrqSet("vfio-user spec §2.8 VFIO_USER_DEVICE_SET_IRQS; <linux/vfio.h> vfio_irq_set", size 20) {
        /// Request payload size including data.
        argsz: U32 = Show::Dec,
        /// One data type (NONE, BOOL, EVENTFD) and one action (MASK, UNMASK, TRIGGER).
        flags: U32 = Show::Flags(IRQ_SET_FLAGS); key,
        /// IRQ index.
        index: U32 = Show::Enum(PCI_IRQ_NAMES); key,
        /// First sub-index.
        start: U32 = Show::Dec; key,
        /// Number of sub-indices.
        count: U32 = Show::Dec; key,
    }
}

impl DeviceInfo {
    /// A DEVICE_GET_INFO request (§2.4): `argsz` = 16, the whole reply; the other fields 0.
    pub fn request() -> Self {
        DeviceInfo {
            argsz: U32::new(16),
            ..DeviceInfo::default()
        }
    }

    /// A DEVICE_GET_INFO reply (§2.4): `flags` (RESET, PCI), `num_regions` (≥ 9 for PCI) and
    /// `num_irqs` (5 for PCI); `argsz` = 16.
    pub fn reply(flags: u32, num_regions: u32, num_irqs: u32) -> Self {
        DeviceInfo {
            argsz: U32::new(16),
            flags: U32::new(flags),
            num_regions: U32::new(num_regions),
            num_irqs: U32::new(num_irqs),
        }
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

impl RegionIoFds {
    /// A DEVICE_GET_REGION_IO_FDS request (§2.6) for region `index`, accepting a reply of up to
    /// `argsz` payload bytes (16 + count · 40 to receive every entry).
    pub fn request(index: u32, argsz: u32) -> Self {
        RegionIoFds {
            argsz: U32::new(argsz),
            flags: U32::new(0),
            index: U32::new(index),
            count: U32::new(0),
        }
    }

    /// A DEVICE_GET_REGION_IO_FDS reply head (§2.6) for region `index` with `count` sub-regions;
    /// `argsz` = 16, which [`encode`](crate::encode) raises to 16 + the entries that follow (a reply
    /// cut to its head for a short request sets `argsz` to the size needed itself).
    pub fn reply(index: u32, count: u32) -> Self {
        RegionIoFds {
            argsz: U32::new(16),
            flags: U32::new(0),
            index: U32::new(index),
            count: U32::new(count),
        }
    }
}

impl IoFdEntry {
    /// A sub-region entry in the spec's 40-byte layout (§2.6): accesses of `size` bytes (0 = any) at
    /// `offset` in the region signal the reply's descriptor number `fd_index`, of `entry_type`
    /// IOEVENTFD (0) or IOREGIONFD (1), with KVM ioeventfd `flags` and `datamatch`.
    pub fn new(
        offset: u64,
        size: u64,
        fd_index: u32,
        entry_type: u32,
        flags: u32,
        datamatch: u64,
    ) -> Self {
        IoFdEntry {
            offset: U64::new(offset),
            size: U64::new(size),
            fd_index: U32::new(fd_index),
            entry_type: U32::new(entry_type),
            flags: U32::new(flags),
            padding: U32::new(0),
            datamatch: U64::new(datamatch),
        }
    }
}

impl IoFdShadowEntry {
    /// `entry` in libvfio-user's 48-byte layout (\[impl\], §2.6), with the shadow memory at
    /// `shadow_offset` of the reply's descriptor number `shadow_mem_fd_index` (its `entry_type` is
    /// usually IOEVENTFD_SHADOW, 2).
    pub fn new(entry: &IoFdEntry, shadow_mem_fd_index: u32, shadow_offset: u64) -> Self {
        IoFdShadowEntry {
            gpa_offset: entry.offset,
            size: entry.size,
            fd_index: entry.fd_index,
            entry_type: entry.entry_type,
            flags: entry.flags,
            shadow_mem_fd_index: U32::new(shadow_mem_fd_index),
            shadow_offset: U64::new(shadow_offset),
            datamatch: entry.datamatch,
        }
    }
}

impl IrqInfo {
    /// A DEVICE_GET_IRQ_INFO request (§2.7) for IRQ index `index`: `argsz` = 16, the whole reply.
    pub fn request(index: u32) -> Self {
        IrqInfo {
            argsz: U32::new(16),
            index: U32::new(index),
            ..IrqInfo::default()
        }
    }

    /// A DEVICE_GET_IRQ_INFO reply (§2.7) for IRQ index `index`: `flags` (EVENTFD, MASKABLE,
    /// AUTOMASKED, NORESIZE) and `count` vectors; `argsz` = 16.
    pub fn reply(index: u32, flags: u32, count: u32) -> Self {
        IrqInfo {
            argsz: U32::new(16),
            flags: U32::new(flags),
            index: U32::new(index),
            count: U32::new(count),
        }
    }
}

impl IrqSet {
    /// A DEVICE_SET_IRQS request (§2.8): `flags` (one data type, one action) for `count` vectors from
    /// `start` of IRQ index `index`. `argsz` is the request payload: 20, or 20 + `count` with DATA_BOOL,
    /// whose bytes go in the body beside it; with DATA_EVENTFD the descriptors go with the message.
    pub fn new(flags: u32, index: u32, start: u32, count: u32) -> Self {
        let data = if flags & VFIO_IRQ_SET_DATA_BOOL != 0 {
            count
        } else {
            0
        };
        IrqSet {
            argsz: U32::new(data.saturating_add(20)),
            flags: U32::new(flags),
            index: U32::new(index),
            start: U32::new(start),
            count: U32::new(count),
        }
    }
}

/// A region capability, as found by [`CapIter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionCap<'a> {
    /// SPARSE_MMAP and its areas.
    SparseMmap {
        /// Payload offset of the capability.
        at: usize,
        /// The capability head.
        head: &'a CapSparseMmap,
        /// The areas.
        areas: &'a [SparseMmapArea],
    },
    /// TYPE.
    Type {
        /// Payload offset of the capability.
        at: usize,
        /// The capability.
        cap: &'a CapType,
    },
    /// SPARSE_MMAP_FDS \[pending\] and its areas.
    SparseMmapFds {
        /// Payload offset of the capability.
        at: usize,
        /// The capability head.
        head: &'a CapSparseMmapFds,
        /// The areas.
        areas: &'a [SparseMmapFdArea],
    },
    /// A capability id this crate does not know: only its header is interpreted.
    Unknown {
        /// Payload offset of the capability.
        at: usize,
        /// Its header.
        header: &'a CapHeader,
    },
}

impl RegionCap<'_> {
    /// Payload offset at which this capability starts.
    pub fn offset(&self) -> usize {
        match *self {
            RegionCap::SparseMmap { at, .. }
            | RegionCap::Type { at, .. }
            | RegionCap::SparseMmapFds { at, .. }
            | RegionCap::Unknown { at, .. } => at,
        }
    }
}

/// Most capabilities one chain may hold before [`CapIter`] calls it a loop.
pub const MAX_REGION_CAPS: usize = 64;

/// A checked iterator over a region-info reply's capability chain.
///
/// `area` is the reply payload after the 32-byte fixed part; capability offsets (`cap_offset`, `next`)
/// count from payload byte 0, so the capability at payload offset `o` starts at `area[o - 32]`. Each
/// step checks that the capability lies inside the payload, past the fixed part, that its body fits,
/// and that `next` moves strictly forward (which rules out loops). After an error it yields nothing more.
///
/// A pointer that leads nowhere (inside the fixed part, past the payload, or backwards) is reported at
/// the offset of the pointer itself: the reply's `cap_offset` field, or the previous capability's
/// `next` field, so the offset always names a byte of the message.
#[derive(Clone, Debug)]
pub struct CapIter<'a> {
    area: &'a [u8],
    next: usize,
    /// Payload offset of the field that holds `next`.
    from: usize,
    base: usize,
    seen: usize,
    done: bool,
}

/// Size of the fixed part before the capability area.
const FIXED: usize = core::mem::size_of::<RegionInfo>();

impl<'a> CapIter<'a> {
    /// Walks the chain that starts at payload offset `first` (the reply's `cap_offset`; 0 = none).
    /// `base` is the payload's offset within the message, so errors name message offsets.
    pub fn new(area: &'a [u8], first: u32, base: usize) -> Self {
        CapIter {
            area,
            next: first as usize,
            from: core::mem::offset_of!(RegionInfo, cap_offset),
            base,
            seen: 0,
            done: first == 0,
        }
    }

    fn step(&mut self) -> Result<RegionCap<'a>, DecodeError> {
        let at = self.next;
        let payload = FIXED + self.area.len();
        let err = |rule: Rule| DecodeError::new(self.base.saturating_add(at), rule);
        let bad_pointer = |rule: Rule| DecodeError::new(self.base + self.from, rule);
        if at < FIXED {
            return Err(bad_pointer(Rule::CapOverlapsFixed {
                cap_offset: at as u32,
            }));
        }
        let Some(rest) = self.area.get(at - FIXED..) else {
            return Err(bad_pointer(Rule::CapOutOfBounds {
                cap_offset: at as u32,
                payload,
            }));
        };
        let Ok((header, _)) = CapHeader::ref_from_prefix(rest) else {
            return Err(bad_pointer(Rule::CapOutOfBounds {
                cap_offset: at as u32,
                payload,
            }));
        };
        let next = header.next.get() as usize;
        let next_field = at + core::mem::offset_of!(CapHeader, next);
        if next != 0 && next <= at {
            return Err(DecodeError::new(
                self.base + next_field,
                Rule::CapLoop {
                    cap_offset: at as u32,
                    next: next as u32,
                },
            ));
        }
        self.seen += 1;
        if self.seen > MAX_REGION_CAPS {
            return Err(err(Rule::CapLoop {
                cap_offset: at as u32,
                next: next as u32,
            }));
        }
        let short = |need: usize| {
            err(Rule::CapTruncated {
                id: header.id.get(),
                need,
                have: rest.len(),
            })
        };
        let cap = match header.id.get() {
            VFIO_REGION_INFO_CAP_SPARSE_MMAP => {
                let (head, tail) = CapSparseMmap::ref_from_prefix(rest).map_err(|_| short(16))?;
                let n = head.nr_areas.get() as usize;
                let (areas, _) = <[SparseMmapArea]>::ref_from_prefix_with_elems(tail, n)
                    .map_err(|_| short(16usize.saturating_add(n.saturating_mul(16))))?;
                RegionCap::SparseMmap { at, head, areas }
            }
            VFIO_REGION_INFO_CAP_TYPE => {
                let (cap, _) = CapType::ref_from_prefix(rest).map_err(|_| short(16))?;
                RegionCap::Type { at, cap }
            }
            VFIO_REGION_INFO_CAP_SPARSE_MMAP_FDS => {
                let (head, tail) =
                    CapSparseMmapFds::ref_from_prefix(rest).map_err(|_| short(16))?;
                let n = head.nr_areas.get() as usize;
                let (areas, _) = <[SparseMmapFdArea]>::ref_from_prefix_with_elems(tail, n)
                    .map_err(|_| short(16usize.saturating_add(n.saturating_mul(32))))?;
                RegionCap::SparseMmapFds { at, head, areas }
            }
            _ => RegionCap::Unknown { at, header },
        };
        if next == 0 {
            self.done = true;
        }
        self.next = next;
        self.from = next_field;
        Ok(cap)
    }
}

impl<'a> Iterator for CapIter<'a> {
    type Item = Result<RegionCap<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = self.step();
        if r.is_err() {
            self.done = true;
        }
        Some(r)
    }
}

/// Layout of IO_FDS reply entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IoFdLayout {
    /// The spec's 40-byte entry.
    Spec,
    /// libvfio-user's 48-byte entry (\[impl\]).
    Shadow,
}

impl IoFdLayout {
    /// The entry stride in bytes.
    pub const fn stride(self) -> usize {
        match self {
            IoFdLayout::Spec => 40,
            IoFdLayout::Shadow => 48,
        }
    }
}

/// The entries of a DEVICE_GET_REGION_IO_FDS reply, typed by the stride found from `argsz` and `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoFdEntries<'a> {
    /// 40-byte spec entries.
    Spec(&'a [IoFdEntry]),
    /// 48-byte libvfio-user entries.
    Shadow(&'a [IoFdShadowEntry]),
}

impl<'a> IoFdEntries<'a> {
    /// Number of entries.
    pub fn len(&self) -> usize {
        match self {
            IoFdEntries::Spec(e) => e.len(),
            IoFdEntries::Shadow(e) => e.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The layout in use.
    pub fn layout(&self) -> IoFdLayout {
        match self {
            IoFdEntries::Spec(_) => IoFdLayout::Spec,
            IoFdEntries::Shadow(_) => IoFdLayout::Shadow,
        }
    }

    /// The entries' bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        use zerocopy::IntoBytes;
        match self {
            IoFdEntries::Spec(e) => e.as_bytes(),
            IoFdEntries::Shadow(e) => e.as_bytes(),
        }
    }

    /// Parses `count` entries from `data` (the bytes after the 16-byte head), choosing the stride from
    /// `argsz`: (argsz − 16) / count when that is 40 or 48; otherwise from the bytes present.
    /// `base` is the message offset of `data`, for errors.
    pub fn parse(data: &'a [u8], argsz: u32, count: u32, base: usize) -> Result<Self, DecodeError> {
        let n = count as usize;
        if n == 0 {
            return Ok(IoFdEntries::Spec(&[]));
        }
        let from_argsz = (argsz as usize)
            .checked_sub(16)
            .filter(|b| b % n == 0)
            .map(|b| b / n);
        let stride = match from_argsz {
            Some(s @ (40 | 48)) => s,
            _ => match data.len().checked_div(n) {
                Some(48) => 48,
                Some(40) => 40,
                _ => {
                    return Err(DecodeError::new(
                        base,
                        Rule::IoFdStride {
                            argsz,
                            count,
                            have: data.len(),
                        },
                    ));
                }
            },
        };
        let need = n.saturating_mul(stride);
        if data.len() < need {
            return Err(DecodeError::short(base, "IO_FDS entries", need, data.len()));
        }
        Ok(if stride == 48 {
            IoFdEntries::Shadow(
                <[IoFdShadowEntry]>::ref_from_prefix_with_elems(data, n)
                    .map_err(|_| DecodeError::short(base, "IO_FDS entries", need, data.len()))?
                    .0,
            )
        } else {
            IoFdEntries::Spec(
                <[IoFdEntry]>::ref_from_prefix_with_elems(data, n)
                    .map_err(|_| DecodeError::short(base, "IO_FDS entries", need, data.len()))?
                    .0,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A capability area (payload bytes from offset 32) with a cap header at `at` pointing to `next`.
    fn area_with(caps: &[(usize, u16, u32, u32)], len: usize) -> [u8; 128] {
        let mut a = [0u8; 128];
        for &(at, id, next, nr) in caps {
            let o = at - 32;
            a[o..o + 2].copy_from_slice(&id.to_le_bytes());
            a[o + 2..o + 4].copy_from_slice(&1u16.to_le_bytes());
            a[o + 4..o + 8].copy_from_slice(&next.to_le_bytes());
            a[o + 8..o + 12].copy_from_slice(&nr.to_le_bytes());
        }
        let _ = len;
        a
    }

    fn rules(area: &[u8], first: u32) -> heapless::Vec<Result<usize, (usize, Rule)>, 8> {
        CapIter::new(area, first, 16)
            .map(|c| c.map(|c| c.offset()).map_err(|e| (e.offset, e.rule)))
            .collect()
    }

    #[test]
    fn walks_a_sound_chain() {
        let a = area_with(&[(32, 2, 48, 0), (48, 1, 0, 1)], 64);
        assert_eq!(&rules(&a[..48], 32)[..], &[Ok(32), Ok(48)]);
    }

    #[test]
    fn rejects_a_loop() {
        let a = area_with(&[(32, 2, 48, 0), (48, 2, 32, 0)], 64);
        assert_eq!(
            &rules(&a[..48], 32)[..],
            &[
                Ok(32),
                Err((
                    16 + 52, // the `next` field that points back
                    Rule::CapLoop {
                        cap_offset: 48,
                        next: 32
                    }
                ))
            ]
        );
        let self_loop = area_with(&[(40, 2, 40, 0)], 64);
        assert_eq!(
            &rules(&self_loop[..48], 40)[..],
            &[Err((
                16 + 44,
                Rule::CapLoop {
                    cap_offset: 40,
                    next: 40
                }
            ))]
        );
    }

    #[test]
    fn rejects_overlap_with_the_fixed_part() {
        let a = [0u8; 32];
        assert_eq!(
            &rules(&a, 8)[..],
            &[Err((16 + 12, Rule::CapOverlapsFixed { cap_offset: 8 }))]
        );
    }

    #[test]
    fn rejects_next_out_of_bounds() {
        let a = area_with(&[(32, 2, 4000, 0)], 16);
        assert_eq!(
            &rules(&a[..16], 32)[..],
            &[
                Ok(32),
                Err((
                    16 + 36,
                    Rule::CapOutOfBounds {
                        cap_offset: 4000,
                        payload: 48
                    }
                ))
            ]
        );
    }

    #[test]
    fn rejects_areas_that_do_not_fit() {
        // SPARSE_MMAP claiming 3 areas (48 bytes) with room for one.
        let a = area_with(&[(32, 1, 0, 3)], 32);
        assert_eq!(
            &rules(&a[..32], 32)[..],
            &[Err((
                16 + 32,
                Rule::CapTruncated {
                    id: 1,
                    need: 64,
                    have: 32
                }
            ))]
        );
        // A count so large that its byte size overflows is still only "too short".
        let b = area_with(&[(32, 16, 0, u32::MAX)], 32);
        assert!(matches!(
            rules(&b[..32], 32)[0],
            Err((48, Rule::CapTruncated { id: 16, .. }))
        ));
    }

    #[test]
    fn io_fds_stride_from_argsz_or_bytes() {
        let data = [0u8; 96];
        assert_eq!(
            IoFdEntries::parse(&data, 16 + 96, 2, 32).unwrap().layout(),
            IoFdLayout::Shadow
        );
        assert_eq!(
            IoFdEntries::parse(&data[..80], 16 + 80, 2, 32)
                .unwrap()
                .layout(),
            IoFdLayout::Spec
        );
        // argsz says nothing useful (a cut reply): fall back to the bytes present.
        assert_eq!(
            IoFdEntries::parse(&data[..80], 7, 2, 32).unwrap().layout(),
            IoFdLayout::Spec
        );
        let e = IoFdEntries::parse(&data[..50], 7, 2, 32).unwrap_err();
        assert_eq!(
            (e.offset, e.rule),
            (
                32,
                Rule::IoFdStride {
                    argsz: 7,
                    count: 2,
                    have: 50
                }
            )
        );
        let e = IoFdEntries::parse(&data[..40], 16 + 96, 2, 32).unwrap_err();
        assert_eq!(e.rule.id(), "short-body");
    }
}
