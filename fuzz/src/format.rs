//! Input formats of the targets that need more than one byte string, and builders for them (used by
//! the seed generator, `examples/seed.rs`).
//!
//! - **Event sequences** (`validator`): one profile byte, then events, each
//!   `[flags][fds][len: u16 LE][len bytes]`; flags bit 0 = server-to-client, bit 1 = VDUSE, bit 2 =
//!   truncated, bits 3–4 = connection. A length past the end takes what is left.
//! - **Classic pcap** (`capture_pcap`, `capture_sockdump`): one selector byte that picks the 24-byte
//!   file header the target writes in front of the rest ([`pcap_input`]), so mutations spend their
//!   effort on records rather than on the magic.

use vfu_codec::Direction;
use vfu_dump::capture::OpenOptions;
use vfu_dump::validate::{Event, Profile, Protocol};

/// Most events taken from one input.
pub const MAX_EVENTS: usize = 4096;

/// Link type 252: exported PDUs, one message a record.
pub const LINKTYPE_UPPER_PDU: u32 = 252;
/// Link type 147 as sockdump uses it.
pub const LINKTYPE_SOCKDUMP: u32 = 147;
/// A link type the reader does not interpret (Ethernet).
pub const LINKTYPE_OTHER: u32 = 1;

/// One event of a sequence, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedEvent {
    /// Connection (0–3).
    pub conn: u32,
    /// Direction.
    pub direction: Direction,
    /// VDUSE rather than vfio-user.
    pub vduse: bool,
    /// The truncated mark.
    pub truncated: bool,
    /// File descriptors (0–255).
    pub fds: u32,
    /// The message.
    pub bytes: Vec<u8>,
}

/// Splits an event-sequence input into a profile and events borrowing from it.
pub fn parse_events(data: &[u8]) -> (Profile, Vec<Event<'_>>) {
    let Some((&p, mut rest)) = data.split_first() else {
        return (Profile::Spec, Vec::new());
    };
    let profile = Profile::ALL[usize::from(p) % Profile::ALL.len()];
    let mut events = Vec::new();
    while let Some((head, tail)) = rest.split_first_chunk::<4>() {
        if events.len() >= MAX_EVENTS {
            break;
        }
        let flags = head[0];
        let len = usize::from(u16::from_le_bytes([head[2], head[3]])).min(tail.len());
        let (bytes, after) = tail.split_at(len);
        events.push(Event {
            conn: u32::from((flags >> 3) & 3),
            index: events.len() as u64,
            direction: if flags & 1 == 0 {
                Direction::ClientToServer
            } else {
                Direction::ServerToClient
            },
            protocol: if flags & 2 == 0 {
                Protocol::VfioUser
            } else {
                Protocol::Vduse
            },
            fds: u32::from(head[1]),
            truncated: flags & 4 != 0,
            bytes,
        });
        rest = after;
    }
    (profile, events)
}

/// The inverse of [`parse_events`] (messages longer than 65535 bytes are cut).
pub fn encode_events(profile: Profile, events: &[OwnedEvent]) -> Vec<u8> {
    let p = Profile::ALL.iter().position(|&x| x == profile).unwrap_or(0) as u8;
    let mut out = vec![p];
    for ev in events {
        let flags = u8::from(ev.direction == Direction::ServerToClient)
            | u8::from(ev.vduse) << 1
            | u8::from(ev.truncated) << 2
            | ((ev.conn & 3) as u8) << 3;
        let len = ev.bytes.len().min(usize::from(u16::MAX));
        out.push(flags);
        out.push(ev.fds.min(255) as u8);
        out.extend_from_slice(&(len as u16).to_le_bytes());
        out.extend_from_slice(&ev.bytes[..len]);
    }
    out
}

/// A classic pcap file header: version 2.4, snaplen 65535.
pub fn pcap_header(big: bool, nanos: bool, link_type: u32) -> Vec<u8> {
    let magic: u32 = if nanos { 0xA1B2_3C4D } else { 0xA1B2_C3D4 };
    let mut h = Vec::with_capacity(24);
    let u16b = |v: u16| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let u32b = |v: u32| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    h.extend(u32b(magic));
    h.extend(u16b(2));
    h.extend(u16b(4));
    h.extend(u32b(0));
    h.extend(u32b(0));
    h.extend(u32b(65535));
    h.extend(u32b(link_type));
    h
}

/// A classic pcap record: header (`orig` is the original length) and data.
pub fn pcap_record(big: bool, ts_sec: u32, ts_frac: u32, data: &[u8], orig: usize) -> Vec<u8> {
    let mut r = Vec::with_capacity(16 + data.len());
    for w in [ts_sec, ts_frac, data.len() as u32, orig as u32] {
        r.extend(if big {
            w.to_be_bytes()
        } else {
            w.to_le_bytes()
        });
    }
    r.extend_from_slice(data);
    r
}

/// An exported-PDU packet: dissector-name tag (12), direction tag (35), end tag, then the message.
pub fn pdu_packet(dissector: &str, direction: Option<Direction>, msg: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(32 + msg.len());
    let mut name = dissector.as_bytes().to_vec();
    while !name.len().is_multiple_of(4) {
        name.push(0);
    }
    p.extend(12u16.to_be_bytes());
    p.extend((name.len() as u16).to_be_bytes());
    p.extend(&name);
    if let Some(d) = direction {
        p.extend(35u16.to_be_bytes());
        p.extend(4u16.to_be_bytes());
        p.extend(u32::from(d == Direction::ServerToClient).to_be_bytes());
    }
    p.extend([0, 0, 0, 0]);
    p.extend_from_slice(msg);
    p
}

/// A sockdump record: the 125-byte prefix (socket path as a 109-byte Pascal string, big-endian peer
/// pid and pid) and the bytes of one `send`.
pub fn sockdump_record(path: &str, pid: u64, peer: u64, data: &[u8]) -> Vec<u8> {
    let mut r = vec![0u8; 125];
    let n = path.len().min(108);
    r[0] = n as u8;
    r[1..1 + n].copy_from_slice(&path.as_bytes()[..n]);
    r[109..117].copy_from_slice(&peer.to_be_bytes());
    r[117..125].copy_from_slice(&pid.to_be_bytes());
    r.extend_from_slice(data);
    r
}

/// The `capture_pcap` input for selector `sel` and body `rest`: bit 0 big-endian, bit 1 nanosecond
/// timestamps, bits 2–3 the link type (252, 147, another) or 3 for a raw stream of the direction in
/// bit 4 (then `rest` is the stream, with no header).
pub fn pcap_input(sel: u8, rest: &[u8]) -> (Vec<u8>, OpenOptions) {
    let (big, nanos) = (sel & 1 != 0, sel & 2 != 0);
    let link = match (sel >> 2) & 3 {
        0 => LINKTYPE_UPPER_PDU,
        1 => LINKTYPE_SOCKDUMP,
        2 => LINKTYPE_OTHER,
        _ => {
            let d = if sel & 16 == 0 {
                Direction::ClientToServer
            } else {
                Direction::ServerToClient
            };
            return (rest.to_vec(), OpenOptions::raw(d));
        }
    };
    let mut input = pcap_header(big, nanos, link);
    input.extend_from_slice(rest);
    (input, OpenOptions::default())
}

/// The selector byte of [`pcap_input`] for a header.
pub fn pcap_selector(big: bool, nanos: bool, link_type: u32) -> u8 {
    let mode = match link_type {
        LINKTYPE_UPPER_PDU => 0,
        LINKTYPE_SOCKDUMP => 1,
        _ => 2,
    };
    u8::from(big) | u8::from(nanos) << 1 | mode << 2
}

/// The selector byte of [`pcap_input`] for a raw stream of `direction`.
pub fn raw_selector(direction: Direction) -> u8 {
    3 << 2 | u8::from(direction == Direction::ServerToClient) << 4
}
