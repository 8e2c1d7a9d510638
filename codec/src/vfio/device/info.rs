//! DEVICE_GET_INFO (§2.4).

use zerocopy::little_endian::U32;

use crate::wire::{FlagSpec, Show};

/// Parts of DEVICE_GET_INFO's `flags` (`VFIO_DEVICE_FLAGS_*`).
pub const DEVICE_INFO_FLAGS: &[FlagSpec] = &[FlagSpec::bit(1, "RESET"), FlagSpec::bit(2, "PCI")];
/// `VFIO_DEVICE_FLAGS_RESET`.
pub const VFIO_DEVICE_FLAGS_RESET: u32 = 1;
/// `VFIO_DEVICE_FLAGS_PCI`.
pub const VFIO_DEVICE_FLAGS_PCI: u32 = 2;

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
