//! The raw layout of the formats read and written here: pcapng block types and option codes, classic
//! pcap magics, link types, exported-PDU tags and the EPB comment words, in one place; plus the small
//! byte-order and TLV helpers the readers and the writer share.
//!
//! References: the pcapng draft (IETF opsawg `draft-ietf-opsawg-pcapng`), the classic pcap draft
//! (`draft-ietf-opsawg-pcap`), Wireshark's `exported_pdu.h` for the tags, and
//! `docs/capture-format.md` for how this project uses them.

use vfu_codec::Direction;

use super::record::Protocol;

// The format's conventions that a writer needs live in the codec (`vfu_codec::capture`), so that
// every writer (this crate's, a device daemon's) and these readers share one copy.
pub(crate) use vfu_codec::capture::{
    BT_EPB, BT_IDB, BT_SHB, BYTE_ORDER_MAGIC, COMMENT_FD, COMMENT_FDS, COMMENT_TRUNCATED,
    DISSECTOR_VDUSE, DISSECTOR_VFIO_USER, EPB_FLAGS, EPB_FLAGS_DIR_MASK, EPB_FLAGS_INBOUND,
    EPB_FLAGS_OUTBOUND, EXP_PDU_TAG_DISSECTOR_NAME, EXP_PDU_TAG_END, EXP_PDU_TAG_P2P_DIRECTION,
    IF_NAME, IF_NAME_VDUSE, IF_NAME_VFIO_USER, IF_TSOFFSET, IF_TSRESOL, OPT_COMMENT, OPT_ENDOFOPT,
    P2P_CLIENT_TO_SERVER, P2P_SERVER_TO_CLIENT, pad4,
};

/// Minimum total lengths (header, body and trailer) of the blocks that are parsed.
pub(crate) const MIN_BLOCK: usize = 12;
pub(crate) const MIN_SHB: usize = 28;
pub(crate) const MIN_IDB: usize = 20;
pub(crate) const MIN_EPB: usize = 32;

/// Classic pcap magics as read little-endian: microsecond and nanosecond timestamps.
pub(crate) const PCAP_MAGIC_US: u32 = 0xA1B2_C3D4;
pub(crate) const PCAP_MAGIC_NS: u32 = 0xA1B2_3C4D;
/// Classic pcap file header and record header sizes.
pub(crate) const PCAP_HEADER_LEN: usize = 24;
pub(crate) const PCAP_RECORD_HEADER_LEN: usize = 16;

/// `LINKTYPE_WIRESHARK_UPPER_PDU`: exported-PDU tags, then the message.
pub(crate) const LINKTYPE_UPPER_PDU: u32 = vfu_codec::capture::LINKTYPE_UPPER_PDU as u32;
/// `LINKTYPE_USER0`, as sockdump uses it.
pub(crate) const LINKTYPE_USER0: u32 = 147;

/// sockdump's record prefix: a Pascal string of 109 bytes (length byte, then up to 108 bytes of
/// socket path, zero-padded), then big-endian u64 peer pid and u64 pid.
pub(crate) mod sockdump {
    pub(crate) const PATH: usize = 0;
    pub(crate) const PATH_FIELD_LEN: usize = 109;
    pub(crate) const PATH_MAX: usize = 108;
    pub(crate) const PEER_PID: usize = PATH + PATH_FIELD_LEN;
    pub(crate) const PID: usize = 117;
    pub(crate) const PREFIX_LEN: usize = 125;
}

/// The dissector name (tag 12) of VDUSE ioctl records (`docs/capture-format.md`); the codec's
/// `vfu_codec::capture` has the names of the message records.
pub(crate) const DISSECTOR_VDUSE_IOCTL: &str = "vduse_ioctl";
/// Wireshark's generic dissector, written for [`Protocol::Other`] so it reads back as `Other`.
pub(crate) const DISSECTOR_DATA: &str = "data";

/// A section's byte order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endian {
    Little,
    Big,
}

impl Endian {
    /// The `N` bytes at `at`, or zeros when out of range. Callers check lengths first; this never
    /// panics on a short slice.
    fn bytes<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
        at.checked_add(N)
            .and_then(|end| b.get(at..end))
            .and_then(|s| s.try_into().ok())
            .unwrap_or([0; N])
    }

    #[inline]
    pub(crate) fn u16(self, b: &[u8], at: usize) -> u16 {
        let v = u16::from_le_bytes(Self::bytes::<2>(b, at));
        if self == Endian::Big {
            v.swap_bytes()
        } else {
            v
        }
    }

    #[inline]
    pub(crate) fn u32(self, b: &[u8], at: usize) -> u32 {
        let v = u32::from_le_bytes(Self::bytes::<4>(b, at));
        if self == Endian::Big {
            v.swap_bytes()
        } else {
            v
        }
    }

    pub(crate) fn u64(self, b: &[u8], at: usize) -> u64 {
        let v = Self::bytes::<8>(b, at);
        match self {
            Endian::Little => u64::from_le_bytes(v),
            Endian::Big => u64::from_be_bytes(v),
        }
    }
}

/// One option (pcapng) or tag (exported PDU): a code and its value.
pub(crate) struct Tlv<'a> {
    pub(crate) code: u16,
    pub(crate) value: &'a [u8],
}

/// Walks a pcapng option list: `u16 code, u16 length, value padded to 4` in the section's byte order,
/// ending at `opt_endofopt` or at the end of the slice. An option that runs past the end is an error
/// naming its offset within `bytes`.
pub(crate) struct Options<'a> {
    endian: Endian,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Options<'a> {
    pub(crate) fn new(endian: Endian, bytes: &'a [u8]) -> Self {
        Options {
            endian,
            bytes,
            at: 0,
        }
    }
}

impl<'a> Iterator for Options<'a> {
    /// An option, or `(offset in the list, reason)`.
    type Item = Result<Tlv<'a>, (usize, String)>;

    fn next(&mut self) -> Option<Self::Item> {
        let at = self.at;
        let left = self.bytes.len().checked_sub(at)?;
        if left == 0 {
            return None;
        }
        if left < 4 {
            self.at = self.bytes.len();
            return Some(Err((
                at,
                format!("{left} stray bytes where an option header needs 4"),
            )));
        }
        let code = self.endian.u16(self.bytes, at);
        let len = usize::from(self.endian.u16(self.bytes, at + 2));
        if code == OPT_ENDOFOPT {
            self.at = self.bytes.len();
            return None;
        }
        if len > left - 4 {
            self.at = self.bytes.len();
            return Some(Err((
                at,
                format!(
                    "option {code} of length {len} runs past the end of the options ({} bytes left)",
                    left - 4
                ),
            )));
        }
        self.at = (at + 4 + pad4(len)).min(self.bytes.len());
        Some(Ok(Tlv {
            code,
            value: &self.bytes[at + 4..at + 4 + len],
        }))
    }
}

/// What the exported-PDU tags of one packet say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PduTags {
    /// From tag 12; `None` when the tag is absent.
    pub(crate) protocol: Option<Protocol>,
    /// From tag 35; `None` when absent or neither 0 nor 1.
    pub(crate) direction: Option<Direction>,
    /// Where the message starts in the packet (after the end-of-tags tag).
    pub(crate) payload_start: usize,
}

/// The protocol a dissector name stands for.
pub(crate) fn protocol_of_dissector(name: &[u8]) -> Protocol {
    let end = name.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    match &name[..end] {
        n if n == DISSECTOR_VFIO_USER.as_bytes() => Protocol::VfioUser,
        n if n == DISSECTOR_VDUSE.as_bytes() => Protocol::Vduse,
        n if n == DISSECTOR_VDUSE_IOCTL.as_bytes() => Protocol::VduseIoctl,
        _ => Protocol::Other,
    }
}

/// The protocol an interface name stands for (`vfio-user:…`, `vduse:…`).
pub(crate) fn protocol_of_if_name(name: &str) -> Protocol {
    if name.starts_with(IF_NAME_VFIO_USER) {
        Protocol::VfioUser
    } else if name.starts_with(IF_NAME_VDUSE) {
        Protocol::Vduse
    } else {
        Protocol::Other
    }
}

/// Parses the exported-PDU tags at the start of a packet (big-endian TLVs; the length holds the padded
/// length of the value). A packet whose tags run past its end, without the end-of-tags tag, is an
/// error naming the tag's offset within the packet.
pub(crate) fn parse_pdu_tags(packet: &[u8]) -> Result<PduTags, String> {
    // The tags this tool (and the corpus's recorder) write for every vfio-user message, in one
    // comparison; anything else takes the general walk below, which gives the same result for these.
    if let Some(head) = packet.get(..28)
        && head[..20] == VFIO_USER_TAGS
        && head[24..] == [0; 4]
    {
        let direction = match Endian::Big.u32(head, 20) {
            P2P_CLIENT_TO_SERVER => Some(Direction::ClientToServer),
            P2P_SERVER_TO_CLIENT => Some(Direction::ServerToClient),
            _ => None,
        };
        return Ok(PduTags {
            protocol: Some(Protocol::VfioUser),
            direction,
            payload_start: 28,
        });
    }
    let mut tags = PduTags {
        protocol: None,
        direction: None,
        payload_start: 0,
    };
    let mut at = 0usize;
    loop {
        let left = packet.len() - at;
        if left < 4 {
            return Err(format!(
                "exported-PDU tags end without an end-of-tags tag ({left} bytes left at packet offset {at})"
            ));
        }
        let tag = Endian::Big.u16(packet, at);
        let len = usize::from(Endian::Big.u16(packet, at + 2));
        if len > left - 4 {
            return Err(format!(
                "exported-PDU tag {tag} at packet offset {at}: length {len} runs past the packet ({} bytes left)",
                left - 4
            ));
        }
        let value = &packet[at + 4..at + 4 + len];
        at += 4 + len;
        match tag {
            EXP_PDU_TAG_END => {
                tags.payload_start = at;
                return Ok(tags);
            }
            EXP_PDU_TAG_DISSECTOR_NAME => tags.protocol = Some(protocol_of_dissector(value)),
            EXP_PDU_TAG_P2P_DIRECTION if len == 4 => {
                tags.direction = match Endian::Big.u32(value, 0) {
                    P2P_CLIENT_TO_SERVER => Some(Direction::ClientToServer),
                    P2P_SERVER_TO_CLIENT => Some(Direction::ServerToClient),
                    _ => None,
                }
            }
            _ => {}
        }
    }
}

/// The exported-PDU tags of a vfio-user message up to the direction's value: the dissector name
/// `vfio_user` padded to 12 bytes, then the direction tag's code and length.
const VFIO_USER_TAGS: [u8; 20] = {
    let mut t = [0u8; 20];
    let name = DISSECTOR_VFIO_USER.as_bytes();
    t[1] = EXP_PDU_TAG_DISSECTOR_NAME as u8;
    t[3] = 12;
    let mut i = 0;
    while i < name.len() {
        t[4 + i] = name[i];
        i += 1;
    }
    t[17] = EXP_PDU_TAG_P2P_DIRECTION as u8;
    t[19] = 4;
    t
};

/// The dissector name (tag 12) written for a protocol.
pub(crate) fn dissector_of(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::VfioUser => DISSECTOR_VFIO_USER,
        Protocol::Vduse => DISSECTOR_VDUSE,
        Protocol::VduseIoctl => DISSECTOR_VDUSE_IOCTL,
        Protocol::Other => DISSECTOR_DATA,
    }
}

/// Appends the exported-PDU tags for one message: dissector name, direction, end of tags.
#[cfg(test)]
pub(crate) fn emit_pdu_tags(out: &mut Vec<u8>, protocol: Protocol, direction: Direction) {
    let name = dissector_of(protocol);
    let at = out.len();
    out.resize(at + vfu_codec::capture::pdu_tags_len(name), 0);
    // The buffer was sized for the tags just above, and the names are short.
    let _ = vfu_codec::capture::write_pdu_tags(name, direction, &mut out[at..]);
}

/// The direction `epb_flags` gives, if any.
pub(crate) fn direction_of_epb_flags(flags: u32) -> Option<Direction> {
    match flags & EPB_FLAGS_DIR_MASK {
        EPB_FLAGS_OUTBOUND => Some(Direction::ClientToServer),
        EPB_FLAGS_INBOUND => Some(Direction::ServerToClient),
        _ => None,
    }
}

/// Reads the words of an EPB comment: `fds=N`, `fd=<description>` and `truncated`, separated by
/// spaces. Other words are ignored; a later `fds=` replaces an earlier one. Each `fd=` word's
/// description is decoded ([`decode_fd_kind`]) and pushed onto `kinds`, so that what is pushed is
/// bounded by the comment's length; the caller keeps the first `fds` ([`keep_fd_kinds`]).
pub(crate) fn parse_comment(
    comment: &[u8],
    fds: &mut u32,
    truncated: &mut bool,
    kinds: &mut Vec<String>,
) {
    for word in comment
        .split(|b| b.is_ascii_whitespace() || *b == 0)
        .filter(|w| !w.is_empty())
    {
        if word == COMMENT_TRUNCATED.as_bytes() {
            *truncated = true;
        } else if let Some(n) = word.strip_prefix(COMMENT_FDS.as_bytes()) {
            if let Some(n) = std::str::from_utf8(n).ok().and_then(|s| s.parse().ok()) {
                *fds = n;
            }
        } else if let Some(k) = word.strip_prefix(COMMENT_FD.as_bytes()) {
            kinds.push(decode_fd_kind(k));
        }
    }
}

/// Keeps the first `fds` descriptions of a record (a comment with more `fd=` words than its
/// `fds=N` has the rest dropped, and one without `fds=N` keeps none).
pub(crate) fn keep_fd_kinds(kinds: &mut Vec<String>, fds: u32) {
    kinds.truncate(usize::try_from(fds).unwrap_or(usize::MAX));
}

/// Decodes the percent-encoding of an `fd=` word (`vfu_codec::capture::encode_fd_kind`): `%XX`
/// with two hex digits (either case) is that byte; a `%` not followed by two hex digits (`%G1`, a
/// lone `%` at the end) is taken literally. Bytes that are not UTF-8 become U+FFFD. The result is at
/// most as long as the word, plus 2 bytes per invalid byte.
pub(crate) fn decode_fd_kind(word: &[u8]) -> String {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(word.len());
    let mut i = 0;
    while let Some(&b) = word.get(i) {
        if b == b'%'
            && let (Some(h), Some(l)) = (
                word.get(i + 1).copied().and_then(hex),
                word.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// Appends the comment for a record (`fds=N`, `fd=` words, `truncated`, joined by a space); nothing
/// when none.
#[cfg(test)]
pub(crate) fn emit_comment(out: &mut Vec<u8>, fds: u32, truncated: bool, kinds: &[&str]) {
    let at = out.len();
    out.resize(
        at + vfu_codec::capture::comment_len_with_kinds(fds, truncated, kinds),
        0,
    );
    // Sized just above.
    let _ = vfu_codec::capture::write_comment_with_kinds(fds, truncated, kinds, &mut out[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tags of the first message in `lvu-sample-client.pcapng`.
    static TAGS: [u8; 24] = [
        0x00, 0x0c, 0x00, 0x0c, b'v', b'f', b'i', b'o', b'_', b'u', b's', b'e', b'r', 0, 0, 0,
        0x00, 0x23, 0x00, 0x04, 0, 0, 0, 0,
    ];

    #[test]
    fn parse_corpus_tags() {
        let mut packet = TAGS.to_vec();
        packet.extend_from_slice(&[0, 0, 0, 0, 0xAA]);
        let t = parse_pdu_tags(&packet).unwrap();
        assert_eq!(t.protocol, Some(Protocol::VfioUser));
        assert_eq!(t.direction, Some(Direction::ClientToServer));
        assert_eq!(t.payload_start, 28);
    }

    #[test]
    fn emit_matches_corpus_bytes() {
        let mut out = vec![];
        emit_pdu_tags(&mut out, Protocol::VfioUser, Direction::ClientToServer);
        assert_eq!(&out[..24], &TAGS);
        assert_eq!(&out[24..], &[0, 0, 0, 0]);
        for p in [
            Protocol::VfioUser,
            Protocol::Vduse,
            Protocol::VduseIoctl,
            Protocol::Other,
        ] {
            for d in [Direction::ClientToServer, Direction::ServerToClient] {
                let mut out = vec![];
                emit_pdu_tags(&mut out, p, d);
                assert_eq!(out.len() % 4, 0);
                let t = parse_pdu_tags(&out).unwrap();
                assert_eq!(
                    (t.protocol, t.direction, t.payload_start),
                    (Some(p), Some(d), out.len())
                );
            }
        }
    }

    #[test]
    fn truncated_tags_are_errors() {
        for n in 0..TAGS.len() {
            assert!(parse_pdu_tags(&TAGS[..n]).is_err(), "{n}");
        }
        let err = parse_pdu_tags(&[0, 12, 0, 200, 1, 2]).unwrap_err();
        assert!(err.contains("length 200 runs past"), "{err}");
    }

    #[test]
    fn unknown_dissector_and_odd_direction() {
        let t = parse_pdu_tags(&[
            0, 12, 0, 4, b't', b'c', b'p', 0, 0, 35, 0, 4, 0, 0, 0, 9, 0, 0, 0, 0,
        ])
        .unwrap();
        assert_eq!(t.protocol, Some(Protocol::Other));
        assert_eq!(t.direction, None);
        let t = parse_pdu_tags(&[0, 0, 0, 0]).unwrap();
        assert_eq!((t.protocol, t.direction, t.payload_start), (None, None, 4));
    }

    #[test]
    fn comments_in_either_order() {
        for c in [
            "fds=3 truncated",
            "truncated fds=3",
            " truncated  fds=3 extra",
        ] {
            let (mut fds, mut t) = (0, false);
            let mut k = vec![];
            parse_comment(c.as_bytes(), &mut fds, &mut t, &mut k);
            assert_eq!((fds, t), (3, true), "{c}");
            assert!(k.is_empty());
        }
        let (mut fds, mut t) = (0, false);
        parse_comment(b"fds=x", &mut fds, &mut t, &mut vec![]);
        assert_eq!((fds, t), (0, false));
        let mut out = vec![];
        emit_comment(&mut out, 1, true, &[]);
        assert_eq!(out, b"fds=1 truncated");
        out.clear();
        emit_comment(&mut out, 0, true, &[]);
        assert_eq!(out, b"truncated");
        out.clear();
        emit_comment(&mut out, 2, false, &[]);
        assert_eq!(out, b"fds=2");
    }

    /// Parses a comment, keeping the first `fds=N` descriptions as the reader does.
    fn parse(c: &[u8]) -> (u32, bool, Vec<String>) {
        let (mut fds, mut t, mut k) = (0, false, vec![]);
        parse_comment(c, &mut fds, &mut t, &mut k);
        keep_fd_kinds(&mut k, fds);
        (fds, t, k)
    }

    #[test]
    fn fd_kinds_round_trip() {
        let long_utf8 = "\u{e9}".repeat(200); // 400 bytes
        let long_ascii = "x".repeat(300);
        let kinds = [
            "/memfd:guest ram (deleted)",
            "anon_inode:[eventfd]",
            "socket:[12345]",
            "100% sure",
            "%41 is not A",
            "/tmp/caf\u{e9} \u{1f600}",
            "tab\there\nnl",
            "",
            &long_utf8,
            &long_ascii,
        ];
        for truncated in [false, true] {
            let mut out = vec![];
            emit_comment(&mut out, kinds.len() as u32, truncated, &kinds);
            assert!(out.iter().all(|b| (0x20..=0x7E).contains(b)), "{out:?}");
            let (fds, t, got) = parse(&out);
            assert_eq!((fds, t), (kinds.len() as u32, truncated));
            assert_eq!(got.len(), kinds.len());
            for (want, got) in kinds.iter().zip(&got) {
                if want.len() <= 255 {
                    assert_eq!(got, want);
                } else {
                    // Cut to at most 255 bytes, at a character boundary.
                    assert!(got.len() <= 255 && got.len() >= 253, "{}", got.len());
                    assert!(want.starts_with(got.as_str()));
                }
            }
        }
        assert_eq!(parse(b"fds=1 fd=").2, vec![String::new()]);
    }

    #[test]
    fn malformed_fd_words() {
        // A bad escape is taken literally; a lone `%`, at the end or not, too.
        assert_eq!(decode_fd_kind(b"%G1"), "%G1");
        assert_eq!(decode_fd_kind(b"a%"), "a%");
        assert_eq!(decode_fd_kind(b"a%4"), "a%4");
        assert_eq!(decode_fd_kind(b"%%41"), "%A");
        assert_eq!(decode_fd_kind(b"%4a%4A"), "JJ");
        // Bytes that are not UTF-8 become U+FFFD.
        assert_eq!(decode_fd_kind(b"x%FFy"), "x\u{fffd}y");
        // More words than `fds=N`: the first N. None without `fds=N`, in any order.
        assert_eq!(
            parse(b"fds=2 fd=a fd=b fd=c truncated"),
            (2, true, vec!["a".into(), "b".into()])
        );
        assert_eq!(parse(b"fd=a fds=1 fd=b"), (1, false, vec!["a".into()]));
        assert_eq!(parse(b"fd=a fd=b"), (0, false, vec![]));
        assert_eq!(parse(b"fds=3 fd=a"), (3, false, vec!["a".into()]));
        // Unknown words stay ignored, `fd` alone is not a description.
        assert_eq!(
            parse(b"fds=1 fd fdx=1 fd=%zz"),
            (1, false, vec!["%zz".into()])
        );
        // Whatever the bytes, no panic, and no more text than the comment has (3 bytes per
        // invalid byte at most).
        let mut junk = vec![];
        for i in 0..4096u32 {
            junk.push((i.wrapping_mul(2_654_435_761) >> 24) as u8);
            if i % 7 == 0 {
                junk.extend_from_slice(b" fd=%");
            }
        }
        junk.extend_from_slice(b" fds=4294967295");
        let (_, _, k) = parse(&junk);
        assert!(k.iter().map(String::len).sum::<usize>() <= junk.len() * 3);
    }

    #[test]
    fn options_walk_and_errors() {
        let e = Endian::Little;
        let list = [
            2, 0, 3, 0, b'a', b'b', b'c', 0, 9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0,
        ];
        let got: Vec<_> = Options::new(e, &list)
            .map(|o| o.unwrap())
            .map(|t| (t.code, t.value.to_vec()))
            .collect();
        assert_eq!(got, vec![(2, b"abc".to_vec()), (9, vec![9])]);
        // No end-of-options: fine. Overrun: error at its offset.
        assert_eq!(Options::new(e, &list[..16]).count(), 2);
        let bad = [2, 0, 30, 0, 1, 2];
        let err = Options::new(e, &bad).next().unwrap().err().unwrap();
        assert_eq!(err.0, 0);
        let stray = [2, 0, 0, 0, 1];
        let mut it = Options::new(e, &stray);
        assert!(it.next().unwrap().is_ok());
        assert!(it.next().unwrap().is_err());
        assert!(it.next().is_none());
    }

    #[test]
    fn endian_reads_never_panic() {
        assert_eq!(Endian::Big.u32(&[1, 2], 0), 0);
        assert_eq!(Endian::Big.u32(&[1, 2, 3, 4], usize::MAX), 0);
        assert_eq!(Endian::Big.u16(&[1, 2], 0), 0x0102);
        assert_eq!(Endian::Little.u64(&[1, 0, 0, 0, 0, 0, 0, 0], 0), 1);
    }
}
