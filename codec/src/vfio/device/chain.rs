//! The region capability chain of a DEVICE_GET_REGION_INFO reply (§2.5), walked with every pointer
//! checked.

use zerocopy::FromBytes;

use super::region::{
    CapHeader, CapSparseMmap, CapSparseMmapFds, CapType, RegionInfo, SparseMmapArea,
    SparseMmapFdArea, VFIO_REGION_INFO_CAP_SPARSE_MMAP, VFIO_REGION_INFO_CAP_SPARSE_MMAP_FDS,
    VFIO_REGION_INFO_CAP_TYPE,
};
use crate::error::{DecodeError, Rule};

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
