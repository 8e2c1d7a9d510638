//! The project's capture format: pcapng with one Enhanced Packet Block per whole message, link type
//! 252 (`LINKTYPE_WIRESHARK_UPPER_PDU`), exported-PDU tags naming the dissector (`vfio_user` or
//! `vduse`) and the direction, `epb_flags` for the direction and an `fds=N fd=… truncated` comment.
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
/// EPB comment word: `fd=<description>`, what one descriptor is (`memfd:guest-ram`,
/// `anon_inode:[eventfd]`), one word per descriptor in order after `fds=N`, the description
/// percent-encoded ([`encode_fd_kind`]).
pub const COMMENT_FD: &str = "fd=";
/// Bytes of a descriptor's description kept in its `fd=` word (before encoding); a longer one is
/// cut ([`fd_kind_kept`]).
pub const FD_KIND_MAX: usize = 255;
/// Bytes an EPB comment with `fd=` words may reach: a word that would take it further is left out,
/// with the words after it, so that a record of the largest size still fits the readers' block
/// limit (64 MiB + 64 KiB) and the option's u16 length.
pub const COMMENT_MAX: usize = 64_000;

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
    write_comment_with_kinds::<&[u8]>(fds, truncated, &[], buf)
}

/// The first bytes of a descriptor's description that its `fd=` word holds: all of them, or, when
/// there are more than [`FD_KIND_MAX`], the first 255 or fewer, not cutting inside a UTF-8
/// character (at most 3 bytes fewer).
pub fn fd_kind_kept(kind: &[u8]) -> &[u8] {
    if kind.len() <= FD_KIND_MAX {
        return kind;
    }
    let mut end = FD_KIND_MAX;
    while end > FD_KIND_MAX - 3 && kind[end] & 0xC0 == 0x80 {
        end -= 1;
    }
    &kind[..end]
}

/// Whether a description byte is written as `%XX`: a space, `%`, and anything outside printable
/// ASCII (0x21..=0x7E).
const fn escaped(b: u8) -> bool {
    b == b'%' || !(b >= 0x21 && b <= 0x7E)
}

/// Bytes of the percent-encoding of `kind` (as [`encode_fd_kind`] writes it, after the cut of
/// [`fd_kind_kept`]), without the `fd=` prefix.
pub fn fd_kind_encoded_len(kind: &[u8]) -> usize {
    fd_kind_kept(kind)
        .iter()
        .map(|&b| if escaped(b) { 3 } else { 1 })
        .sum()
}

/// Writes the percent-encoding of a descriptor's description into `buf`: its first bytes
/// ([`fd_kind_kept`]), each printable ASCII byte other than `%` as it is, every other byte (space,
/// `%`, control bytes, bytes of 0x80 and above) as `%` and two upper-case hex digits. The result
/// holds no space, so it is one comment word. Returns [`fd_kind_encoded_len`].
pub fn encode_fd_kind(kind: &[u8], buf: &mut [u8]) -> Result<usize, EncodeError> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut o = Out::reserve(buf, fd_kind_encoded_len(kind))?;
    for &b in fd_kind_kept(kind) {
        if escaped(b) {
            o.bytes(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xF)]]);
        } else {
            o.bytes(&[b]);
        }
    }
    Ok(o.done())
}

/// How many of `kinds` a comment holds and its length: `fds=N`, then an `fd=` word for each of the
/// first `fds` descriptions while the comment stays within [`COMMENT_MAX`], then `truncated`.
fn comment_plan<K: AsRef<[u8]>>(fds: u32, truncated: bool, kinds: &[K]) -> (usize, usize) {
    let mut len = comment_len(fds, truncated);
    let mut n = 0;
    if fds == 0 {
        return (0, len);
    }
    for k in kinds.iter().take(fds as usize) {
        let word = 1 + COMMENT_FD.len() + fd_kind_encoded_len(k.as_ref());
        if len + word > COMMENT_MAX {
            break;
        }
        len += word;
        n += 1;
    }
    (n, len)
}

/// Bytes of the EPB comment for `fds`, what the descriptors are (`kinds`, in order; `&[]` when
/// unknown) and `truncated`: `fds=2 fd=memfd:guest-ram fd=anon_inode:[eventfd] truncated`. The
/// same as [`comment_len`] when `kinds` is empty; no `fd=` word without `fds=N`, and at most `fds`
/// of them.
pub fn comment_len_with_kinds<K: AsRef<[u8]>>(fds: u32, truncated: bool, kinds: &[K]) -> usize {
    comment_plan(fds, truncated, kinds).1
}

/// Writes the comment [`comment_len_with_kinds`] measures into `buf`; returns its length.
pub fn write_comment_with_kinds<K: AsRef<[u8]>>(
    fds: u32,
    truncated: bool,
    kinds: &[K],
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    let (n, len) = comment_plan(fds, truncated, kinds);
    let mut o = Out::reserve(buf, len)?;
    if fds > 0 {
        o.bytes(COMMENT_FDS.as_bytes());
        let mut text = [0u8; 10];
        let d = digits(fds);
        let mut v = fds;
        for c in text[..d].iter_mut().rev() {
            *c = b'0' + (v % 10) as u8;
            v /= 10;
        }
        o.bytes(&text[..d]);
        for k in &kinds[..n] {
            o.bytes(b" ");
            o.bytes(COMMENT_FD.as_bytes());
            let at = o.at;
            o.at += encode_fd_kind(k.as_ref(), &mut o.buf[at..])?;
        }
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
    epb_len_for_comment(packet, comment_len(packet.fds, packet.truncated))
}

/// Bytes of the Enhanced Packet Block [`write_epb_with_kinds`] writes for `packet` and `kinds`.
pub fn epb_len_with_kinds<K: AsRef<[u8]>>(packet: &Packet<'_>, kinds: &[K]) -> usize {
    epb_len_for_comment(
        packet,
        comment_len_with_kinds(packet.fds, packet.truncated, kinds),
    )
}

const fn epb_len_for_comment(packet: &Packet<'_>, comment: usize) -> usize {
    let captured = pdu_tags_len(packet.dissector) + packet.data.len();
    let comment_opt = if comment > 0 { 4 + pad4(comment) } else { 0 };
    // head 8, interface/timestamp/lengths 20, data, epb_flags 8, comment, end 4, trailer 4.
    8 + 20 + pad4(captured) + 8 + comment_opt + 4 + 4
}

/// Writes one message as an Enhanced Packet Block: the exported-PDU tags then the message bytes as
/// packet data (captured length: tags and `data`; original length: tags and `orig_len`),
/// `epb_flags` with the direction, and the comment when `fds` or `truncated` say something.
/// Returns [`epb_len`].
pub fn write_epb(packet: &Packet<'_>, buf: &mut [u8]) -> Result<usize, EncodeError> {
    write_epb_with_kinds::<&[u8]>(packet, &[], buf)
}

/// [`write_epb`], with what each descriptor is (`kinds`, in order, as `/proc/PID/fd` names them) as
/// `fd=` words of the comment ([`write_comment_with_kinds`]). With `kinds` empty, the same bytes as
/// [`write_epb`]. Returns [`epb_len_with_kinds`].
pub fn write_epb_with_kinds<K: AsRef<[u8]>>(
    packet: &Packet<'_>,
    kinds: &[K],
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    let tags = pdu_tags_len(packet.dissector);
    let comment = comment_len_with_kinds(packet.fds, packet.truncated, kinds);
    let total = epb_len_for_comment(packet, comment);
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
    if comment > 0 {
        o.u16(OPT_COMMENT);
        o.u16(comment as u16);
        let at = o.at;
        o.at += write_comment_with_kinds(packet.fds, packet.truncated, kinds, &mut o.buf[at..])?;
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

    fn encoded(kind: &[u8]) -> ([u8; 800], usize) {
        let mut b = [0u8; 800];
        let n = encode_fd_kind(kind, &mut b).unwrap();
        assert_eq!(n, fd_kind_encoded_len(kind));
        (b, n)
    }

    #[test]
    fn fd_kinds_are_percent_encoded() {
        for (kind, want) in [
            (&b""[..], ""),
            (b"anon_inode:[eventfd]", "anon_inode:[eventfd]"),
            (
                b"/memfd:guest ram (deleted)",
                "/memfd:guest%20ram%20(deleted)",
            ),
            (b"100%", "100%25"),
            ("/tmp/caf\u{e9}".as_bytes(), "/tmp/caf%C3%A9"),
            (b"a\tb\n\x00\x7f~!", "a%09b%0A%00%7F~!"),
        ] {
            let (b, n) = encoded(kind);
            assert_eq!(&b[..n], want.as_bytes(), "{kind:?}");
            assert!(b[..n].iter().all(|c| (0x21..=0x7E).contains(c)));
        }
        // Longer than 255 bytes: cut at 255, or before a UTF-8 character that 255 would split.
        let long = [b'x'; 300];
        assert_eq!(fd_kind_kept(&long).len(), 255);
        assert_eq!(encoded(&long).1, 255);
        let mut split = [b'y'; 300];
        split[254..256].copy_from_slice("\u{e9}".as_bytes());
        assert_eq!(fd_kind_kept(&split).len(), 254);
        assert_eq!(encoded(&split).1, 254);
        let spaces = [b' '; 256];
        assert_eq!(encoded(&spaces).1, 255 * 3);
        assert_eq!(fd_kind_kept(&long[..255]).len(), 255);
    }

    #[test]
    fn comments_with_kinds() {
        let mut b = [0u8; 256];
        let kinds = ["/memfd:ram (deleted)", "anon_inode:[eventfd]", "extra"];
        for (fds, t, k, want) in [
            (
                2,
                false,
                &kinds[..],
                "fds=2 fd=/memfd:ram%20(deleted) fd=anon_inode:[eventfd]",
            ),
            (
                1,
                true,
                &kinds[..1],
                "fds=1 fd=/memfd:ram%20(deleted) truncated",
            ),
            (3, false, &kinds[1..2], "fds=3 fd=anon_inode:[eventfd]"),
            (0, true, &kinds[..], "truncated"),
            (2, true, &[][..], "fds=2 truncated"),
            (1, false, &[""][..], "fds=1 fd="),
        ] {
            let n = write_comment_with_kinds(fds, t, k, &mut b).unwrap();
            assert_eq!(n, comment_len_with_kinds(fds, t, k));
            assert_eq!(&b[..n], want.as_bytes());
        }
        // Without kinds: the same EPB bytes as before.
        let data = [7u8; 21];
        let p = packet(&data, 2, true);
        let (mut x, mut y) = ([0u8; 256], [0u8; 256]);
        let n = write_epb(&p, &mut x).unwrap();
        assert_eq!(write_epb_with_kinds::<&str>(&p, &[], &mut y).unwrap(), n);
        assert_eq!(x, y);
        // With them: the comment option grows by the words, padded.
        let n = write_epb_with_kinds(&p, &kinds[..2], &mut y).unwrap();
        assert_eq!(n, epb_len_with_kinds(&p, &kinds[..2]));
        let text = b"fds=2 fd=/memfd:ram%20(deleted) fd=anon_inode:[eventfd] truncated";
        assert_eq!(n, epb_len(&p) - pad4(15) + pad4(text.len()));
        assert!(y[..n].windows(text.len()).any(|w| w == text));
    }

    #[test]
    fn comment_stays_within_its_limit() {
        let big = [b' '; 255];
        let kinds = [&big[..]; 253];
        let len = comment_len_with_kinds(253, true, &kinds);
        assert!(len <= COMMENT_MAX);
        // Each word is 1 + 3 + 765 bytes: as many as fit.
        let words = (COMMENT_MAX - comment_len(253, true)) / 769;
        assert_eq!(len, comment_len(253, true) + words * 769);
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
