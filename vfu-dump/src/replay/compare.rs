//! The comparison rule: which fields of a live message must equal the captured one.
//!
//! Both messages are walked part by part with [`vfu_codec::Message::for_each_part`], and every field
//! of the codec's field tables is compared, except the ones `ignored` names; the rule is written
//! out in the module docs of [`crate::replay`].

use std::fmt::Write as _;

use vfu_codec::wire::{Layout, WireStruct};
use vfu_codec::{DataKind, Header, Part, decode};

use crate::render::value_text;

/// One field that differs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldDiff {
    /// `Header.error_no`, `RegionInfo.size`, `SparseMmapArea[0].offset`, `Data`, `fds`, …
    pub field: String,
    /// Its value in the capture.
    pub captured: String,
    /// Its value in the replay.
    pub replayed: String,
}

/// One side of a comparison.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Side<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) fds: u32,
}

/// What a comparison leaves out besides the fixed rule.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Skip {
    /// The transferred data bytes (their length is still compared): memory contents the replay
    /// cannot reproduce.
    pub(crate) data: bool,
}

/// Whether field `name` of struct `layout` is left out of the comparison; `fds` says that either
/// message carried descriptors.
///
/// - `RegionInfo.offset` of a message with descriptors: the mmap offset into that descriptor's file.
/// - `SparseMmapFdArea.fd_offset` and `IoFdShadowEntry.shadow_offset`: offsets into descriptors.
/// - `DmaMap.offset` of a message with descriptors: the offset into the memory file the client
///   passed.
pub(crate) fn ignored(layout: &str, name: &str, fds: bool) -> bool {
    matches!(
        (layout, name, fds),
        ("RegionInfo", "offset", true)
            | ("DmaMap", "offset", true)
            | ("SparseMmapFdArea", "fd_offset", _)
            | ("IoFdShadowEntry", "shadow_offset", _)
    )
}

/// A part with its bytes, for walking two messages side by side.
#[derive(Clone, Copy)]
enum Piece<'a> {
    Struct {
        layout: Layout,
        index: Option<usize>,
        bytes: &'a [u8],
    },
    Data {
        kind: DataKind,
        bytes: &'a [u8],
    },
}

impl Piece<'_> {
    fn name(&self) -> String {
        match self {
            Piece::Struct {
                layout,
                index: Some(i),
                ..
            } => format!("{}[{i}]", layout.name),
            Piece::Struct { layout, .. } => layout.name.to_owned(),
            Piece::Data { kind, bytes } => format!("{kind:?}({}B)", bytes.len()),
        }
    }

    fn same_shape(&self, other: &Piece<'_>) -> bool {
        match (self, other) {
            (
                Piece::Struct {
                    layout: a,
                    index: ia,
                    ..
                },
                Piece::Struct {
                    layout: b,
                    index: ib,
                    ..
                },
            ) => a.name == b.name && ia == ib,
            (Piece::Data { kind: a, .. }, Piece::Data { kind: b, .. }) => a == b,
            _ => false,
        }
    }
}

fn pieces<'a>(msg: &vfu_codec::Message<'a>) -> Vec<Piece<'a>> {
    let mut v = Vec::new();
    msg.for_each_part(|p| match p {
        Part::Struct {
            layout,
            bytes,
            index,
            ..
        } => {
            if layout.name != Header::NAME {
                v.push(Piece::Struct {
                    layout,
                    index,
                    bytes,
                });
            }
        }
        Part::Data { kind, bytes, .. } => v.push(Piece::Data { kind, bytes }),
    });
    v
}

fn field_value(f: &vfu_codec::wire::Field, bytes: &[u8]) -> String {
    let mut s = String::new();
    value_text(f, bytes, &mut s);
    s
}

/// Text for a run of data bytes that differs: the bytes themselves when short, else the length and
/// the first byte that differs.
fn data_text(mine: &[u8], other: &[u8], kind: DataKind) -> String {
    if kind == DataKind::Json {
        return String::from_utf8_lossy(mine).into_owned();
    }
    if mine.len() <= 16 && other.len() <= 16 {
        let mut s = String::new();
        for b in mine {
            let _ = write!(s, "{b:02x}");
        }
        if s.is_empty() {
            s.push_str("(none)");
        }
        return s;
    }
    let at = mine.iter().zip(other).position(|(a, b)| a != b);
    match at {
        Some(i) => format!("{} bytes, byte {i} = {:#04x}", mine.len(), mine[i]),
        None => format!("{} bytes", mine.len()),
    }
}

fn push(out: &mut Vec<FieldDiff>, field: impl Into<String>, captured: String, replayed: String) {
    out.push(FieldDiff {
        field: field.into(),
        captured,
        replayed,
    });
}

fn header_fields(c: &Header, l: &Header, out: &mut Vec<FieldDiff>, with_size: bool) {
    use zerocopy::IntoBytes;
    let (cb, lb) = (c.as_bytes(), l.as_bytes());
    for f in Header::FIELDS {
        if f.name == "msg_size" && !with_size {
            continue;
        }
        if f.bytes(cb) != f.bytes(lb) {
            push(
                out,
                format!("Header.{}", f.name),
                field_value(f, cb),
                field_value(f, lb),
            );
        }
    }
}

/// The fields in which `live` differs from `captured`, by the replay's comparison rule.
pub(crate) fn compare(captured: Side<'_>, live: Side<'_>, skip: Skip) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    let (Some(hc), Some(hl)) = (Header::peek(captured.bytes), Header::peek(live.bytes)) else {
        if captured.bytes != live.bytes {
            push(
                &mut out,
                "message",
                format!("{} bytes", captured.bytes.len()),
                format!("{} bytes", live.bytes.len()),
            );
        }
        return out;
    };
    // An error reply's payload is ignored: receivers must ignore it (spec §1, header rule 5).
    let error = hc.is_reply() && hc.is_error() || hl.is_reply() && hl.is_error();
    header_fields(hc, hl, &mut out, !error);
    if (captured.fds > 0) != (live.fds > 0) {
        push(
            &mut out,
            "fds",
            captured.fds.to_string(),
            live.fds.to_string(),
        );
    }
    if error {
        return out;
    }
    let fds = captured.fds > 0 || live.fds > 0;
    let (dc, dl) = (
        decode(captured.bytes, vfu_codec::Direction::ClientToServer),
        decode(live.bytes, vfu_codec::Direction::ClientToServer),
    );
    let (Ok(mc), Ok(ml)) = (&dc, &dl) else {
        // A message that does not decode is compared byte for byte after the header.
        let (pc, pl) = (&captured.bytes[16..], &live.bytes[16..]);
        if pc != pl {
            let status = |d: &Result<_, vfu_codec::DecodeError>| match d {
                Ok(_) => "decodes".to_owned(),
                Err(e) => format!("malformed: {e}"),
            };
            if dc.is_ok() != dl.is_ok() {
                push(&mut out, "decode", status(&dc), status(&dl));
            }
            push(
                &mut out,
                "payload",
                data_text(pc, pl, DataKind::Raw),
                data_text(pl, pc, DataKind::Raw),
            );
        }
        return out;
    };
    let (pc, pl) = (pieces(mc), pieces(ml));
    for (i, (a, b)) in pc.iter().zip(&pl).enumerate() {
        if !a.same_shape(b) {
            let rest = |v: &[Piece<'_>]| v.iter().map(Piece::name).collect::<Vec<_>>().join(", ");
            push(&mut out, "body", rest(&pc[i..]), rest(&pl[i..]));
            return out;
        }
        match (a, b) {
            (
                Piece::Struct {
                    layout,
                    index,
                    bytes: ab,
                },
                Piece::Struct { bytes: bb, .. },
            ) => {
                for f in layout.fields {
                    if ignored(layout.name, f.name, fds) || f.bytes(ab) == f.bytes(bb) {
                        continue;
                    }
                    let name = match index {
                        Some(i) => format!("{}[{i}].{}", layout.name, f.name),
                        None => format!("{}.{}", layout.name, f.name),
                    };
                    push(&mut out, name, field_value(f, ab), field_value(f, bb));
                }
            }
            (Piece::Data { kind, bytes: ab }, Piece::Data { bytes: bb, .. }) => {
                let skipped = skip.data && *kind == DataKind::Data && ab.len() == bb.len();
                if ab != bb && !skipped {
                    push(
                        &mut out,
                        format!("{kind:?}"),
                        data_text(ab, bb, *kind),
                        data_text(bb, ab, *kind),
                    );
                }
            }
            _ => {}
        }
    }
    if pc.len() != pl.len() {
        let n = pc.len().min(pl.len());
        let rest = |v: &[Piece<'_>]| {
            let s = v.iter().map(Piece::name).collect::<Vec<_>>().join(", ");
            if s.is_empty() {
                "(nothing)".to_owned()
            } else {
                s
            }
        };
        push(&mut out, "body", rest(&pc[n..]), rest(&pl[n..]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use vfu_codec::vfio::{DmaAccess, DmaMap, RegionInfo};
    use vfu_codec::{Body, Command, encode_to_vec};
    use zerocopy::little_endian::{U32, U64};

    fn region_reply(size: u64, offset: u64) -> Vec<u8> {
        let info = RegionInfo {
            argsz: U32::new(32),
            flags: U32::new(7),
            index: U32::new(0),
            cap_offset: U32::new(0),
            size: U64::new(size),
            offset: U64::new(offset),
        };
        encode_to_vec(
            &Header::reply(5, Command::DEVICE_GET_REGION_INFO),
            &Body::RegionInfo {
                info: &info,
                caps: &[],
            },
        )
        .unwrap()
    }

    fn side(bytes: &[u8], fds: u32) -> Side<'_> {
        Side { bytes, fds }
    }

    #[test]
    fn equal_messages_have_no_diff() {
        let a = region_reply(0x1000, 0);
        assert!(compare(side(&a, 0), side(&a, 0), Skip::default()).is_empty());
    }

    #[test]
    fn a_field_diff_names_struct_and_field() {
        let (a, b) = (region_reply(0x1000, 0), region_reply(0x2000, 0));
        let d = compare(side(&a, 0), side(&b, 0), Skip::default());
        assert_eq!(
            d,
            [FieldDiff {
                field: "RegionInfo.size".into(),
                captured: "0x1000".into(),
                replayed: "0x2000".into()
            }]
        );
    }

    #[test]
    fn region_offset_is_ignored_only_with_descriptors() {
        let (a, b) = (region_reply(0x1000, 0), region_reply(0x1000, 0x8000));
        assert!(compare(side(&a, 1), side(&b, 1), Skip::default()).is_empty());
        let d = compare(side(&a, 0), side(&b, 0), Skip::default());
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].field, "RegionInfo.offset");
        // Descriptor counts: presence only.
        assert!(compare(side(&a, 1), side(&a, 2), Skip::default()).is_empty());
        let d = compare(side(&a, 1), side(&a, 0), Skip::default());
        assert_eq!((d[0].field.as_str(), d[0].replayed.as_str()), ("fds", "0"));
    }

    #[test]
    fn error_replies_compare_the_header_only() {
        let mut a =
            encode_to_vec(&Header::error_reply(3, Command::DMA_MAP, 22), &Body::Empty).unwrap();
        let b = encode_to_vec(&Header::error_reply(3, Command::DMA_MAP, 1), &Body::Empty).unwrap();
        let d = compare(side(&a, 0), side(&b, 0), Skip::default());
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].field, "Header.error_no");
        assert_eq!(
            (d[0].captured.as_str(), d[0].replayed.as_str()),
            ("EINVAL (22)", "EPERM (1)")
        );
        // A payload on an error reply (lvu) is not compared, nor its size.
        a.extend_from_slice(&[0; 8]);
        a[4] = 24;
        let c = encode_to_vec(&Header::error_reply(3, Command::DMA_MAP, 22), &Body::Empty).unwrap();
        assert!(compare(side(&a, 0), side(&c, 0), Skip::default()).is_empty());
    }

    #[test]
    fn dma_data_skip_keeps_the_length() {
        let access = DmaAccess::new(0x1000, 4);
        let m = |d: &[u8]| {
            encode_to_vec(
                &Header::command(1, Command::DMA_WRITE),
                &Body::DmaRw {
                    access: &access,
                    data: d,
                },
            )
            .unwrap()
        };
        let (a, b) = (m(b"abcd"), m(b"abce"));
        let skip = Skip { data: true };
        assert!(compare(side(&a, 0), side(&b, 0), skip).is_empty());
        let d = compare(side(&a, 0), side(&b, 0), Skip::default());
        assert_eq!(
            (
                d[0].field.as_str(),
                d[0].captured.as_str(),
                d[0].replayed.as_str()
            ),
            ("Data", "61626364", "61626365")
        );
    }

    #[test]
    fn dma_map_offset_is_descriptor_dependent() {
        let m = |off| {
            encode_to_vec(
                &Header::command(1, Command::DMA_MAP),
                &Body::DmaMap(&DmaMap::new(3, off, 0x10000, 0x1000)),
            )
            .unwrap()
        };
        let (a, b) = (m(0), m(0x4000));
        assert!(compare(side(&a, 1), side(&b, 1), Skip::default()).is_empty());
        assert_eq!(
            compare(side(&a, 0), side(&b, 0), Skip::default())[0].field,
            "DmaMap.offset"
        );
    }

    #[test]
    fn undecodable_messages_compare_their_bytes() {
        let a = region_reply(0x1000, 0);
        let mut b = a.clone();
        // CAPS with cap_offset 32 and no capability: malformed.
        b[16 + 4] |= 8;
        b[16 + 12] = 32;
        let d = compare(side(&a, 0), side(&b, 0), Skip::default());
        assert_eq!(d[0].field, "decode");
        assert!(d[0].replayed.starts_with("malformed"), "{d:?}");
        assert!(compare(side(&b, 0), side(&b, 0), Skip::default()).is_empty());
    }
}
