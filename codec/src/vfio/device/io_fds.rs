//! DEVICE_GET_REGION_IO_FDS (§2.6): the head and the sub-region entries, in the spec's 40-byte layout
//! and libvfio-user's 48-byte one.

use zerocopy::FromBytes;
use zerocopy::little_endian::{U32, U64};

use super::region::PCI_REGION_NAMES;
use crate::error::{DecodeError, Rule};
use crate::wire::{FlagSpec, Named, Show, named};

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

crate::wire::wire_struct! {
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
