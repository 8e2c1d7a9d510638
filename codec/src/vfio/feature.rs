//! DEVICE_FEATURE (§2.15) and its feature data, MIG_DATA_READ/WRITE (§2.16, §2.17),
//! GET_PRECOPY_INFO \[pending\] (§2.18) and the legacy DIRTY_PAGES command (§4).

use zerocopy::little_endian::{I32, U32, U64};

use crate::wire::{FlagSpec, Named, Show, named};

/// `VFIO_DEVICE_FEATURE_MASK`: bits 0–15 name the feature.
pub const VFIO_DEVICE_FEATURE_MASK: u32 = 0xffff;
/// `VFIO_DEVICE_FEATURE_GET`.
pub const VFIO_DEVICE_FEATURE_GET: u32 = 0x10000;
/// `VFIO_DEVICE_FEATURE_SET`.
pub const VFIO_DEVICE_FEATURE_SET: u32 = 0x20000;
/// `VFIO_DEVICE_FEATURE_PROBE`.
pub const VFIO_DEVICE_FEATURE_PROBE: u32 = 0x40000;

/// `VFIO_DEVICE_FEATURE_MIGRATION`.
pub const VFIO_DEVICE_FEATURE_MIGRATION: u16 = 1;
/// `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE`.
pub const VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE: u16 = 2;
/// `VFIO_DEVICE_FEATURE_DMA_LOGGING_START`.
pub const VFIO_DEVICE_FEATURE_DMA_LOGGING_START: u16 = 6;
/// `VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP`.
pub const VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP: u16 = 7;
/// `VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT`.
pub const VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT: u16 = 8;

/// The five features defined for vfio-user.
pub const FEATURE_NAMES: &[Named] = &[
    named(1, "MIGRATION"),
    named(2, "MIG_DEVICE_STATE"),
    named(6, "DMA_LOGGING_START"),
    named(7, "DMA_LOGGING_STOP"),
    named(8, "DMA_LOGGING_REPORT"),
];

/// Parts of DEVICE_FEATURE's `flags`.
pub const DEVICE_FEATURE_FLAGS: &[FlagSpec] = &[
    FlagSpec::value(0xffff, "feature", FEATURE_NAMES),
    FlagSpec::bit(0x10000, "GET"),
    FlagSpec::bit(0x20000, "SET"),
    FlagSpec::bit(0x40000, "PROBE"),
];

/// `enum vfio_device_mig_state` names (vfio-user spec §3), the values of
/// [`FeatureMigState::device_state`] (`vfio::migration::MigState` is the typed state, and its module
/// re-exports this table).
pub const MIG_STATE_NAMES: &[Named] = &[
    named(0, "ERROR"),
    named(1, "STOP"),
    named(2, "RUNNING"),
    named(3, "STOP_COPY"),
    named(4, "RESUMING"),
    named(5, "RUNNING_P2P"),
    named(6, "PRE_COPY"),
    named(7, "PRE_COPY_P2P"),
];

/// `VFIO_MIGRATION_STOP_COPY`.
pub const VFIO_MIGRATION_STOP_COPY: u64 = 1;
/// `VFIO_MIGRATION_P2P`.
pub const VFIO_MIGRATION_P2P: u64 = 2;
/// `VFIO_MIGRATION_PRE_COPY`.
pub const VFIO_MIGRATION_PRE_COPY: u64 = 4;

/// Parts of the MIGRATION feature's `flags`.
pub const MIGRATION_FLAGS: &[FlagSpec] = &[
    FlagSpec::bit(1, "STOP_COPY"),
    FlagSpec::bit(2, "P2P"),
    FlagSpec::bit(4, "PRE_COPY"),
];

/// DIRTY_PAGES (legacy) flag: start logging.
pub const VFIO_IOMMU_DIRTY_PAGES_FLAG_START: u32 = 1;
/// DIRTY_PAGES (legacy) flag: stop logging.
pub const VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP: u32 = 2;
/// DIRTY_PAGES (legacy) flag: get the bitmap of a range.
pub const VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP: u32 = 4;

/// Parts of the legacy DIRTY_PAGES `flags`.
pub const DIRTY_PAGES_FLAGS: &[FlagSpec] = &[
    FlagSpec::bit(1, "START"),
    FlagSpec::bit(2, "STOP"),
    FlagSpec::bit(4, "GET_BITMAP"),
];

crate::wire::wire_struct! {
    /// DEVICE_FEATURE request and reply head (`struct vfio_device_feature`); feature data follows.
    pub struct DeviceFeature("vfio-user spec §2.15 VFIO_USER_DEVICE_FEATURE; <linux/vfio.h> vfio_device_feature", size 8) {
        /// Request: largest reply accepted; GET reply: full length.
        argsz: U32 = Show::Dec,
        /// Feature index (bits 0–15), GET, SET, PROBE.
        flags: U32 = Show::Flags(DEVICE_FEATURE_FLAGS); key,
    }

    /// MIGRATION feature data (`struct vfio_device_feature_migration`).
    pub struct FeatureMigration("vfio-user spec §2.15 feature 1; <linux/vfio.h> vfio_device_feature_migration", size 8) {
        /// STOP_COPY, P2P, PRE_COPY.
        flags: U64 = Show::Flags(MIGRATION_FLAGS); key,
    }

    /// MIG_DEVICE_STATE feature data (`struct vfio_device_feature_mig_state`).
    pub struct FeatureMigState("vfio-user spec §2.15 feature 2; <linux/vfio.h> vfio_device_feature_mig_state", size 8) {
        /// The requested (SET) or current (GET) migration state.
        device_state: U32 = Show::Enum(MIG_STATE_NAMES); key,
        /// Unused in vfio-user; 0 (libvfio-user's client sends -1). Signed (`__s32`), as in
        /// `<linux/vfio.h>`, where -1 means "no data fd".
        data_fd: I32 = Show::Dec,
    }

    /// DMA_LOGGING_START/STOP control (`struct vfio_device_feature_dma_logging_control`); ranges follow.
    pub struct DmaLoggingControl("vfio-user spec §2.15 features 6/7; <linux/vfio.h> vfio_device_feature_dma_logging_control", size 16) {
        /// Logging granularity.
        page_size: U64 = Show::Hex; key,
        /// Number of ranges that follow (0 = log everything).
        num_ranges: U32 = Show::Dec; key,
        /// Reserved, zero.
        reserved: U32 = Show::Reserved,
    }

    /// One logged range (`struct vfio_device_feature_dma_logging_range`).
    pub struct DmaLoggingRange("vfio-user spec §2.15; <linux/vfio.h> vfio_device_feature_dma_logging_range", size 16) {
        /// Start of the range.
        iova: U64 = Show::Hex,
        /// Length of the range.
        length: U64 = Show::Hex,
    }

    /// DMA_LOGGING_REPORT request and reply head (`struct vfio_device_feature_dma_logging_report`
    /// without its bitmap pointer); the reply's bitmap follows.
    pub struct DmaLoggingReport("vfio-user spec §2.15 feature 8", size 24) {
        /// Start of the range.
        iova: U64 = Show::Hex; key,
        /// Length of the range.
        length: U64 = Show::Hex; key,
        /// Bytes each bitmap bit covers (a power of two).
        page_size: U64 = Show::Hex; key,
    }

    /// MIG_DATA_READ and MIG_DATA_WRITE head, both directions; data follows.
    pub struct MigData("vfio-user spec §2.16/§2.17 VFIO_USER_MIG_DATA_READ/WRITE", size 8) {
        /// Request: largest reply accepted; reply: 8 + bytes returned.
        argsz: U32 = Show::Dec,
        /// Bytes wanted, returned or written.
        size: U32 = Show::Dec; key,
    }

    /// GET_PRECOPY_INFO request and reply \[pending\].
    pub struct PrecopyInfo("vfio-user pending §2.18 VFIO_USER_GET_PRECOPY_INFO", size 24) {
        /// 24.
        argsz: U32 = Show::Dec,
        /// Unused, 0.
        flags: U32 = Show::Hex,
        /// Reply: initial data available.
        initial_bytes: U64 = Show::Dec; key,
        /// Reply: dirty data available.
        dirty_bytes: U64 = Show::Dec; key,
    }

    /// Legacy DIRTY_PAGES request and reply head (draft 0.9.1, command 14).
    pub struct DirtyPages("vfio-user draft 0.9.1 §4 VFIO_USER_DIRTY_PAGES", size 8) {
        /// Largest reply accepted / full reply size.
        argsz: U32 = Show::Dec,
        /// START, STOP, GET_BITMAP (exactly one).
        flags: U32 = Show::Flags(DIRTY_PAGES_FLAGS); key,
    }

    /// Legacy DIRTY_PAGES GET_BITMAP range: iova, size and the bitmap header.
    pub struct DirtyPagesRange("vfio-user draft 0.9.1 §4 VFIO_USER_DIRTY_PAGES range", size 32) {
        /// Start of the range.
        iova: U64 = Show::Hex; key,
        /// Length of the range.
        size: U64 = Show::Hex; key,
        /// Page size of the bitmap.
        pgsize: U64 = Show::Hex,
        /// Size of the bitmap in bytes.
        bitmap_size: U64 = Show::Dec,
    }
}

impl DeviceFeature {
    /// A DEVICE_FEATURE head (§2.15) for `feature` with operation bits `ops` (GET, SET, PROBE); `argsz`
    /// is 0 and [`encode`](crate::encode) raises it to the payload. A GET request offers the largest
    /// reply it accepts: set `argsz` to that (8 + the feature data, e.g. 16 for MIGRATION).
    pub fn new(feature: u16, ops: u32) -> Self {
        DeviceFeature {
            argsz: U32::new(0),
            flags: U32::new(u32::from(feature) | ops),
        }
    }

    /// The feature index (bits 0–15).
    pub fn feature(&self) -> u16 {
        (self.flags.get() & VFIO_DEVICE_FEATURE_MASK) as u16
    }

    /// Whether GET is set.
    pub fn is_get(&self) -> bool {
        self.flags.get() & VFIO_DEVICE_FEATURE_GET != 0
    }

    /// Whether SET is set.
    pub fn is_set(&self) -> bool {
        self.flags.get() & VFIO_DEVICE_FEATURE_SET != 0
    }

    /// Whether PROBE is set.
    pub fn is_probe(&self) -> bool {
        self.flags.get() & VFIO_DEVICE_FEATURE_PROBE != 0
    }
}

impl FeatureMigration {
    /// The MIGRATION feature's data (§2.15 feature 1): `flags`, STOP_COPY (required), P2P, PRE_COPY.
    pub fn new(flags: u64) -> Self {
        FeatureMigration {
            flags: U64::new(flags),
        }
    }
}

impl FeatureMigState {
    /// The MIG_DEVICE_STATE feature's data (§2.15 feature 2): `device_state` (a
    /// `vfio::migration::MigState` value, `MigState::STOP_COPY.into()`), and `data_fd` 0, unused in
    /// vfio-user.
    pub fn new(device_state: u32) -> Self {
        FeatureMigState {
            device_state: U32::new(device_state),
            data_fd: I32::new(0),
        }
    }
}

impl DmaLoggingControl {
    /// The DMA_LOGGING_START/STOP control block (§2.15 features 6, 7): logging at `page_size`
    /// granularity over `num_ranges` ranges that follow it (0 = everything).
    pub fn new(page_size: u64, num_ranges: u32) -> Self {
        DmaLoggingControl {
            page_size: U64::new(page_size),
            num_ranges: U32::new(num_ranges),
            reserved: U32::new(0),
        }
    }
}

impl DmaLoggingRange {
    /// One logged range (§2.15): `length` bytes from `iova`.
    pub fn new(iova: u64, length: u64) -> Self {
        DmaLoggingRange {
            iova: U64::new(iova),
            length: U64::new(length),
        }
    }
}

impl DmaLoggingReport {
    /// The DMA_LOGGING_REPORT head (§2.15 feature 8): the dirty bitmap of `length` bytes from `iova`,
    /// one bit per `page_size` bytes (a power of two); in a reply the bitmap follows it.
    pub fn new(iova: u64, length: u64, page_size: u64) -> Self {
        DmaLoggingReport {
            iova: U64::new(iova),
            length: U64::new(length),
            page_size: U64::new(page_size),
        }
    }
}

impl MigData {
    /// A MIG_DATA_READ or MIG_DATA_WRITE head (§2.16, §2.17) for `size` bytes: wanted (READ request),
    /// returned (READ reply) or written (WRITE request); `argsz` = 8 + `size` in each (the READ
    /// request's largest reply, the READ reply's length, the WRITE request's length as libvfio-user
    /// requires).
    pub fn new(size: u32) -> Self {
        MigData {
            argsz: U32::new(size.saturating_add(8)),
            size: U32::new(size),
        }
    }
}

impl PrecopyInfo {
    /// A GET_PRECOPY_INFO request \[pending\] (§2.18): `argsz` = 24, the other fields 0.
    pub fn request() -> Self {
        PrecopyInfo {
            argsz: U32::new(24),
            ..PrecopyInfo::default()
        }
    }

    /// A GET_PRECOPY_INFO reply \[pending\] (§2.18): the initial and dirty data available.
    pub fn reply(initial_bytes: u64, dirty_bytes: u64) -> Self {
        PrecopyInfo {
            argsz: U32::new(24),
            flags: U32::new(0),
            initial_bytes: U64::new(initial_bytes),
            dirty_bytes: U64::new(dirty_bytes),
        }
    }
}

impl DirtyPages {
    /// A legacy DIRTY_PAGES head (§4) with exactly one of START, STOP or GET_BITMAP in `flags`; `argsz`
    /// = 8, which [`encode`](crate::encode) raises to the payload. A GET_BITMAP request offers 40 + the
    /// bitmap's size: set `argsz` to that.
    pub fn new(flags: u32) -> Self {
        DirtyPages {
            argsz: U32::new(8),
            flags: U32::new(flags),
        }
    }
}

impl DirtyPagesRange {
    /// The legacy DIRTY_PAGES GET_BITMAP range (§4): `size` bytes from `iova`, and a bitmap of
    /// `bitmap_size` bytes with one bit per `pgsize` bytes.
    pub fn new(iova: u64, size: u64, pgsize: u64, bitmap_size: u64) -> Self {
        DirtyPagesRange {
            iova: U64::new(iova),
            size: U64::new(size),
            pgsize: U64::new(pgsize),
            bitmap_size: U64::new(bitmap_size),
        }
    }
}
