//! DEVICE_GET_IRQ_INFO (§2.7) and DEVICE_SET_IRQS (§2.8).

use zerocopy::little_endian::U32;

use crate::wire::{FlagSpec, Named, Show, named};

/// PCI IRQ indices (`VFIO_PCI_*_IRQ_INDEX`).
pub const PCI_IRQ_NAMES: &[Named] = &[
    named(0, "INTX"),
    named(1, "MSI"),
    named(2, "MSIX"),
    named(3, "ERR"),
    named(4, "REQ"),
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
