//! The project's capture format: pcapng with one Enhanced Packet Block per whole message, link type
//! 252 (`LINKTYPE_WIRESHARK_UPPER_PDU`), exported-PDU tags naming the dissector (`vfio_user` or
//! `vduse`) and the direction, `epb_flags` for the direction and an `fds=N truncated` comment.
//!
//! This module holds the format's conventions (block types, option codes, tags, names) in one place,
//! and a no-alloc encoder of its three blocks into a caller's buffer, for whatever records messages:
//! `vfu-dump`'s writer (proxy, convert) and a device daemon such as the `vduse-blk` example. Every
//! block is written little-endian. Reading the format is `vfu-dump`'s business (`vfu_dump::capture`).
//!
//! It sits in the codec rather than in `vfu-dump` so that a recorder that is itself `no_std` or has
//! no heap (device firmware, an emulator) writes the same bytes without taking on `vfu-dump`'s
//! dependencies; a general pcapng crate would still leave these conventions to be written again by
//! each user.
//!
//! References: the pcapng draft (IETF opsawg `draft-ietf-opsawg-pcapng`), Wireshark's
//! `exported_pdu.h` for the tags, and the project's capture-format document.
//!
//! ## Example: a file with one VDUSE request
//!
//! ```
//! use vfu_codec::capture::{self, Packet, DISSECTOR_VDUSE};
//! use vfu_codec::Direction;
//!
//! let mut file = [0u8; 512];
//! let mut n = capture::write_shb(&mut file).unwrap();
//! n += capture::write_idb("vduse:0:/dev/vduse/blk0", &mut file[n..]).unwrap();
//! let request = [0u8; 152];
//! let packet = Packet {
//!     interface: 0,
//!     ts_ns: 1_700_000_000_000_000_000,
//!     dissector: DISSECTOR_VDUSE,
//!     direction: Direction::ClientToServer,
//!     fds: 0,
//!     truncated: false,
//!     data: &request,
//!     orig_len: request.len(),
//! };
//! assert_eq!(capture::epb_len(&packet), 220);
//! n += capture::write_epb(&packet, &mut file[n..]).unwrap();
//! assert_eq!(n, 28 + 60 + 220); // SHB, IDB, EPB
//! assert_eq!(&file[..4], &[0x0a, 0x0d, 0x0d, 0x0a]); // a pcapng Section Header Block
//! ```

use crate::error::EncodeError;
use crate::message::Direction;

/// pcapng Section Header Block type; the same bytes in both byte orders.
pub const BT_SHB: u32 = 0x0A0D_0D0A;
/// pcapng Interface Description Block type.
pub const BT_IDB: u32 = 0x0000_0001;
/// pcapng Enhanced Packet Block type.
pub const BT_EPB: u32 = 0x0000_0006;
/// The SHB byte-order magic, as written in the section's byte order.
pub const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;

/// Option code `opt_endofopt`.
pub const OPT_ENDOFOPT: u16 = 0;
/// Option code `opt_comment`.
pub const OPT_COMMENT: u16 = 1;
/// IDB option code `if_name`.
pub const IF_NAME: u16 = 2;
/// IDB option code `if_tsresol`.
pub const IF_TSRESOL: u16 = 9;
/// IDB option code `if_tsoffset`.
pub const IF_TSOFFSET: u16 = 14;
/// EPB option code `epb_flags`.
pub const EPB_FLAGS: u16 = 2;
/// The `if_tsresol` value written: 10^-9 s, nanoseconds.
pub const TSRESOL_NS: u8 = 9;

/// `epb_flags` bits 0–1: the direction.
pub const EPB_FLAGS_DIR_MASK: u32 = 0x3;
/// `epb_flags` direction inbound: server to client (VDUSE: a response, daemon to kernel).
pub const EPB_FLAGS_INBOUND: u32 = 1;
/// `epb_flags` direction outbound: client to server (VDUSE: a request, kernel to daemon).
pub const EPB_FLAGS_OUTBOUND: u32 = 2;

/// `LINKTYPE_WIRESHARK_UPPER_PDU`: exported-PDU tags, then the message.
pub const LINKTYPE_UPPER_PDU: u16 = 252;

/// Exported-PDU tag: end of tags (length 0).
pub const EXP_PDU_TAG_END: u16 = 0;
/// Exported-PDU tag: the dissector that decodes the message.
pub const EXP_PDU_TAG_DISSECTOR_NAME: u16 = 12;
/// Exported-PDU tag: P2P direction, a 4-byte big-endian integer.
pub const EXP_PDU_TAG_P2P_DIRECTION: u16 = 35;
/// P2P direction value: client to server (VDUSE: kernel to daemon).
pub const P2P_CLIENT_TO_SERVER: u32 = 0;
/// P2P direction value: server to client (VDUSE: daemon to kernel).
pub const P2P_SERVER_TO_CLIENT: u32 = 1;

/// Dissector name (tag 12) of vfio-user messages.
pub const DISSECTOR_VFIO_USER: &str = "vfio_user";
/// Dissector name (tag 12) of VDUSE requests and responses.
pub const DISSECTOR_VDUSE: &str = "vduse";
/// `if_name` prefix of a vfio-user connection: `vfio-user:<n>:<socket path>`.
pub const IF_NAME_VFIO_USER: &str = "vfio-user:";
/// `if_name` prefix of a VDUSE device: `vduse:<n>:<device path>`.
pub const IF_NAME_VDUSE: &str = "vduse:";

/// EPB comment word: `fds=N`, the descriptors that travelled with the message.
pub const COMMENT_FDS: &str = "fds=";
/// EPB comment word: the stream ended inside this message.
pub const COMMENT_TRUNCATED: &str = "truncated";

/// Bytes of the Section Header Block [`write_shb`] writes.
pub const SHB_LEN: usize = 28;

/// `n` rounded up to a multiple of 4 (saturating).
pub const fn pad4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

/// The P2P direction value (tag 35) of a direction.
pub const fn p2p_of(direction: Direction) -> u32 {
    match direction {
        Direction::ClientToServer => P2P_CLIENT_TO_SERVER,
        Direction::ServerToClient => P2P_SERVER_TO_CLIENT,
    }
}

/// The `epb_flags` value of a direction.
pub const fn epb_flags_of(direction: Direction) -> u32 {
    match direction {
        Direction::ClientToServer => EPB_FLAGS_OUTBOUND,
        Direction::ServerToClient => EPB_FLAGS_INBOUND,
    }
}

/// A cursor over the output buffer; every write is bounds-checked by [`Out::reserve`] first.
struct Out<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Out<'_> {
    fn reserve(buf: &mut [u8], need: usize) -> Result<Out<'_>, EncodeError> {
        let have = buf.len();
        match buf.get_mut(..need) {
            Some(buf) => Ok(Out { buf, at: 0 }),
            None => Err(EncodeError::BufferTooShort { need, have }),
        }
    }

    fn bytes(&mut self, b: &[u8]) {
        // `reserve` sized the buffer for everything written, so the range is in bounds.
        if let Some(d) = self.buf.get_mut(self.at..self.at + b.len()) {
            d.copy_from_slice(b);
        }
        self.at += b.len();
    }

    fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }

    fn pad(&mut self) {
        let to = pad4(self.at);
        while self.at < to {
            self.bytes(&[0]);
        }
    }

    fn done(self) -> usize {
        self.at
    }
}

/// Writes the Section Header Block (version 1.0, section length unspecified, no options); returns
/// [`SHB_LEN`].
pub fn write_shb(buf: &mut [u8]) -> Result<usize, EncodeError> {
    let mut o = Out::reserve(buf, SHB_LEN)?;
    o.u32(BT_SHB);
    o.u32(SHB_LEN as u32);
    o.u32(BYTE_ORDER_MAGIC);
    o.u16(1);
    o.u16(0);
    o.bytes(&(-1i64).to_le_bytes());
    o.u32(SHB_LEN as u32);
    Ok(o.done())
}

/// Bytes of the Interface Description Block [`write_idb`] writes for `if_name`.
pub const fn idb_len(if_name: &str) -> usize {
    // head 8, link type/reserved/snaplen 8, if_name option, if_tsresol option 8, end 4, trailer 4.
    8 + 8 + 4 + pad4(if_name.len()) + 8 + 4 + 4
}

/// Writes an Interface Description Block: link type 252, snaplen 0 (no limit), `if_name` and
/// `if_tsresol` 9. `if_name` is `vfio-user:<n>:<socket path>` or `vduse:<n>:<device path>` by
/// convention. Returns [`idb_len`].
pub fn write_idb(if_name: &str, buf: &mut [u8]) -> Result<usize, EncodeError> {
    write_idb_snaplen(if_name, 0, buf)
}

/// [`write_idb`] with the interface's snap length: the most bytes of packet data (exported-PDU tags
/// and message) any of its records holds, 0 for no limit. A writer that cuts long messages
/// ([`Packet::orig_len`]) announces its limit here.
pub fn write_idb_snaplen(
    if_name: &str,
    snaplen: u32,
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    let Ok(name_len) = u16::try_from(if_name.len()) else {
        return Err(EncodeError::FieldOverflow { field: "if_name" });
    };
    let total = idb_len(if_name);
    let mut o = Out::reserve(buf, total)?;
    o.u32(BT_IDB);
    o.u32(total as u32);
    o.u16(LINKTYPE_UPPER_PDU);
    o.u16(0);
    o.u32(snaplen);
    o.u16(IF_NAME);
    o.u16(name_len);
    o.bytes(if_name.as_bytes());
    o.pad();
    o.u16(IF_TSRESOL);
    o.u16(1);
    o.bytes(&[TSRESOL_NS, 0, 0, 0]);
    o.u16(OPT_ENDOFOPT);
    o.u16(0);
    o.u32(total as u32);
    Ok(o.done())
}

/// One message as an Enhanced Packet Block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    /// The interface (connection) id: the order of its IDB in the file, from 0.
    pub interface: u32,
    /// Wall-clock time at which the message was complete, in ns since the Unix epoch.
    pub ts_ns: u64,
    /// Dissector name for tag 12: [`DISSECTOR_VFIO_USER`], [`DISSECTOR_VDUSE`] or another.
    pub dissector: &'a str,
    /// Which way the message went (tag 35 and `epb_flags`).
    pub direction: Direction,
    /// Descriptors that travelled with the message (`fds=N` comment when non-zero).
    pub fds: u32,
    /// The stream ended inside this message (`truncated` comment).
    pub truncated: bool,
    /// The message's bytes: all of them, or its first bytes when the capture cuts it to a snap length.
    pub data: &'a [u8],
    /// The message's length: `data.len()` for a whole message; more when `data` holds only its
    /// first bytes. The EPB's original length counts it (with the tags) and its captured length
    /// counts `data`, as pcapng marks a packet cut to a snap length; Wireshark then shows the
    /// record as cut. A value below `data.len()` is taken as `data.len()`.
    pub orig_len: usize,
}

/// Bytes of the exported-PDU tags [`write_pdu_tags`] writes for `dissector`.
pub const fn pdu_tags_len(dissector: &str) -> usize {
    4 + pad4(dissector.len()) + 8 + 4
}

/// Writes the exported-PDU tags of one message (big-endian, values zero-padded to 4 with the padded
/// length in the length field): dissector name, P2P direction, end of tags. Returns
/// [`pdu_tags_len`].
pub fn write_pdu_tags(
    dissector: &str,
    direction: Direction,
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    let padded = pad4(dissector.len());
    let Ok(padded16) = u16::try_from(padded) else {
        return Err(EncodeError::FieldOverflow { field: "dissector" });
    };
    let mut o = Out::reserve(buf, pdu_tags_len(dissector))?;
    o.bytes(&EXP_PDU_TAG_DISSECTOR_NAME.to_be_bytes());
    o.bytes(&padded16.to_be_bytes());
    o.bytes(dissector.as_bytes());
    o.pad();
    o.bytes(&EXP_PDU_TAG_P2P_DIRECTION.to_be_bytes());
    o.bytes(&4u16.to_be_bytes());
    o.bytes(&p2p_of(direction).to_be_bytes());
    o.bytes(&EXP_PDU_TAG_END.to_be_bytes());
    o.bytes(&0u16.to_be_bytes());
    Ok(o.done())
}

/// Decimal digits of `n`.
const fn digits(mut n: u32) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// Bytes of the EPB comment for `fds` and `truncated` (`fds=N`, `truncated`, joined by a space);
/// 0 when there is nothing to say.
pub const fn comment_len(fds: u32, truncated: bool) -> usize {
    let f = if fds > 0 {
        COMMENT_FDS.len() + digits(fds)
    } else {
        0
    };
    let t = if truncated {
        COMMENT_TRUNCATED.len()
    } else {
        0
    };
    f + t + if fds > 0 && truncated { 1 } else { 0 }
}

/// Writes the EPB comment text for `fds` and `truncated` into `buf`; returns [`comment_len`].
pub fn write_comment(fds: u32, truncated: bool, buf: &mut [u8]) -> Result<usize, EncodeError> {
    let mut o = Out::reserve(buf, comment_len(fds, truncated))?;
    if fds > 0 {
        o.bytes(COMMENT_FDS.as_bytes());
        let mut text = [0u8; 10];
        let n = digits(fds);
        let mut v = fds;
        for d in text[..n].iter_mut().rev() {
            *d = b'0' + (v % 10) as u8;
            v /= 10;
        }
        o.bytes(&text[..n]);
        if truncated {
            o.bytes(b" ");
        }
    }
    if truncated {
        o.bytes(COMMENT_TRUNCATED.as_bytes());
    }
    Ok(o.done())
}

/// Bytes of the Enhanced Packet Block [`write_epb`] writes for `packet`.
pub const fn epb_len(packet: &Packet<'_>) -> usize {
    let captured = pdu_tags_len(packet.dissector) + packet.data.len();
    let comment = comment_len(packet.fds, packet.truncated);
    let comment_opt = if comment > 0 { 4 + pad4(comment) } else { 0 };
    // head 8, interface/timestamp/lengths 20, data, epb_flags 8, comment, end 4, trailer 4.
    8 + 20 + pad4(captured) + 8 + comment_opt + 4 + 4
}

/// Writes one message as an Enhanced Packet Block: the exported-PDU tags then the message bytes as
/// packet data (captured length: tags and `data`; original length: tags and `orig_len`),
/// `epb_flags` with the direction, and the comment when `fds` or `truncated` say something.
/// Returns [`epb_len`].
pub fn write_epb(packet: &Packet<'_>, buf: &mut [u8]) -> Result<usize, EncodeError> {
    let tags = pdu_tags_len(packet.dissector);
    let total = epb_len(packet);
    let whole = if packet.orig_len > packet.data.len() {
        packet.orig_len
    } else {
        packet.data.len()
    };
    let (Ok(captured), Ok(original), Ok(total32)) = (
        u32::try_from(tags + packet.data.len()),
        u32::try_from(tags.saturating_add(whole)),
        u32::try_from(total),
    ) else {
        return Err(EncodeError::TooLarge { need: total });
    };
    let mut o = Out::reserve(buf, total)?;
    o.u32(BT_EPB);
    o.u32(total32);
    o.u32(packet.interface);
    o.u32((packet.ts_ns >> 32) as u32);
    o.u32(packet.ts_ns as u32);
    o.u32(captured);
    o.u32(original);
    let at = o.at;
    o.at += write_pdu_tags(packet.dissector, packet.direction, &mut o.buf[at..])?;
    o.bytes(packet.data);
    o.pad();
    o.u16(EPB_FLAGS);
    o.u16(4);
    o.u32(epb_flags_of(packet.direction));
    let comment = comment_len(packet.fds, packet.truncated);
    if comment > 0 {
        o.u16(OPT_COMMENT);
        o.u16(comment as u16);
        let at = o.at;
        o.at += write_comment(packet.fds, packet.truncated, &mut o.buf[at..])?;
        o.pad();
    }
    o.u16(OPT_ENDOFOPT);
    o.u16(0);
    o.u32(total32);
    Ok(o.done())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn packet(data: &[u8], fds: u32, truncated: bool) -> Packet<'_> {
        Packet {
            interface: 3,
            ts_ns: 0x1234_5678_9abc_def0,
            dissector: DISSECTOR_VFIO_USER,
            direction: Direction::ServerToClient,
            fds,
            truncated,
            data,
            orig_len: data.len(),
        }
    }

    #[test]
    fn emit_shb_and_idb_bytes() {
        let mut buf = [0xa5u8; 100];
        assert_eq!(write_shb(&mut buf), Ok(28));
        let n = write_idb("vfio-user:0:/s", &mut buf[28..]).unwrap();
        assert_eq!(n, idb_len("vfio-user:0:/s"));
        #[rustfmt::skip]
        let want: &[u8] = &[
            0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 28, 0, 0, 0,
            1, 0, 0, 0, 52, 0, 0, 0, 252, 0, 0, 0, 0, 0, 0, 0,
            2, 0, 14, 0, b'v', b'f', b'i', b'o', b'-', b'u', b's', b'e', b'r', b':', b'0', b':', b'/', b's', 0, 0,
            9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0, 52, 0, 0, 0,
        ];
        assert_eq!(&buf[..28 + n], want);
        assert_eq!(&buf[28 + n..], &[0xa5; 20][..]);
    }

    /// The tags of the first message in `lvu-sample-client.pcapng`.
    #[test]
    fn emit_tags_match_the_corpus() {
        let mut buf = [0xa5u8; 32];
        let n = write_pdu_tags(DISSECTOR_VFIO_USER, Direction::ClientToServer, &mut buf).unwrap();
        assert_eq!(n, 28);
        #[rustfmt::skip]
        let want = [
            0x00, 0x0c, 0x00, 0x0c, b'v', b'f', b'i', b'o', b'_', b'u', b's', b'e', b'r', 0, 0, 0,
            0x00, 0x23, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(&buf[..28], &want);
        let n = write_pdu_tags(DISSECTOR_VDUSE, Direction::ServerToClient, &mut buf).unwrap();
        assert_eq!(
            &buf[..n],
            &[
                0, 12, 0, 8, b'v', b'd', b'u', b's', b'e', 0, 0, 0, 0, 35, 0, 4, 0, 0, 0, 1, 0, 0,
                0, 0
            ]
        );
    }

    #[test]
    fn emit_epb_sets_every_byte() {
        let data = [0x5au8; 17];
        let p = packet(&data, 2, true);
        let mut buf = [0xa5u8; 200];
        let n = write_epb(&p, &mut buf).unwrap();
        assert_eq!(n, epb_len(&p));
        let out = &buf[..n];
        assert_eq!(n % 4, 0);
        assert_eq!(&out[..4], &6u32.to_le_bytes());
        assert_eq!(&out[4..8], &(n as u32).to_le_bytes());
        assert_eq!(&out[n - 4..], &(n as u32).to_le_bytes());
        assert_eq!(&out[8..12], &3u32.to_le_bytes());
        assert_eq!(&out[12..16], &0x1234_5678u32.to_le_bytes());
        assert_eq!(&out[16..20], &0x9abc_def0u32.to_le_bytes());
        assert_eq!(&out[20..24], &45u32.to_le_bytes());
        assert_eq!(&out[24..28], &45u32.to_le_bytes());
        assert_eq!(&out[28 + 28..28 + 45], &data);
        assert_eq!(&out[28 + 45..28 + 48], &[0, 0, 0], "data padding");
        let opts = &out[28 + 48..];
        assert_eq!(&opts[..8], &[2, 0, 4, 0, 1, 0, 0, 0]);
        assert_eq!(&opts[8..12], &[1, 0, 15, 0]);
        assert_eq!(&opts[12..27], b"fds=2 truncated");
        assert_eq!(
            &opts[27..32],
            &[0, 0, 0, 0, 0],
            "comment padding, end of options"
        );
        assert_eq!(&buf[n..], &[0xa5; 200][n..]);
    }

    #[test]
    fn emit_a_cut_message_with_its_original_length() {
        let data = [0x5au8; 20];
        let p = Packet {
            orig_len: 1 << 20,
            ..packet(&data, 0, false)
        };
        let mut buf = [0xa5u8; 200];
        let n = write_epb(&p, &mut buf).unwrap();
        assert_eq!(n, epb_len(&p));
        assert_eq!(&buf[20..24], &(28u32 + 20).to_le_bytes(), "captured");
        assert_eq!(&buf[24..28], &(28u32 + (1 << 20)).to_le_bytes(), "original");
        // An original length below the data is the data's.
        let p = Packet {
            orig_len: 3,
            ..packet(&data, 0, false)
        };
        write_epb(&p, &mut buf).unwrap();
        assert_eq!(&buf[24..28], &48u32.to_le_bytes());
        // The IDB announces the snap length.
        let n = write_idb_snaplen("x", 262_144, &mut buf).unwrap();
        assert_eq!(n, idb_len("x"));
        assert_eq!(&buf[12..16], &262_144u32.to_le_bytes());
    }

    #[test]
    fn comments() {
        let mut b = [0u8; 32];
        for (fds, t, want) in [
            (0, false, ""),
            (0, true, "truncated"),
            (1, false, "fds=1"),
            (253, true, "fds=253 truncated"),
            (u32::MAX, false, "fds=4294967295"),
        ] {
            let n = write_comment(fds, t, &mut b).unwrap();
            assert_eq!(n, comment_len(fds, t));
            assert_eq!(&b[..n], want.as_bytes());
        }
        let p = packet(&[], 0, false);
        assert_eq!(epb_len(&p), 28 + 28 + 8 + 8);
    }

    #[test]
    fn short_buffers_are_refused_untouched() {
        let data = [1u8; 152];
        let p = packet(&data, 1, false);
        let need = epb_len(&p);
        let mut buf = [0xa5u8; 300];
        for have in [0, 27, need - 1] {
            assert_eq!(
                write_epb(&p, &mut buf[..have]),
                Err(EncodeError::BufferTooShort { need, have })
            );
            assert_eq!(buf, [0xa5; 300]);
        }
        assert!(write_shb(&mut buf[..27]).is_err());
        assert!(write_idb("x", &mut buf[..idb_len("x") - 1]).is_err());
        assert_eq!(buf, [0xa5; 300]);
    }
}
