//! DMA_MAP (§2.2), DMA_UNMAP (§2.3) and the legacy dirty bitmap that DMA_UNMAP and DIRTY_PAGES carry (§4).

use zerocopy::little_endian::{U32, U64};

use crate::wire::{FlagSpec, Show};

/// DMA_MAP flag: the server may read the range.
pub const VFIO_USER_F_DMA_REGION_READ: u32 = 1;
/// DMA_MAP flag: the server may write the range.
pub const VFIO_USER_F_DMA_REGION_WRITE: u32 = 2;
/// DMA_MAP flag \[pending\]: access through mmap of the fd.
pub const VFIO_USER_F_DMA_REGION_MMAP: u32 = 4;
/// DMA_MAP flag \[pending\]: access through file I/O on the fd.
pub const VFIO_USER_F_DMA_REGION_FILE_IO: u32 = 8;

/// Parts of DMA_MAP's `flags`.
pub const DMA_MAP_FLAGS: &[FlagSpec] = &[
    FlagSpec::bit(1, "READ"),
    FlagSpec::bit(2, "WRITE"),
    FlagSpec::bit(4, "MMAP"),
    FlagSpec::bit(8, "FILE_IO"),
];

/// DMA_UNMAP flag (legacy, lvu): a dirty bitmap header follows and the reply carries the bitmap.
pub const VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP: u32 = 1;
/// DMA_UNMAP flag (\[impl\], both implementations): unmap everything; address and size must be 0.
pub const VFIO_DMA_UNMAP_FLAG_ALL: u32 = 2;

/// Parts of DMA_UNMAP's `flags`.
pub const DMA_UNMAP_FLAGS: &[FlagSpec] = &[
    FlagSpec::bit(1, "GET_DIRTY_BITMAP"),
    FlagSpec::bit(2, "UNMAP_ALL"),
];

crate::wire::wire_struct! {
    /// DMA_MAP request body: map `[address, address + size)` of the client's memory.
    pub struct DmaMap("vfio-user spec §2.2 VFIO_USER_DMA_MAP", size 32) {
        /// The structure size, 32 (DMA_MAP has no reply payload).
        argsz: U32 = Show::Dec,
        /// READ, WRITE and the pending access-mode bits.
        flags: U32 = Show::Flags(DMA_MAP_FLAGS); key,
        /// File offset inside the passed fd; 0 without an fd.
        offset: U64 = Show::Hex,
        /// DMA (IOVA) base address.
        address: U64 = Show::Hex; key,
        /// Length of the range.
        size: U64 = Show::Hex; key,
    }

    /// DMA_UNMAP request and reply body (the reply echoes the request entry).
    pub struct DmaUnmap("vfio-user spec §2.3 VFIO_USER_DMA_UNMAP", size 24) {
        /// Request: largest reply payload accepted; reply: full reply payload size.
        argsz: U32 = Show::Dec,
        /// UNMAP_ALL and the legacy GET_DIRTY_BITMAP.
        flags: U32 = Show::Flags(DMA_UNMAP_FLAGS); key,
        /// Base address; must equal a mapped window's address exactly.
        address: U64 = Show::Hex; key,
        /// Length; must equal that window's size exactly.
        size: U64 = Show::Hex; key,
    }

    /// Legacy dirty-bitmap header: follows DMA_UNMAP with GET_DIRTY_BITMAP and DIRTY_PAGES GET_BITMAP.
    pub struct DirtyBitmap("vfio-user draft 0.9.1 §4 (struct vfio_user_bitmap)", size 16) {
        /// Page size each bit covers.
        pgsize: U64 = Show::Hex; key,
        /// Size of the bitmap in bytes.
        size: U64 = Show::Dec; key,
    }
}

impl DmaMap {
    /// A DMA_MAP request (§2.2) mapping `[address, address + size)` with `flags` (READ, WRITE and the
    /// pending access modes); `offset` is the file offset in the fd sent with it, 0 without one;
    /// `argsz` = 32, the structure size.
    pub fn new(flags: u32, offset: u64, address: u64, size: u64) -> Self {
        DmaMap {
            argsz: U32::new(32),
            flags: U32::new(flags),
            offset: U64::new(offset),
            address: U64::new(address),
            size: U64::new(size),
        }
    }
}

impl DmaUnmap {
    /// A DMA_UNMAP request, or the reply that echoes it (§2.3), for the window `[address, address +
    /// size)` with `flags` (0, or the \[impl\] UNMAP_ALL and legacy GET_DIRTY_BITMAP bits); `argsz` = 24,
    /// the entry without a bitmap (with GET_DIRTY_BITMAP the request offers 40 + the bitmap's size:
    /// set `argsz` to that; [`encode`](crate::encode) computes a reply's).
    pub fn new(flags: u32, address: u64, size: u64) -> Self {
        DmaUnmap {
            argsz: U32::new(24),
            flags: U32::new(flags),
            address: U64::new(address),
            size: U64::new(size),
        }
    }

    /// A DMA_UNMAP request with the \[impl\] UNMAP_ALL flag: unmap every window (address and size 0).
    pub fn all() -> Self {
        Self::new(VFIO_DMA_UNMAP_FLAG_ALL, 0, 0)
    }
}

impl DirtyBitmap {
    /// A legacy dirty-bitmap header (§4): `size` bytes of bitmap, each bit covering `pgsize` bytes
    /// (see [`dirty_bitmap_bytes`]).
    pub fn new(pgsize: u64, size: u64) -> Self {
        DirtyBitmap {
            pgsize: U64::new(pgsize),
            size: U64::new(size),
        }
    }
}

/// Bytes of a dirty bitmap covering `size` bytes at `pgsize` granularity: ceil(ceil(size/pgsize)/64)·8.
/// `None` when `pgsize` is 0 or the result overflows.
pub fn dirty_bitmap_bytes(size: u64, pgsize: u64) -> Option<u64> {
    if pgsize == 0 {
        return None;
    }
    let pages = size.div_ceil(pgsize);
    pages.div_ceil(64).checked_mul(8)
}
