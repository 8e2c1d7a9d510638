//! The pcapng reader: a small block parser over the shared [`Input`] buffer.
//!
//! Each call reads one block header (8 bytes, 12 for a Section Header Block, whose byte-order magic
//! decides how to read its length), checks the length (a multiple of 4, at least the minimum for its
//! type, at most [`MAX_RECORD_LEN`]), reads the whole block, checks the trailing length, and then:
//! - SHB: starts a new section (byte order, no interfaces);
//! - IDB: adds a [`Connection`] (link type, `if_name`, `if_tsresol`, `if_tsoffset`);
//! - EPB: returns the record, its data borrowed from the buffer;
//! - anything else (statistics, name resolution, simple or obsolete packet blocks, custom blocks):
//!   skipped.

use std::io::Read;

use vfu_codec::Direction;

use super::error::CaptureError;
use super::input::Input;
use super::layout::{
    BT_EPB, BT_IDB, BT_SHB, BYTE_ORDER_MAGIC, EPB_FLAGS, Endian, IF_NAME, IF_TSOFFSET, IF_TSRESOL,
    LINKTYPE_UPPER_PDU, MIN_BLOCK, MIN_EPB, MIN_IDB, MIN_SHB, OPT_COMMENT, Options,
    direction_of_epb_flags, keep_fd_kinds, pad4, parse_comment, parse_pdu_tags,
    protocol_of_if_name,
};
use super::record::{Connection, MAX_RECORD_LEN, Meta, Protocol};

const CTX_BLOCK: &str = "pcapng block";
const CTX_SHB: &str = "pcapng section header block";
const CTX_IDB: &str = "pcapng interface description block";
const CTX_EPB: &str = "pcapng enhanced packet block";

/// How to turn an interface's timestamp units into nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TsScale {
    /// Units of 10^-e seconds with e ≤ 9: multiply.
    Mul(u64),
    /// Units of 10^-e seconds with e > 9: divide (u128, as 10^(e-9) may not fit a u64).
    Div(u128),
    /// Units of 2^-e seconds.
    Pow2(u32),
}

impl TsScale {
    /// From an `if_tsresol` byte (bit 7: power of 2, else power of 10).
    fn from_tsresol(v: u8) -> TsScale {
        let e = u32::from(v & 0x7f);
        if v & 0x80 != 0 {
            TsScale::Pow2(e)
        } else if e <= 9 {
            TsScale::Mul(10u64.pow(9 - e))
        } else {
            // 10^38 is the largest power of ten in a u128; beyond it every timestamp is 0 ns.
            TsScale::Div(10u128.checked_pow(e - 9).unwrap_or(u128::MAX))
        }
    }

    fn to_ns(self, t: u64) -> u64 {
        let ns = match self {
            TsScale::Mul(m) => u128::from(t) * u128::from(m),
            TsScale::Div(d) => u128::from(t) / d,
            TsScale::Pow2(e) => (u128::from(t) * 1_000_000_000) >> e.min(127),
        };
        u64::try_from(ns).unwrap_or(u64::MAX)
    }
}

/// An interface of the current section.
#[derive(Clone, Copy, Debug)]
struct Iface {
    /// Its connection id (index in `connections`, across sections).
    conn: u32,
    link_type: u16,
    scale: TsScale,
    /// `if_tsoffset`, in seconds.
    offset_s: i64,
    /// Whether the connection's protocol is settled (by `if_name` or a first tag 12); until then the
    /// first packet's dissector name sets it.
    protocol_settled: bool,
}

pub(crate) struct PcapngReader<R> {
    input: Input<R>,
    /// Byte order of the current section.
    endian: Endian,
    ifaces: Vec<Iface>,
    connections: Vec<Connection>,
    fallback: Direction,
    /// Bytes of the last returned block, consumed on the next call.
    pending: usize,
    /// What the descriptors of the last returned record are (its comment's `fd=` words).
    fd_kinds: Vec<String>,
}

impl<R: Read> PcapngReader<R> {
    /// A reader whose input starts with an SHB (checked by the first call).
    pub(crate) fn new(input: Input<R>, fallback: Direction) -> Self {
        PcapngReader {
            input,
            endian: Endian::Little,
            ifaces: Vec::new(),
            connections: Vec::new(),
            fallback,
            pending: 0,
            fd_kinds: Vec::new(),
        }
    }

    pub(crate) fn connections(&self) -> &[Connection] {
        &self.connections
    }

    /// What the descriptors of the last record [`advance`](Self::advance) returned are; empty when
    /// its comment does not say.
    pub(crate) fn fd_kinds(&self) -> &[String] {
        &self.fd_kinds
    }

    pub(crate) fn data(&self, m: &Meta) -> &[u8] {
        self.input
            .data()
            .get(m.start..m.start + m.len)
            .unwrap_or(&[])
    }

    pub(crate) fn advance(&mut self) -> Result<Option<Meta>, CaptureError> {
        self.input.consume(std::mem::take(&mut self.pending));
        loop {
            let off = self.input.offset();
            let have = self
                .input
                .fill(MIN_BLOCK)
                .map_err(|e| CaptureError::io(off, e))?;
            if have == 0 {
                return Ok(None);
            }
            let head = self.input.data();
            let incomplete = |needed: usize, available: usize| CaptureError::Incomplete {
                offset: off,
                context: CTX_BLOCK,
                needed: needed as u64,
                available: available as u64,
            };
            if have < 8 {
                return Err(incomplete(MIN_BLOCK, have));
            }
            let is_shb = Endian::Little.u32(head, 0) == BT_SHB;
            if is_shb {
                if have < 12 {
                    return Err(incomplete(MIN_SHB, have));
                }
                self.endian = match Endian::Little.u32(head, 8) {
                    BYTE_ORDER_MAGIC => Endian::Little,
                    m if m.swap_bytes() == BYTE_ORDER_MAGIC => Endian::Big,
                    m => {
                        return Err(CaptureError::malformed(
                            off,
                            CTX_SHB,
                            format!(
                                "byte-order magic {m:#010x} is not 0x1a2b3c4d in either byte order"
                            ),
                        ));
                    }
                };
            }
            let e = self.endian;
            let ty = e.u32(head, 0);
            let len = e.u32(head, 4) as usize;
            let (min, ctx) = match ty {
                BT_SHB => (MIN_SHB, CTX_SHB),
                BT_IDB => (MIN_IDB, CTX_IDB),
                BT_EPB => (MIN_EPB, CTX_EPB),
                _ => (MIN_BLOCK, CTX_BLOCK),
            };
            if len < min {
                return Err(CaptureError::malformed(
                    off,
                    ctx,
                    format!("block length {len} below minimum {min}"),
                ));
            }
            if len % 4 != 0 {
                return Err(CaptureError::malformed(
                    off,
                    ctx,
                    format!("block length {len} is not a multiple of 4"),
                ));
            }
            if len > MAX_RECORD_LEN {
                return Err(CaptureError::TooLarge {
                    offset: off,
                    context: ctx,
                    len: len as u64,
                    limit: MAX_RECORD_LEN as u64,
                });
            }
            let have = self.input.fill(len).map_err(|e| CaptureError::io(off, e))?;
            if have < len {
                return Err(CaptureError::Incomplete {
                    offset: off,
                    context: ctx,
                    needed: len as u64,
                    available: have as u64,
                });
            }
            let block = &self.input.data()[..len];
            let trailer = e.u32(block, len - 4) as usize;
            if trailer != len {
                return Err(CaptureError::malformed(
                    off,
                    ctx,
                    format!(
                        "trailing block length {trailer} differs from the leading length {len}"
                    ),
                ));
            }
            let body = &block[8..len - 4];
            match ty {
                BT_SHB => {
                    let major = e.u16(body, 4);
                    if major != 1 {
                        let minor = e.u16(body, 6);
                        return Err(CaptureError::malformed(
                            off,
                            CTX_SHB,
                            format!("pcapng version {major}.{minor} is not 1.x"),
                        ));
                    }
                    self.ifaces.clear();
                }
                BT_IDB => {
                    let (iface, conn) = parse_idb(e, body, self.connections.len(), off)?;
                    self.ifaces.push(iface);
                    self.connections.push(conn);
                }
                BT_EPB => {
                    let meta = parse_epb(
                        e,
                        body,
                        off,
                        &mut self.ifaces,
                        &mut self.connections,
                        self.fallback,
                        &mut self.fd_kinds,
                    )?;
                    self.pending = len;
                    return Ok(Some(meta));
                }
                _ => {}
            }
            self.input.consume(len);
        }
    }
}

/// Parses an EPB body (after the 8-byte block header); the returned span is relative to the block
/// start, which is the start of the input's data.
fn parse_epb(
    e: Endian,
    body: &[u8],
    off: u64,
    ifaces: &mut [Iface],
    connections: &mut [Connection],
    fallback: Direction,
    fd_kinds: &mut Vec<String>,
) -> Result<Meta, CaptureError> {
    // Most records have no descriptions: nothing to drop then.
    if !fd_kinds.is_empty() {
        fd_kinds.clear();
    }
    let iface_id = e.u32(body, 0);
    let ts = (u64::from(e.u32(body, 4)) << 32) | u64::from(e.u32(body, 8));
    let cap = e.u32(body, 12) as usize;
    let orig = e.u32(body, 16) as usize;
    let room = body.len() - 20;
    if pad4(cap) > room {
        return Err(CaptureError::malformed(
            off,
            CTX_EPB,
            format!("captured length {cap} runs past the block ({room} bytes of room)"),
        ));
    }
    let Some(iface) = ifaces.get_mut(iface_id as usize) else {
        return Err(CaptureError::malformed(
            off,
            CTX_EPB,
            format!(
                "interface id {iface_id} is not defined (the section has {} interfaces)",
                ifaces.len()
            ),
        ));
    };
    let packet = &body[20..20 + cap];
    let mut flags_dir = None;
    let mut fds = 0;
    let mut truncated = false;
    let options = &body[20 + pad4(cap)..];
    // What the writer puts on every record, `epb_flags` then the end of options, read at once.
    let only_flags = options.len() == 12
        && e.u16(options, 0) == EPB_FLAGS
        && e.u16(options, 2) == 4
        && e.u32(options, 8) == 0;
    if only_flags {
        flags_dir = direction_of_epb_flags(e.u32(options, 4));
    }
    for opt in Options::new(e, if only_flags { &[] } else { options }) {
        let opt = opt.map_err(|(at, why)| {
            CaptureError::malformed(
                off,
                CTX_EPB,
                format!("option at block offset {}: {why}", 28 + pad4(cap) + at),
            )
        })?;
        match opt.code {
            EPB_FLAGS if opt.value.len() == 4 => {
                flags_dir = direction_of_epb_flags(e.u32(opt.value, 0));
            }
            OPT_COMMENT => parse_comment(opt.value, &mut fds, &mut truncated, fd_kinds),
            _ => {}
        }
    }
    if !fd_kinds.is_empty() {
        keep_fd_kinds(fd_kinds, fds);
    }
    let conn = iface.conn;
    let (protocol, tag_dir, start) = if u32::from(iface.link_type) == LINKTYPE_UPPER_PDU {
        let tags = parse_pdu_tags(packet)
            .map_err(|why| CaptureError::malformed(off, CTX_EPB, format!("packet data: {why}")))?;
        let known = connections.get_mut(conn as usize);
        let protocol = match (tags.protocol, known) {
            (Some(p), Some(c)) => {
                // An interface without a telling name takes the protocol of its first packet.
                if !iface.protocol_settled {
                    c.protocol = p;
                    iface.protocol_settled = true;
                }
                p
            }
            (Some(p), None) => p,
            (None, c) => c.map_or(Protocol::Other, |c| c.protocol),
        };
        (protocol, tags.direction, tags.payload_start)
    } else {
        (Protocol::Other, None, 0)
    };
    let ts_ns = iface.scale.to_ns(ts);
    let ts_ns = i128::from(ts_ns) + i128::from(iface.offset_s) * 1_000_000_000;
    Ok(Meta {
        conn,
        ts_ns: u64::try_from(ts_ns.max(0)).unwrap_or(u64::MAX),
        direction: tag_dir.or(flags_dir).unwrap_or(fallback),
        protocol,
        fds,
        truncated,
        // A captured length below the original: the writer cut the message to its snap length.
        orig_len: orig.saturating_sub(start).max(cap - start),
        file_offset: off,
        start: 28 + start,
        len: cap - start,
        stream: None,
    })
}

/// Parses an IDB body into the interface and its connection.
fn parse_idb(
    e: Endian,
    body: &[u8],
    conn: usize,
    off: u64,
) -> Result<(Iface, Connection), CaptureError> {
    let link_type = e.u16(body, 0);
    let mut name = None;
    let mut scale = TsScale::Mul(1000); // default if_tsresol 6: microseconds
    let mut offset_s = 0;
    for opt in Options::new(e, &body[8..]) {
        let opt = opt.map_err(|(at, why)| {
            CaptureError::malformed(
                off,
                CTX_IDB,
                format!("option at block offset {}: {why}", 16 + at),
            )
        })?;
        match opt.code {
            IF_NAME => {
                let end = opt
                    .value
                    .iter()
                    .position(|&b| b == 0)
                    .unwrap_or(opt.value.len());
                name = Some(String::from_utf8_lossy(&opt.value[..end]).into_owned());
            }
            IF_TSRESOL if !opt.value.is_empty() => scale = TsScale::from_tsresol(opt.value[0]),
            IF_TSOFFSET if opt.value.len() == 8 => offset_s = e.u64(opt.value, 0) as i64,
            _ => {}
        }
    }
    let id = conn as u32;
    let pdu = u32::from(link_type) == LINKTYPE_UPPER_PDU;
    let protocol = match &name {
        Some(n) if pdu => protocol_of_if_name(n),
        _ => Protocol::Other,
    };
    let name = name.unwrap_or_else(|| format!("interface {id}"));
    Ok((
        Iface {
            conn: id,
            link_type,
            scale,
            offset_s,
            protocol_settled: !pdu || protocol != Protocol::Other,
        },
        Connection { id, name, protocol },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{CaptureReader, OpenOptions, Record};

    /// A test builder of pcapng blocks in either byte order.
    struct B(Endian, Vec<u8>);
    impl B {
        fn u16(&mut self, v: u16) -> &mut Self {
            let b = match self.0 {
                Endian::Little => v.to_le_bytes(),
                Endian::Big => v.to_be_bytes(),
            };
            self.1.extend_from_slice(&b);
            self
        }
        fn u32(&mut self, v: u32) -> &mut Self {
            let b = match self.0 {
                Endian::Little => v.to_le_bytes(),
                Endian::Big => v.to_be_bytes(),
            };
            self.1.extend_from_slice(&b);
            self
        }
        fn opt(&mut self, code: u16, v: &[u8]) -> &mut Self {
            self.u16(code).u16(v.len() as u16);
            self.1.extend_from_slice(v);
            self.1.resize(pad4(self.1.len()), 0);
            self
        }
        fn bytes(&mut self, v: &[u8]) -> &mut Self {
            self.1.extend_from_slice(v);
            self.1.resize(pad4(self.1.len()), 0);
            self
        }
        fn block(e: Endian, ty: u32, f: impl FnOnce(&mut B)) -> Vec<u8> {
            let mut body = B(e, vec![]);
            f(&mut body);
            let len = body.1.len() as u32 + 12;
            let mut out = B(e, vec![]);
            out.u32(ty).u32(len);
            out.1.extend_from_slice(&body.1);
            out.u32(len);
            out.1
        }
    }

    fn shb(e: Endian) -> Vec<u8> {
        B::block(e, BT_SHB, |b| {
            b.u32(BYTE_ORDER_MAGIC)
                .u16(1)
                .u16(0)
                .u32(u32::MAX)
                .u32(u32::MAX);
        })
    }

    fn idb(e: Endian, link: u16, name: Option<&str>, tsresol: Option<u8>) -> Vec<u8> {
        B::block(e, BT_IDB, |b| {
            b.u16(link).u16(0).u32(0);
            if let Some(n) = name {
                b.opt(IF_NAME, n.as_bytes());
            }
            if let Some(r) = tsresol {
                b.opt(IF_TSRESOL, &[r]);
            }
            b.opt(0, &[]);
        })
    }

    fn epb(e: Endian, iface: u32, ts: u64, packet: &[u8], opts: &[(u16, &[u8])]) -> Vec<u8> {
        B::block(e, BT_EPB, |b| {
            b.u32(iface)
                .u32((ts >> 32) as u32)
                .u32(ts as u32)
                .u32(packet.len() as u32)
                .u32(packet.len() as u32)
                .bytes(packet);
            for (c, v) in opts {
                b.opt(*c, v);
            }
        })
    }

    fn pdu(proto: &str, dir: Option<u32>, msg: &[u8]) -> Vec<u8> {
        let mut p = B(Endian::Big, vec![]);
        if !proto.is_empty() {
            // The length field holds the padded length.
            p.u16(12)
                .u16(pad4(proto.len()) as u16)
                .bytes(proto.as_bytes());
        }
        if let Some(d) = dir {
            p.u16(35).u16(4).u32(d);
        }
        p.u16(0).u16(0);
        p.1.extend_from_slice(msg);
        p.1
    }

    fn msg(cmd: u16, size: u32) -> Vec<u8> {
        let mut m = vec![0u8; size as usize];
        m[2..4].copy_from_slice(&cmd.to_le_bytes());
        m[4..8].copy_from_slice(&size.to_le_bytes());
        m
    }

    fn read_all(bytes: &[u8]) -> (Vec<Record>, Vec<Connection>, Option<CaptureError>) {
        let mut r = CaptureReader::new(bytes, &OpenOptions::default()).unwrap();
        let mut out = vec![];
        let err = loop {
            match r.next_record() {
                Ok(Some(rec)) => out.push(rec.to_owned()),
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        (out, r.connections().to_vec(), err)
    }

    #[test]
    fn big_endian_section_and_second_section() {
        let mut f = shb(Endian::Big);
        f.extend(idb(Endian::Big, 252, Some("vduse:0:/dev/vduse/x"), Some(9)));
        f.extend(epb(
            Endian::Big,
            0,
            1_000,
            &pdu("vduse", Some(1), &[7; 152]),
            &[],
        ));
        // Unknown block types are skipped.
        f.extend(B::block(Endian::Big, 0x0000_0BAD, |b| {
            b.u32(1).u32(2);
        }));
        f.extend(shb(Endian::Little));
        f.extend(idb(Endian::Little, 252, Some("vfio-user:0:/s"), None));
        f.extend(epb(
            Endian::Little,
            0,
            5,
            &pdu("vfio_user", None, &msg(1, 16)),
            &[
                (EPB_FLAGS, &2u32.to_le_bytes()),
                (OPT_COMMENT, b"truncated fds=2"),
            ],
        ));
        let (recs, conns, err) = read_all(&f);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(conns.len(), 2);
        assert_eq!(
            (conns[0].protocol, conns[1].protocol),
            (Protocol::Vduse, Protocol::VfioUser)
        );
        assert_eq!(recs.len(), 2);
        let (a, b) = (&recs[0], &recs[1]);
        assert_eq!(
            (a.conn, a.ts_ns, a.direction, a.protocol),
            (0, 1_000, Direction::ServerToClient, Protocol::Vduse)
        );
        assert_eq!(a.data, vec![7; 152]);
        // Second section: interface 0 is connection 1; microseconds by default; direction from flags.
        assert_eq!(
            (b.conn, b.ts_ns, b.direction, b.fds, b.truncated),
            (1, 5_000, Direction::ClientToServer, 2, true)
        );
        assert_eq!((a.index, b.index), (0, 1));
        assert_eq!(
            b.file_offset as usize,
            f.len()
                - epb(
                    Endian::Little,
                    0,
                    5,
                    &pdu("vfio_user", None, &msg(1, 16)),
                    &[
                        (EPB_FLAGS, &2u32.to_le_bytes()),
                        (OPT_COMMENT, b"truncated fds=2")
                    ]
                )
                .len()
        );
    }

    #[test]
    fn protocol_from_if_name_when_tag_missing() {
        let mut f = shb(Endian::Little);
        f.extend(idb(Endian::Little, 252, Some("vfio-user:0:/x"), Some(9)));
        f.extend(idb(Endian::Little, 252, None, Some(9)));
        f.extend(idb(Endian::Little, 1, Some("eth0"), Some(9)));
        f.extend(epb(
            Endian::Little,
            0,
            1,
            &pdu("", Some(0), &msg(2, 16)),
            &[],
        ));
        f.extend(epb(
            Endian::Little,
            1,
            1,
            &pdu("", None, &msg(2, 16)),
            &[(EPB_FLAGS, &1u32.to_le_bytes())],
        ));
        f.extend(epb(
            Endian::Little,
            1,
            1,
            &pdu("vduse", None, &msg(2, 16)),
            &[],
        ));
        f.extend(epb(Endian::Little, 2, 1, &[1, 2, 3], &[]));
        let (recs, conns, err) = read_all(&f);
        assert!(err.is_none(), "{err:?}");
        let got: Vec<_> = recs
            .iter()
            .map(|r| (r.conn, r.protocol, r.direction, r.data.len()))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, Protocol::VfioUser, Direction::ClientToServer, 16),
                (1, Protocol::Other, Direction::ServerToClient, 16),
                (1, Protocol::Vduse, Direction::ClientToServer, 16),
                (2, Protocol::Other, Direction::ClientToServer, 3),
            ]
        );
        assert_eq!(conns[1].name, "interface 1");
        assert_eq!(conns[1].protocol, Protocol::Vduse);
        assert_eq!(conns[2].protocol, Protocol::Other);
    }

    #[test]
    fn tsresol_variants() {
        assert_eq!(TsScale::from_tsresol(6).to_ns(3), 3_000);
        assert_eq!(TsScale::from_tsresol(9).to_ns(3), 3);
        assert_eq!(TsScale::from_tsresol(12).to_ns(3_000), 3);
        assert_eq!(TsScale::from_tsresol(0x80 | 10).to_ns(1024), 1_000_000_000);
        assert_eq!(TsScale::from_tsresol(0).to_ns(u64::MAX), u64::MAX);
        assert_eq!(TsScale::from_tsresol(127).to_ns(u64::MAX), 0);
        assert_eq!(TsScale::from_tsresol(0xff).to_ns(u64::MAX), 0);
    }

    #[test]
    fn errors_name_the_block_offset() {
        let mut f = shb(Endian::Little);
        let at = f.len();
        f.extend(B::block(Endian::Little, BT_EPB, |_| {}));
        let (recs, _, err) = read_all(&f);
        assert!(recs.is_empty());
        assert_eq!(
            err.unwrap().to_string(),
            format!(
                "pcapng enhanced packet block at offset {at:#x}: block length 12 below minimum 32"
            )
        );

        let mut f = shb(Endian::Little);
        f.extend(epb(Endian::Little, 3, 0, &[0; 4], &[]));
        let err = read_all(&f).2.unwrap().to_string();
        assert!(err.contains("interface id 3 is not defined"), "{err}");

        let mut f = shb(Endian::Little);
        f.extend(idb(Endian::Little, 252, None, None));
        f.extend(epb(
            Endian::Little,
            0,
            0,
            &pdu("vfio_user", None, &msg(1, 16)),
            &[],
        ));
        let len = f.len();
        f[len - 1] = 9; // the EPB's trailing length
        let err = read_all(&f).2.unwrap().to_string();
        assert!(err.contains("trailing block length"), "{err}");

        let mut f = shb(Endian::Little);
        f[8] = 0x11;
        let err = read_all(&f).2.unwrap().to_string();
        assert!(err.contains("byte-order magic"), "{err}");
    }

    #[test]
    fn incomplete_final_block_after_records() {
        let mut f = shb(Endian::Little);
        f.extend(idb(Endian::Little, 252, Some("vfio-user:0:/x"), Some(9)));
        let one = epb(
            Endian::Little,
            0,
            1,
            &pdu("vfio_user", Some(0), &msg(1, 40)),
            &[],
        );
        f.extend(&one);
        let at = f.len();
        f.extend(&one[..one.len() - 5]);
        let (recs, _, err) = read_all(&f);
        assert_eq!(recs.len(), 1);
        let err = err.unwrap();
        assert_eq!(err.offset(), Some(at as u64));
        assert!(
            matches!(err, CaptureError::Incomplete { available, needed, .. } if needed == one.len() as u64 && available == one.len() as u64 - 5)
        );
    }

    #[test]
    fn huge_block_length_is_refused_without_allocating() {
        let mut f = shb(Endian::Little);
        f.extend(
            B(Endian::Little, vec![])
                .u32(BT_EPB)
                .u32(0xFFFF_FFFC)
                .1
                .clone(),
        );
        f.extend([0u8; 64]);
        let err = read_all(&f).2.unwrap();
        assert!(
            matches!(
                err,
                CaptureError::TooLarge {
                    len: 0xFFFF_FFFC,
                    ..
                }
            ),
            "{err}"
        );
        // Just under the limit, but the file is short: incomplete, and the buffer stays small.
        let mut f = shb(Endian::Little);
        let n = (MAX_RECORD_LEN - 4) as u32 & !3;
        f.extend(B(Endian::Little, vec![]).u32(BT_EPB).u32(n).1.clone());
        f.extend([0u8; 64]);
        let mut r = PcapngReader::new(Input::new(&f[..]), Direction::ClientToServer);
        assert!(matches!(r.advance(), Err(CaptureError::Incomplete { .. })));
        assert!(r.input.capacity() <= 1 << 20);
    }
}
