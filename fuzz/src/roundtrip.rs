//! The structure-aware target `roundtrip`: an [`Arbitrary`] description of a well-formed vfio-user
//! message, built into the codec's types, encoded with [`encode_exact`], decoded, and compared.
//!
//! The description covers every command in both types (and error replies), with the variable parts
//! made consistent the way a correct peer makes them: counts equal to the data that follows, flag bits
//! that announce optional parts exactly when they are present, a region capability chain that moves
//! forward through the area, IO_FDS `argsz` naming the stride, and capabilities JSON written by
//! [`Capabilities::emit`] from an arbitrary [`Capabilities`] value. So the decoder must give back
//! exactly the header, body and trailing bytes that were encoded, and the JSON must parse back to the
//! value it was emitted from.

use arbitrary::Arbitrary;
use vfu_codec::header::{VFIO_USER_F_ERROR, VFIO_USER_F_NO_REPLY, VFIO_USER_F_RESERVED};
use vfu_codec::message::body_len;
use vfu_codec::vfio::caps::{
    Capabilities, MAX_UNKNOWN_KEYS, Migration, Scope, TwinSocket, UnknownKey, Version,
    parse_capabilities,
};
use vfu_codec::vfio::dma::dirty_bitmap_bytes;
use vfu_codec::vfio::*;
use vfu_codec::{
    Body, Command, Direction, FeatureData, HEADER_SIZE, Header, VersionBody, decode, encode_exact,
};
use zerocopy::{FromBytes, Immutable, KnownLayout};

/// Most capabilities generated in one chain (the decoder's loop limit is 64).
const MAX_CAPS: usize = 64;
/// Largest DMA_LOGGING_REPORT bitmap generated at its exact size.
const MAX_REPORT_BITMAP: u64 = 4096;

/// A message: header fields and a body description; `trailing` is appended where the decoder leaves
/// bytes after the body (it is dropped where the body takes every byte).
#[derive(Arbitrary, Debug)]
pub struct MessageDesc {
    /// `msg_id`.
    pub msg_id: u16,
    /// Command, reply or error reply, and the NO_REPLY bit.
    pub kind: Kind,
    /// Bits 6–31 of `flags` (kept: the decoder does not interpret them).
    pub reserved_flags: u32,
    /// `error_no` (any value; meaningful only in an error reply).
    pub error_no: u32,
    /// The body.
    pub body: BodyDesc,
    /// Bytes after the body.
    pub trailing: Vec<u8>,
}

/// The message type.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Kind {
    /// A command; ERROR is meaningless in a command, so the decoder ignores it there.
    Command {
        /// NO_REPLY.
        no_reply: bool,
        /// The ERROR bit.
        error_bit: bool,
    },
    /// A success reply.
    Reply {
        /// NO_REPLY.
        no_reply: bool,
    },
    /// An error reply: the body is [`Body::Error`] and `trailing` its payload.
    ErrorReply {
        /// NO_REPLY.
        no_reply: bool,
    },
}

/// A body, by command. Fixed parts are raw bytes; the builder patches the fields that tie them to the
/// variable parts.
#[derive(Arbitrary, Debug)]
#[allow(missing_docs)]
pub enum BodyDesc {
    Version {
        major: u16,
        minor: u16,
        caps: Option<CapsDesc>,
    },
    DmaMap([u8; 32]),
    DmaUnmap {
        unmap: [u8; 24],
        dirty: Option<([u8; 16], Vec<u8>)>,
    },
    DeviceInfo([u8; 16]),
    RegionInfo {
        info: [u8; 32],
        caps_flag: bool,
        area: CapAreaDesc,
    },
    RegionIoFds {
        head: [u8; 16],
        entries: IoFdsDesc,
    },
    IrqInfo([u8; 16]),
    SetIrqs {
        set: [u8; 20],
        bools: Option<Vec<u8>>,
    },
    RegionRw {
        write: bool,
        access: Option<[u8; 16]>,
        data: Vec<u8>,
    },
    DmaRw {
        write: bool,
        access: Option<[u8; 16]>,
        data: Vec<u8>,
    },
    DeviceReset,
    DirtyPages {
        head: [u8; 8],
        range: Option<([u8; 32], Vec<u8>)>,
    },
    WriteMulti {
        head: [u8; 8],
        entries: Vec<[u8; 24]>,
    },
    DeviceFeature {
        head: [u8; 8],
        data: FeatureDesc,
    },
    MigData {
        write: bool,
        head: Option<[u8; 8]>,
        data: Vec<u8>,
    },
    PrecopyInfo([u8; 24]),
    Unknown {
        command: u16,
        payload: Vec<u8>,
    },
}

/// DEVICE_FEATURE data.
#[derive(Arbitrary, Debug)]
#[allow(missing_docs)]
pub enum FeatureDesc {
    None {
        feature: u16,
    },
    Migration([u8; 8]),
    MigState([u8; 8]),
    Logging {
        stop: bool,
        control: [u8; 16],
        ranges: Vec<[u8; 16]>,
    },
    Report {
        report: [u8; 24],
        bitmap: Vec<u8>,
    },
    Raw {
        feature: u16,
        bytes: Vec<u8>,
    },
}

/// IO_FDS reply entries.
#[derive(Arbitrary, Debug)]
#[allow(missing_docs)]
pub enum IoFdsDesc {
    Spec(Vec<[u8; 40]>),
    Shadow(Vec<[u8; 48]>),
}

/// A region-info capability area: filler, a forward chain of capabilities with gaps, filler.
#[derive(Arbitrary, Debug)]
#[allow(missing_docs)]
pub struct CapAreaDesc {
    pub lead: u8,
    pub caps: Vec<CapDesc>,
    pub tail: Vec<u8>,
}

/// One capability and the gap before it.
#[derive(Arbitrary, Debug)]
#[allow(missing_docs)]
pub struct CapDesc {
    pub gap: u8,
    pub version: u16,
    pub kind: CapKind,
}

/// The kinds of region capability.
#[derive(Arbitrary, Debug)]
#[allow(missing_docs)]
pub enum CapKind {
    SparseMmap { reserved: u32, areas: Vec<[u8; 16]> },
    Type { region_type: u32, subtype: u32 },
    SparseMmapFds { reserved: u32, areas: Vec<[u8; 32]> },
    Unknown { id: u16, body: Vec<u8> },
}

/// VERSION capabilities: the known members and extra (unknown or ill-typed) ones.
#[derive(Arbitrary, Debug)]
#[allow(missing_docs)]
pub struct CapsDesc {
    pub max_msg_fds: Option<u64>,
    pub max_data_xfer_size: Option<u64>,
    pub max_dma_maps: Option<u64>,
    pub pgsizes: Option<u64>,
    pub write_multiple: Option<bool>,
    pub migration: Option<(Option<u64>, Option<u64>)>,
    pub twin_socket: Option<(Option<bool>, Option<u64>)>,
    pub members: Vec<MemberDesc>,
}

/// An extra member.
#[derive(Arbitrary, Debug)]
#[allow(missing_docs)]
pub enum MemberDesc {
    /// A key no object knows (written `x…`), with any JSON value.
    Unknown {
        scope: ScopeDesc,
        key: Vec<u8>,
        value: ValueDesc,
    },
    /// A known key of the object with a value of the wrong type (only where the field is absent).
    IllTyped {
        scope: ScopeDesc,
        which: u8,
        value: u8,
    },
}

/// Which object.
#[derive(Arbitrary, Debug, Clone, Copy)]
#[allow(missing_docs)]
pub enum ScopeDesc {
    TopLevel,
    Capabilities,
    Migration,
    TwinSocket,
}

/// A JSON value.
#[derive(Arbitrary, Debug)]
#[allow(missing_docs)]
pub enum ValueDesc {
    Uint(u64),
    Int(i32),
    Fraction(u16, u8),
    Str(Vec<u8>),
    Bool(bool),
    Null,
    Array(Vec<u16>),
    Object(Vec<(u8, bool)>),
}

fn scope_of(s: ScopeDesc) -> Scope {
    match s {
        ScopeDesc::TopLevel => Scope::TopLevel,
        ScopeDesc::Capabilities => Scope::Capabilities,
        ScopeDesc::Migration => Scope::Migration,
        ScopeDesc::TwinSocket => Scope::TwinSocket,
    }
}

/// The order in which [`Capabilities::emit`] writes unknown members.
fn emit_order(s: Scope) -> u8 {
    match s {
        Scope::Migration => 0,
        Scope::TwinSocket => 1,
        Scope::Capabilities => 2,
        Scope::TopLevel => 3,
    }
}

fn key_text(raw: &[u8]) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789_-";
    let mut k = String::from("x");
    for &b in raw.iter().take(12) {
        k.push(ALPHABET[usize::from(b) % ALPHABET.len()] as char);
    }
    k
}

fn string_text(raw: &[u8]) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz ABC0123456789.:/";
    let mut s = String::from("\"");
    for &b in raw.iter().take(24) {
        s.push(ALPHABET[usize::from(b) % ALPHABET.len()] as char);
    }
    s.push('"');
    s
}

fn value_text(v: &ValueDesc) -> String {
    match v {
        ValueDesc::Uint(n) => n.to_string(),
        ValueDesc::Int(n) => n.to_string(),
        ValueDesc::Fraction(a, b) => format!("{a}.{b}"),
        ValueDesc::Str(s) => string_text(s),
        ValueDesc::Bool(b) => b.to_string(),
        ValueDesc::Null => "null".into(),
        ValueDesc::Array(xs) => {
            let items: Vec<String> = xs.iter().take(8).map(u16::to_string).collect();
            format!("[{}]", items.join(","))
        }
        ValueDesc::Object(ms) => {
            let mut seen = Vec::new();
            let mut items = Vec::new();
            for &(k, b) in ms.iter().take(8) {
                if !seen.contains(&k) {
                    seen.push(k);
                    items.push(format!("\"k{k}\":{b}"));
                }
            }
            format!("{{{}}}", items.join(","))
        }
    }
}

/// What type a known key wants.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Uint,
    Bool,
    Object,
}

/// A value of the wrong type for `want`.
fn bad_value(want: Want, pick: u8) -> String {
    let choices: &[&str] = match want {
        Want::Uint => &[
            "\"8\"",
            "-1",
            "1.5",
            "1e3",
            "18446744073709551616",
            "true",
            "null",
            "[]",
            "{}",
        ],
        Want::Bool => &["\"true\"", "1", "0", "null", "[]", "{}"],
        Want::Object => &["\"x\"", "23", "true", "null", "[]"],
    };
    choices[usize::from(pick) % choices.len()].to_owned()
}

/// The known keys of each object that may be made ill-typed, and the type they want.
fn known_keys(scope: Scope) -> &'static [(&'static str, Want)] {
    match scope {
        Scope::TopLevel => &[],
        Scope::Capabilities => &[
            ("max_msg_fds", Want::Uint),
            ("max_data_xfer_size", Want::Uint),
            ("max_dma_maps", Want::Uint),
            ("pgsizes", Want::Uint),
            ("write_multiple", Want::Bool),
            ("migration", Want::Object),
            ("twin_socket", Want::Object),
        ],
        Scope::Migration => &[("pgsize", Want::Uint), ("max_bitmap_size", Want::Uint)],
        Scope::TwinSocket => &[("supported", Want::Bool), ("fd_index", Want::Uint)],
    }
}

/// Builds the capabilities, emits them, checks that the text parses back to the same value, and
/// returns the text.
pub fn caps_json(d: &CapsDesc) -> Vec<u8> {
    // (scope, key, value, ill_typed), unique by (scope, key); declared first as `caps` borrows it.
    let mut members: Vec<(Scope, String, String, bool)> = Vec::new();
    let mut caps = Capabilities {
        max_msg_fds: d.max_msg_fds,
        max_data_xfer_size: d.max_data_xfer_size,
        max_dma_maps: d.max_dma_maps,
        pgsizes: d.pgsizes,
        write_multiple: d.write_multiple,
        migration: d.migration.map(|(pgsize, max_bitmap_size)| Migration {
            pgsize,
            max_bitmap_size,
        }),
        twin_socket: d.twin_socket.map(|(supported, fd_index)| TwinSocket {
            supported,
            fd_index,
        }),
        ..Capabilities::default()
    };
    for m in &d.members {
        if members.len() >= MAX_UNKNOWN_KEYS {
            break;
        }
        let (scope, key, value, ill) = match m {
            MemberDesc::Unknown { scope, key, value } => {
                (scope_of(*scope), key_text(key), value_text(value), false)
            }
            MemberDesc::IllTyped {
                scope,
                which,
                value,
            } => {
                let scope = scope_of(*scope);
                let keys = known_keys(scope);
                if keys.is_empty() {
                    continue;
                }
                let (key, want) = keys[usize::from(*which) % keys.len()];
                if crate::known_is_set(&caps, scope, key) {
                    continue;
                }
                (scope, key.to_owned(), bad_value(want, *value), true)
            }
        };
        if members.iter().any(|(s, k, _, _)| *s == scope && *k == key) {
            continue;
        }
        members.push((scope, key, value, ill));
    }
    // An object named by an ill-typed member cannot also be written for its own members.
    let ill_object = |name: &str| {
        members
            .iter()
            .any(|(s, k, _, ill)| *ill && *s == Scope::Capabilities && k == name)
    };
    let (no_migration, no_twin) = (ill_object("migration"), ill_object("twin_socket"));
    members.retain(|(s, ..)| {
        !(no_migration && *s == Scope::Migration || no_twin && *s == Scope::TwinSocket)
    });
    // Members of an inner object make it present.
    if members.iter().any(|(s, ..)| *s == Scope::Migration) && caps.migration.is_none() {
        caps.migration = Some(Migration::default());
    }
    if members.iter().any(|(s, ..)| *s == Scope::TwinSocket) && caps.twin_socket.is_none() {
        caps.twin_socket = Some(TwinSocket::default());
    }
    members.sort_by_key(|(s, ..)| emit_order(*s));
    for (scope, key, value, ill_typed) in &members {
        caps.unknown
            .push(UnknownKey {
                scope: *scope,
                key,
                value,
                ill_typed: *ill_typed,
            })
            .expect("at most MAX_UNKNOWN_KEYS members");
    }
    let text = crate::emit(&caps);
    {
        let parsed = parse_capabilities(&text).unwrap_or_else(|e| {
            panic!(
                "emitted capabilities do not parse: {e:?}: {}",
                String::from_utf8_lossy(&text)
            )
        });
        assert_eq!(parsed, caps, "{}", String::from_utf8_lossy(&text));
    }
    text
}

fn read<T: FromBytes>(bytes: &[u8]) -> T {
    T::read_from_bytes(bytes).expect("description arrays have the struct's size")
}

fn slice_of<T: FromBytes + KnownLayout + Immutable>(bytes: &[u8]) -> &[T] {
    <[T]>::ref_from_bytes(bytes).expect("a whole number of elements")
}

fn concat<const N: usize>(items: &[[u8; N]], max: usize) -> Vec<u8> {
    items.iter().take(max).flatten().copied().collect()
}

/// Builds the capability area; returns it and the first capability's payload offset (0 for none).
fn cap_area(d: &CapAreaDesc) -> (Vec<u8>, u32) {
    let mut area = vec![0xa5u8; usize::from(d.lead % 32)];
    let mut starts = Vec::new();
    for cap in d.caps.iter().take(MAX_CAPS) {
        area.extend(std::iter::repeat_n(0x5a, usize::from(cap.gap % 16)));
        let start = area.len();
        starts.push(start);
        let (id, body): (u16, Vec<u8>) = match &cap.kind {
            CapKind::SparseMmap { reserved, areas } => {
                let mut b = (areas.len().min(16) as u32).to_le_bytes().to_vec();
                b.extend(reserved.to_le_bytes());
                b.extend(concat(areas, 16));
                (VFIO_REGION_INFO_CAP_SPARSE_MMAP, b)
            }
            CapKind::Type {
                region_type,
                subtype,
            } => {
                let mut b = region_type.to_le_bytes().to_vec();
                b.extend(subtype.to_le_bytes());
                (VFIO_REGION_INFO_CAP_TYPE, b)
            }
            CapKind::SparseMmapFds { reserved, areas } => {
                let mut b = (areas.len().min(16) as u32).to_le_bytes().to_vec();
                b.extend(reserved.to_le_bytes());
                b.extend(concat(areas, 16));
                (VFIO_REGION_INFO_CAP_SPARSE_MMAP_FDS, b)
            }
            CapKind::Unknown { id, body } => {
                let id = match *id {
                    VFIO_REGION_INFO_CAP_SPARSE_MMAP
                    | VFIO_REGION_INFO_CAP_TYPE
                    | VFIO_REGION_INFO_CAP_SPARSE_MMAP_FDS => id + 100,
                    other => other,
                };
                (id, body.iter().take(64).copied().collect())
            }
        };
        area.extend(id.to_le_bytes());
        area.extend(cap.version.to_le_bytes());
        area.extend([0u8; 4]); // next, patched below
        area.extend(body);
    }
    for (i, &start) in starts.iter().enumerate() {
        let next = starts.get(i + 1).map_or(0, |&s| 32 + s as u32);
        area[start + 4..start + 8].copy_from_slice(&next.to_le_bytes());
    }
    area.extend(d.tail.iter().take(256));
    (area, starts.first().map_or(0, |&s| 32 + s as u32))
}

/// Encodes `header`/`body`/`trailing`, decodes the result and checks it is what was encoded.
fn check(header: &Header, body: &Body<'_>, trailing: &[u8]) {
    let need = HEADER_SIZE + body_len(body, trailing);
    let mut buf = vec![0xa5u8; need];
    let n = encode_exact(header, body, trailing, &mut buf)
        .unwrap_or_else(|e| panic!("encode_exact failed: {e:?} for {body:?}"));
    assert_eq!(n, need);
    assert!(encode_exact(header, body, trailing, &mut buf.clone()[..n - 1]).is_err());
    let direction = if header.is_reply() {
        Direction::ServerToClient
    } else {
        Direction::ClientToServer
    };
    let m = decode(&buf, direction)
        .unwrap_or_else(|e| panic!("encoder output does not decode: {e}\n{body:?}"));
    let mut want = *header;
    want.msg_size.set(n as u32);
    assert_eq!(*m.header, want);
    assert_eq!(m.body, *body, "body changed");
    assert_eq!(m.trailing, trailing, "trailing bytes changed");
    crate::check_decoded(&buf, &m);
}

/// The `roundtrip` target.
pub fn roundtrip(d: &MessageDesc) {
    let (reply, mut flags) = match d.kind {
        Kind::Command {
            no_reply,
            error_bit,
        } => (
            false,
            (u32::from(no_reply) * VFIO_USER_F_NO_REPLY)
                | (u32::from(error_bit) * VFIO_USER_F_ERROR),
        ),
        Kind::Reply { no_reply } => (true, 1 | (u32::from(no_reply) * VFIO_USER_F_NO_REPLY)),
        Kind::ErrorReply { no_reply } => (
            true,
            1 | VFIO_USER_F_ERROR | (u32::from(no_reply) * VFIO_USER_F_NO_REPLY),
        ),
    };
    flags |= d.reserved_flags & VFIO_USER_F_RESERVED;
    let header = |cmd: Command| Header::new(d.msg_id, cmd, flags, d.error_no);
    let t = &d.trailing[..];
    if let Kind::ErrorReply { .. } = d.kind {
        check(&header(command_of(&d.body)), &Body::Error, t);
        return;
    }
    let none: &[u8] = &[];
    match &d.body {
        BodyDesc::Version { major, minor, caps } => {
            let v = Version {
                major: (*major).into(),
                minor: (*minor).into(),
            };
            let json = caps.as_ref().map(caps_json);
            let body = Body::Version(VersionBody {
                version: &v,
                json: json.as_deref(),
            });
            check(&header(Command::VERSION), &body, none);
        }
        BodyDesc::DmaMap(b) if !reply => {
            check(&header(Command::DMA_MAP), &Body::DmaMap(&read(b)), t)
        }
        BodyDesc::DmaMap(_) => check(&header(Command::DMA_MAP), &Body::Empty, t),
        BodyDesc::DmaUnmap { unmap, dirty } => {
            let mut u: DmaUnmap = read(unmap);
            let f = u.flags.get();
            match dirty {
                Some((bm, data)) => {
                    u.flags.set(f | VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP);
                    let mut b: DirtyBitmap = read(bm);
                    let data = if reply { &data[..] } else { none };
                    if reply {
                        b.size.set(data.len() as u64);
                    }
                    let body = Body::DmaUnmap {
                        unmap: &u,
                        bitmap: Some(&b),
                        data,
                    };
                    check(&header(Command::DMA_UNMAP), &body, t);
                }
                None => {
                    u.flags.set(f & !VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP);
                    check(
                        &header(Command::DMA_UNMAP),
                        &Body::DmaUnmap {
                            unmap: &u,
                            bitmap: None,
                            data: none,
                        },
                        t,
                    );
                }
            }
        }
        BodyDesc::DeviceInfo(b) => check(
            &header(Command::DEVICE_GET_INFO),
            &Body::DeviceInfo(&read(b)),
            t,
        ),
        BodyDesc::RegionInfo {
            info,
            caps_flag,
            area,
        } => {
            let mut i: RegionInfo = read(info);
            let (bytes, first) = cap_area(area);
            if reply {
                let f = i.flags.get() & !VFIO_REGION_INFO_FLAG_CAPS;
                i.flags.set(if *caps_flag {
                    f | VFIO_REGION_INFO_FLAG_CAPS
                } else {
                    f
                });
                if *caps_flag {
                    i.cap_offset.set(first);
                }
            }
            check(
                &header(Command::DEVICE_GET_REGION_INFO),
                &Body::RegionInfo {
                    info: &i,
                    caps: &bytes,
                },
                none,
            );
        }
        BodyDesc::RegionIoFds { head, entries } => {
            let mut h: RegionIoFds = read(head);
            let (spec, shadow) = match entries {
                IoFdsDesc::Spec(e) => (concat(e, 64), Vec::new()),
                IoFdsDesc::Shadow(e) => (Vec::new(), concat(e, 64)),
            };
            let entries = if !reply {
                IoFdEntries::Spec(&[])
            } else if !shadow.is_empty() {
                IoFdEntries::Shadow(slice_of(&shadow))
            } else {
                IoFdEntries::Spec(slice_of(&spec))
            };
            if reply {
                let n = entries.len() as u32;
                h.count.set(n);
                if n > 0 {
                    h.argsz.set(16 + entries.as_bytes().len() as u32);
                }
            }
            check(
                &header(Command::DEVICE_GET_REGION_IO_FDS),
                &Body::RegionIoFds { head: &h, entries },
                t,
            );
        }
        BodyDesc::IrqInfo(b) => check(
            &header(Command::DEVICE_GET_IRQ_INFO),
            &Body::IrqInfo(&read(b)),
            t,
        ),
        BodyDesc::SetIrqs { .. } if reply => {
            check(&header(Command::DEVICE_SET_IRQS), &Body::Empty, t)
        }
        BodyDesc::SetIrqs { set, bools } => {
            let mut s: IrqSet = read(set);
            let f = s.flags.get();
            let data = match bools {
                Some(b) => {
                    s.flags.set(f | VFIO_IRQ_SET_DATA_BOOL);
                    s.count.set(b.len() as u32);
                    &b[..]
                }
                None => {
                    s.flags.set(f & !VFIO_IRQ_SET_DATA_BOOL);
                    none
                }
            };
            check(
                &header(Command::DEVICE_SET_IRQS),
                &Body::SetIrqs { set: &s, data },
                t,
            );
        }
        BodyDesc::RegionRw {
            write,
            access,
            data,
        } => {
            let cmd = if *write {
                Command::REGION_WRITE
            } else {
                Command::REGION_READ
            };
            match access {
                None if reply => check(&header(cmd), &Body::Empty, none),
                _ => {
                    let mut a: RegionAccess = read(&access.unwrap_or_default());
                    let data = if *write != reply { &data[..] } else { none };
                    if *write != reply {
                        a.count.set(data.len() as u32);
                    }
                    check(&header(cmd), &Body::RegionRw { access: &a, data }, t);
                }
            }
        }
        BodyDesc::DmaRw {
            write,
            access,
            data,
        } => {
            let cmd = if *write {
                Command::DMA_WRITE
            } else {
                Command::DMA_READ
            };
            match access {
                None if reply && *write => check(&header(cmd), &Body::Empty, none),
                _ => {
                    let mut a: DmaAccess = read(&access.unwrap_or_default());
                    let data = if *write != reply { &data[..] } else { none };
                    if *write != reply {
                        a.count.set(data.len() as u64);
                    }
                    check(&header(cmd), &Body::DmaRw { access: &a, data }, t);
                }
            }
        }
        BodyDesc::DeviceReset => check(&header(Command::DEVICE_RESET), &Body::Empty, t),
        BodyDesc::DirtyPages { head, range } => {
            let mut h: DirtyPages = read(head);
            let f = h.flags.get();
            match range {
                Some((r, bitmap)) => {
                    h.flags.set(f | VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP);
                    let mut r: DirtyPagesRange = read(r);
                    let bitmap = if reply { &bitmap[..] } else { none };
                    if reply {
                        r.bitmap_size.set(bitmap.len() as u64);
                    }
                    let body = Body::DirtyPages {
                        head: &h,
                        range: Some(&r),
                        bitmap,
                    };
                    check(&header(Command::DIRTY_PAGES), &body, t);
                }
                None => {
                    h.flags.set(f & !VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP);
                    let body = Body::DirtyPages {
                        head: &h,
                        range: None,
                        bitmap: none,
                    };
                    check(&header(Command::DIRTY_PAGES), &body, t);
                }
            }
        }
        BodyDesc::WriteMulti { head, entries } => {
            let mut h: RegionWriteMulti = read(head);
            let bytes = if reply {
                Vec::new()
            } else {
                concat(entries, 64)
            };
            let entries: &[RegionWriteEntry] = slice_of(&bytes);
            if !reply {
                h.wr_cnt.set(entries.len() as u64);
            }
            check(
                &header(Command::REGION_WRITE_MULTI),
                &Body::WriteMulti { head: &h, entries },
                t,
            );
        }
        BodyDesc::DeviceFeature { head, data } => {
            feature(reply, header(Command::DEVICE_FEATURE), read(head), data, t)
        }
        BodyDesc::MigData { write, head, data } => {
            let cmd = if *write {
                Command::MIG_DATA_WRITE
            } else {
                Command::MIG_DATA_READ
            };
            match head {
                None if reply && *write => check(&header(cmd), &Body::Empty, none),
                _ => {
                    let mut h: MigData = read(&head.unwrap_or_default());
                    let data = if *write != reply { &data[..] } else { none };
                    if *write != reply {
                        h.size.set(data.len() as u32);
                    }
                    check(&header(cmd), &Body::MigData { head: &h, data }, t);
                }
            }
        }
        BodyDesc::PrecopyInfo(b) => check(
            &header(Command::GET_PRECOPY_INFO),
            &Body::PrecopyInfo(&read(b)),
            t,
        ),
        BodyDesc::Unknown { command, payload } => {
            check(&header(command_of(&d.body)), &Body::Unknown(payload), none);
            let _ = command;
        }
    }
}

fn feature(reply: bool, header: Header, mut head: DeviceFeature, d: &FeatureDesc, t: &[u8]) {
    let none: &[u8] = &[];
    let mut set_feature = |id: u16| {
        let f = head.flags.get() & !VFIO_DEVICE_FEATURE_MASK;
        head.flags.set(f | u32::from(id));
    };
    match d {
        FeatureDesc::None { feature } => {
            set_feature(*feature);
            check(
                &header,
                &Body::DeviceFeature {
                    head: &head,
                    data: FeatureData::None,
                },
                none,
            );
        }
        FeatureDesc::Migration(b) => {
            set_feature(VFIO_DEVICE_FEATURE_MIGRATION);
            let m: FeatureMigration = read(b);
            check(
                &header,
                &Body::DeviceFeature {
                    head: &head,
                    data: FeatureData::Migration(&m),
                },
                t,
            );
        }
        FeatureDesc::MigState(b) => {
            set_feature(VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE);
            let m: FeatureMigState = read(b);
            check(
                &header,
                &Body::DeviceFeature {
                    head: &head,
                    data: FeatureData::MigState(&m),
                },
                t,
            );
        }
        FeatureDesc::Logging {
            stop,
            control,
            ranges,
        } => {
            set_feature(if *stop {
                VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP
            } else {
                VFIO_DEVICE_FEATURE_DMA_LOGGING_START
            });
            let mut c: DmaLoggingControl = read(control);
            let bytes = concat(ranges, 64);
            let ranges: &[DmaLoggingRange] = slice_of(&bytes);
            c.num_ranges.set(ranges.len() as u32);
            let data = FeatureData::LoggingControl {
                control: &c,
                ranges,
            };
            check(&header, &Body::DeviceFeature { head: &head, data }, t);
        }
        FeatureDesc::Report { report, bitmap } => {
            set_feature(VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT);
            let r: DmaLoggingReport = read(report);
            if !reply {
                let data = FeatureData::LoggingReport {
                    report: &r,
                    bitmap: none,
                };
                check(&header, &Body::DeviceFeature { head: &head, data }, t);
                return;
            }
            let want = if r.page_size.get() == 0 {
                None
            } else {
                dirty_bitmap_bytes(r.length.get(), r.page_size.get())
            };
            match want {
                Some(n) if n <= MAX_REPORT_BITMAP => {
                    let mut b = bitmap.clone();
                    b.resize(n as usize, 0);
                    let data = FeatureData::LoggingReport {
                        report: &r,
                        bitmap: &b,
                    };
                    check(&header, &Body::DeviceFeature { head: &head, data }, t);
                }
                _ => {
                    // The size cannot be computed or is larger than what follows: the bitmap is
                    // everything after the report.
                    let b = &bitmap[..bitmap.len().min(MAX_REPORT_BITMAP as usize)];
                    let data = FeatureData::LoggingReport {
                        report: &r,
                        bitmap: b,
                    };
                    check(&header, &Body::DeviceFeature { head: &head, data }, none);
                }
            }
        }
        FeatureDesc::Raw { feature, bytes } => {
            let id = match *feature {
                VFIO_DEVICE_FEATURE_MIGRATION
                | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE
                | VFIO_DEVICE_FEATURE_DMA_LOGGING_START
                | VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP
                | VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT => feature + 100,
                other => other,
            };
            set_feature(id);
            let mut raw = bytes.clone();
            if raw.is_empty() {
                raw.push(0);
            }
            check(
                &header,
                &Body::DeviceFeature {
                    head: &head,
                    data: FeatureData::Raw(&raw),
                },
                none,
            );
        }
    }
}

/// The command a body description stands for.
fn command_of(b: &BodyDesc) -> Command {
    match b {
        BodyDesc::Version { .. } => Command::VERSION,
        BodyDesc::DmaMap(_) => Command::DMA_MAP,
        BodyDesc::DmaUnmap { .. } => Command::DMA_UNMAP,
        BodyDesc::DeviceInfo(_) => Command::DEVICE_GET_INFO,
        BodyDesc::RegionInfo { .. } => Command::DEVICE_GET_REGION_INFO,
        BodyDesc::RegionIoFds { .. } => Command::DEVICE_GET_REGION_IO_FDS,
        BodyDesc::IrqInfo(_) => Command::DEVICE_GET_IRQ_INFO,
        BodyDesc::SetIrqs { .. } => Command::DEVICE_SET_IRQS,
        BodyDesc::RegionRw { write: true, .. } => Command::REGION_WRITE,
        BodyDesc::RegionRw { .. } => Command::REGION_READ,
        BodyDesc::DmaRw { write: true, .. } => Command::DMA_WRITE,
        BodyDesc::DmaRw { .. } => Command::DMA_READ,
        BodyDesc::DeviceReset => Command::DEVICE_RESET,
        BodyDesc::DirtyPages { .. } => Command::DIRTY_PAGES,
        BodyDesc::WriteMulti { .. } => Command::REGION_WRITE_MULTI,
        BodyDesc::DeviceFeature { .. } => Command::DEVICE_FEATURE,
        BodyDesc::MigData { write: true, .. } => Command::MIG_DATA_WRITE,
        BodyDesc::MigData { .. } => Command::MIG_DATA_READ,
        BodyDesc::PrecopyInfo(_) => Command::GET_PRECOPY_INFO,
        BodyDesc::Unknown { command, .. } => {
            // A number no command has (the codec's table is the one source of truth).
            let mut c = Command(*command);
            while c.name().is_some() {
                c = Command(c.0.wrapping_add(1000));
            }
            c
        }
    }
}
