//! [`Message::for_each_part`]: a decoded message as the parts it is made of, in wire order, each with
//! its offset and field table (what the dump tool's verbose, hex and JSON views walk).

use super::body::{Body, FeatureData, Message};
use crate::vfio::device::{
    IoFdEntries, RegionCap, RegionInfo, SparseMmapArea, SparseMmapFdArea,
    VFIO_REGION_INFO_FLAG_CAPS,
};
use crate::wire::{Layout, WireStruct};

/// What a run of variable bytes in a message holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataKind {
    /// Data being transferred (region, DMA, migration data, DATA_BOOL bytes).
    Data,
    /// VERSION capabilities JSON text (without the NUL).
    Json,
    /// The NUL that terminates the JSON text.
    Nul,
    /// A dirty bitmap.
    Bitmap,
    /// The capability area of a region-info reply that is not part of a capability (padding, or
    /// everything when the chain could not be walked).
    CapArea,
    /// An unknown command's payload, or unknown feature data.
    Raw,
    /// Bytes after the body ([`Message::trailing`]).
    Trailing,
}

/// One piece of a message, in wire order, with its offset in the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part<'a> {
    /// A fixed-layout struct (the header, a body, a capability, an array element).
    Struct {
        /// Its field table.
        layout: Layout,
        /// Offset of its first byte in the message.
        offset: usize,
        /// Its bytes.
        bytes: &'a [u8],
        /// Its position when it is an element of an array.
        index: Option<usize>,
    },
    /// Variable bytes.
    Data {
        /// What they are.
        kind: DataKind,
        /// Offset of the first byte in the message.
        offset: usize,
        /// The bytes.
        bytes: &'a [u8],
    },
}

impl Part<'_> {
    /// Offset of the part's first byte in the message.
    pub fn offset(&self) -> usize {
        match *self {
            Part::Struct { offset, .. } | Part::Data { offset, .. } => offset,
        }
    }

    /// Length of the part.
    pub fn len(&self) -> usize {
        match *self {
            Part::Struct { bytes, .. } | Part::Data { bytes, .. } => bytes.len(),
        }
    }

    /// Whether the part is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct PartWalker<'a, F: FnMut(Part<'a>)> {
    at: usize,
    f: F,
    _p: core::marker::PhantomData<&'a ()>,
}

impl<'a, F: FnMut(Part<'a>)> PartWalker<'a, F> {
    fn one<T: WireStruct>(&mut self, t: &'a T) {
        let bytes = t.as_bytes();
        (self.f)(Part::Struct {
            layout: Layout::of::<T>(),
            offset: self.at,
            bytes,
            index: None,
        });
        self.at += bytes.len();
    }

    fn many<T: WireStruct>(&mut self, ts: &'a [T]) {
        for (i, t) in ts.iter().enumerate() {
            let bytes = t.as_bytes();
            (self.f)(Part::Struct {
                layout: Layout::of::<T>(),
                offset: self.at,
                bytes,
                index: Some(i),
            });
            self.at += bytes.len();
        }
    }

    fn data(&mut self, kind: DataKind, bytes: &'a [u8]) {
        if !bytes.is_empty() {
            (self.f)(Part::Data {
                kind,
                offset: self.at,
                bytes,
            });
            self.at += bytes.len();
        }
    }

    /// The capability area: walks the chain when it is sound, else shows it as bytes.
    fn caps(&mut self, info: &'a RegionInfo, area: &'a [u8], reply: bool) {
        let start = self.at;
        let body = Body::RegionInfo { info, caps: area };
        let chain_ok = reply
            && body
                .region_caps()
                .is_some_and(|mut it| it.all(|c| c.is_ok()));
        if !chain_ok || info.flags.get() & VFIO_REGION_INFO_FLAG_CAPS == 0 {
            self.data(DataKind::CapArea, area);
            return;
        }
        // Capabilities may appear in any forward order with gaps: emit them sorted by offset (the chain
        // only moves forward, so chain order is offset order), with gaps as CapArea bytes.
        let mut pos = 32usize; // payload offset reached
        for cap in body.region_caps().into_iter().flatten().flatten() {
            let at = cap.offset();
            if at > pos {
                self.at = start + (pos - 32);
                self.data(DataKind::CapArea, &area[pos - 32..at - 32]);
            }
            self.at = start + (at - 32);
            match cap {
                RegionCap::SparseMmap { head, areas, .. } => {
                    self.one(head);
                    self.many::<SparseMmapArea>(areas);
                }
                RegionCap::Type { cap, .. } => self.one(cap),
                RegionCap::SparseMmapFds { head, areas, .. } => {
                    self.one(head);
                    self.many::<SparseMmapFdArea>(areas);
                }
                RegionCap::Unknown { header, .. } => self.one(header),
            }
            pos = pos.max(self.at - start + 32);
        }
        if pos - 32 < area.len() {
            self.at = start + (pos - 32);
            self.data(DataKind::CapArea, &area[pos - 32..]);
        }
        self.at = start + area.len();
    }
}

impl<'a> Message<'a> {
    /// Calls `f` with every part of the message in wire order: the header, the body's fixed parts,
    /// arrays element by element, capabilities, and variable data, each with its message offset.
    /// Parts that overlap (capabilities that overlap each other) are shown as laid out by the chain.
    pub fn for_each_part(&self, f: impl FnMut(Part<'a>)) {
        let mut w = PartWalker {
            at: 0,
            f,
            _p: core::marker::PhantomData,
        };
        w.one(self.header);
        let reply = self.is_reply();
        match self.body {
            Body::Empty | Body::Error => {}
            Body::Version(v) => {
                w.one(v.version);
                if let Some(j) = v.json {
                    w.data(DataKind::Json, j);
                    w.data(DataKind::Nul, &[0]);
                }
            }
            Body::DmaMap(m) => w.one(m),
            Body::DmaUnmap {
                unmap,
                bitmap,
                data,
            } => {
                w.one(unmap);
                if let Some(b) = bitmap {
                    w.one(b);
                }
                w.data(DataKind::Bitmap, data);
            }
            Body::DeviceInfo(i) => w.one(i),
            Body::RegionInfo { info, caps } => {
                w.one(info);
                w.caps(info, caps, reply);
            }
            Body::RegionIoFds { head, entries } => {
                w.one(head);
                match entries {
                    IoFdEntries::Spec(e) => w.many(e),
                    IoFdEntries::Shadow(e) => w.many(e),
                }
            }
            Body::IrqInfo(i) => w.one(i),
            Body::SetIrqs { set, data } => {
                w.one(set);
                w.data(DataKind::Data, data);
            }
            Body::RegionRw { access, data } => {
                w.one(access);
                w.data(DataKind::Data, data);
            }
            Body::DmaRw { access, data } => {
                w.one(access);
                w.data(DataKind::Data, data);
            }
            Body::WriteMulti { head, entries } => {
                w.one(head);
                w.many(entries);
            }
            Body::DeviceFeature { head, data } => {
                w.one(head);
                match data {
                    FeatureData::None => {}
                    FeatureData::Migration(m) => w.one(m),
                    FeatureData::MigState(m) => w.one(m),
                    FeatureData::LoggingControl { control, ranges } => {
                        w.one(control);
                        w.many(ranges);
                    }
                    FeatureData::LoggingReport { report, bitmap } => {
                        w.one(report);
                        w.data(DataKind::Bitmap, bitmap);
                    }
                    FeatureData::Raw(r) => w.data(DataKind::Raw, r),
                }
            }
            Body::MigData { head, data } => {
                w.one(head);
                w.data(DataKind::Data, data);
            }
            Body::PrecopyInfo(i) => w.one(i),
            Body::DirtyPages {
                head,
                range,
                bitmap,
            } => {
                w.one(head);
                if let Some(r) = range {
                    w.one(r);
                }
                w.data(DataKind::Bitmap, bitmap);
            }
            Body::Unknown(p) => w.data(DataKind::Raw, p),
        }
        w.data(DataKind::Trailing, self.trailing);
    }
}
