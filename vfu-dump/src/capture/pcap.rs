//! The classic pcap reader: link type 252 (exported PDU, one message a record), 147 (sockdump, one
//! `send` a record, reassembled by [`Reassembler`]) and anything else (whole records as
//! [`Protocol::Other`]).

use std::io::Read;

use vfu_codec::Direction;

use super::error::CaptureError;
use super::input::Input;
use super::layout::{
    Endian, LINKTYPE_UPPER_PDU, LINKTYPE_USER0, PCAP_HEADER_LEN, PCAP_MAGIC_NS, PCAP_MAGIC_US,
    PCAP_RECORD_HEADER_LEN, parse_pdu_tags,
};
use super::record::{Connection, MAX_RECORD_LEN, Meta, Protocol};
use super::sockdump::Reassembler;

const CTX_HEADER: &str = "pcap file header";
const CTX_RECORD: &str = "pcap record";

enum Mode {
    Pdu,
    Sockdump(Box<Reassembler>),
    Other,
}

pub(crate) struct PcapReader<R> {
    input: Input<R>,
    endian: Endian,
    nanos: bool,
    link_type: u32,
    mode: Mode,
    connections: Vec<Connection>,
    fallback: Direction,
    /// Bytes of the last returned record, consumed on the next call.
    pending: usize,
}

/// A record read into the input buffer (header and data, not yet consumed).
struct RawRecord {
    offset: u64,
    ts_ns: u64,
    incl: usize,
    orig: usize,
}

impl<R: Read> PcapReader<R> {
    /// Reads the 24-byte file header.
    pub(crate) fn new(mut input: Input<R>, fallback: Direction) -> Result<Self, CaptureError> {
        let have = input
            .fill(PCAP_HEADER_LEN)
            .map_err(|e| CaptureError::io(0, e))?;
        if have < PCAP_HEADER_LEN {
            return Err(CaptureError::Incomplete {
                offset: 0,
                context: CTX_HEADER,
                needed: PCAP_HEADER_LEN as u64,
                available: have as u64,
            });
        }
        let h = input.data();
        let magic = Endian::Little.u32(h, 0);
        let (endian, nanos) = match magic {
            PCAP_MAGIC_US => (Endian::Little, false),
            PCAP_MAGIC_NS => (Endian::Little, true),
            m if m == PCAP_MAGIC_US.swap_bytes() => (Endian::Big, false),
            m if m == PCAP_MAGIC_NS.swap_bytes() => (Endian::Big, true),
            m => {
                return Err(CaptureError::malformed(
                    0,
                    CTX_HEADER,
                    format!("magic {m:#010x} is not a pcap magic"),
                ));
            }
        };
        // The upper bits of the link-type field may hold FCS information.
        let link_type = endian.u32(h, 20) & 0x0FFF_FFFF;
        input.consume(PCAP_HEADER_LEN);
        let mode = match link_type {
            LINKTYPE_UPPER_PDU => Mode::Pdu,
            LINKTYPE_USER0 => Mode::Sockdump(Box::default()),
            _ => Mode::Other,
        };
        Ok(PcapReader {
            input,
            endian,
            nanos,
            link_type,
            mode,
            connections: Vec::new(),
            fallback,
            pending: 0,
        })
    }

    pub(crate) fn connections(&self) -> &[Connection] {
        &self.connections
    }

    pub(crate) fn data(&self, m: &Meta) -> &[u8] {
        match &self.mode {
            Mode::Sockdump(r) => r.data(m),
            _ => self
                .input
                .data()
                .get(m.start..m.start + m.len)
                .unwrap_or(&[]),
        }
    }

    /// Reads the next record's header and data into the buffer; `None` at a clean end.
    fn read_record(&mut self) -> Result<Option<RawRecord>, CaptureError> {
        let offset = self.input.offset();
        let have = self
            .input
            .fill(PCAP_RECORD_HEADER_LEN)
            .map_err(|e| CaptureError::io(offset, e))?;
        if have == 0 {
            return Ok(None);
        }
        if have < PCAP_RECORD_HEADER_LEN {
            return Err(CaptureError::Incomplete {
                offset,
                context: CTX_RECORD,
                needed: PCAP_RECORD_HEADER_LEN as u64,
                available: have as u64,
            });
        }
        let h = self.input.data();
        let e = self.endian;
        let sec = u64::from(e.u32(h, 0));
        let frac = u64::from(e.u32(h, 4));
        let incl = e.u32(h, 8) as usize;
        let orig = e.u32(h, 12) as usize;
        let ts_ns = sec * 1_000_000_000 + if self.nanos { frac } else { frac * 1000 };
        if incl > MAX_RECORD_LEN {
            return Err(CaptureError::TooLarge {
                offset,
                context: CTX_RECORD,
                len: incl as u64,
                limit: MAX_RECORD_LEN as u64,
            });
        }
        let total = PCAP_RECORD_HEADER_LEN + incl;
        let have = self
            .input
            .fill(total)
            .map_err(|e| CaptureError::io(offset, e))?;
        if have < total {
            return Err(CaptureError::Incomplete {
                offset,
                context: CTX_RECORD,
                needed: total as u64,
                available: have as u64,
            });
        }
        Ok(Some(RawRecord {
            offset,
            ts_ns,
            incl,
            orig,
        }))
    }

    pub(crate) fn advance(&mut self) -> Result<Option<Meta>, CaptureError> {
        self.input.consume(std::mem::take(&mut self.pending));
        if matches!(self.mode, Mode::Sockdump(_)) {
            return self.advance_sockdump();
        }
        let Some(rec) = self.read_record()? else {
            return Ok(None);
        };
        let packet = &self.input.data()[PCAP_RECORD_HEADER_LEN..PCAP_RECORD_HEADER_LEN + rec.incl];
        let (protocol, direction, start) = if let Mode::Pdu = self.mode {
            let tags = parse_pdu_tags(packet).map_err(|why| {
                CaptureError::malformed(rec.offset, CTX_RECORD, format!("packet data: {why}"))
            })?;
            (
                tags.protocol.unwrap_or(Protocol::Other),
                tags.direction,
                tags.payload_start,
            )
        } else {
            (Protocol::Other, None, 0)
        };
        if self.connections.is_empty() {
            let name = match protocol {
                Protocol::VfioUser => "vfio-user:0:".to_owned(),
                Protocol::Vduse | Protocol::VduseIoctl => "vduse:0:".to_owned(),
                Protocol::Other => format!("pcap link type {}", self.link_type),
            };
            self.connections.push(Connection {
                id: 0,
                name,
                protocol,
            });
        }
        self.pending = PCAP_RECORD_HEADER_LEN + rec.incl;
        Ok(Some(Meta {
            conn: 0,
            ts_ns: rec.ts_ns,
            direction: direction.unwrap_or(self.fallback),
            protocol,
            fds: 0,
            truncated: false,
            // An included length below the original: cut to the writer's snap length.
            orig_len: rec.orig.saturating_sub(start).max(rec.incl - start),
            file_offset: rec.offset,
            start: PCAP_RECORD_HEADER_LEN + start,
            len: rec.incl - start,
            stream: None,
        }))
    }

    fn advance_sockdump(&mut self) -> Result<Option<Meta>, CaptureError> {
        loop {
            if let Mode::Sockdump(r) = &mut self.mode {
                if let Some(m) = r.next_ready()? {
                    return Ok(Some(m));
                }
            }
            let Some(rec) = self.read_record()? else {
                return Ok(match &mut self.mode {
                    Mode::Sockdump(r) => r.next_leftover(),
                    _ => None,
                });
            };
            let record =
                &self.input.data()[PCAP_RECORD_HEADER_LEN..PCAP_RECORD_HEADER_LEN + rec.incl];
            let missing = rec.orig.saturating_sub(rec.incl) as u64;
            if let Mode::Sockdump(r) = &mut self.mode {
                r.push(
                    record,
                    missing,
                    rec.ts_ns,
                    rec.offset,
                    &mut self.connections,
                )?;
            }
            self.input.consume(PCAP_RECORD_HEADER_LEN + rec.incl);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{CaptureReader, OpenOptions};

    fn header(magic: u32, link: u32, big: bool) -> Vec<u8> {
        let words: [u32; 5] = [magic, 0x0004_0002, 0, 0, 65535];
        let mut h = vec![];
        for (i, w) in words.iter().enumerate() {
            if i == 1 {
                let (maj, min) = (2u16, 4u16);
                if big {
                    h.extend(maj.to_be_bytes());
                    h.extend(min.to_be_bytes());
                } else {
                    h.extend(maj.to_le_bytes());
                    h.extend(min.to_le_bytes());
                }
                continue;
            }
            h.extend(if big {
                w.to_be_bytes()
            } else {
                w.to_le_bytes()
            });
        }
        h.extend(if big {
            link.to_be_bytes()
        } else {
            link.to_le_bytes()
        });
        h
    }

    fn rec(big: bool, sec: u32, frac: u32, data: &[u8], orig: usize) -> Vec<u8> {
        let mut r = vec![];
        for w in [sec, frac, data.len() as u32, orig as u32] {
            r.extend(if big {
                w.to_be_bytes()
            } else {
                w.to_le_bytes()
            });
        }
        r.extend_from_slice(data);
        r
    }

    #[test]
    fn link_252_both_byte_orders_and_resolutions() {
        let mut packet = vec![
            0, 12, 0, 8, b'v', b'd', b'u', b's', b'e', 0, 0, 0, 0, 35, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0,
        ];
        packet.extend([9u8; 152]);
        for (magic, big, ns) in [
            (PCAP_MAGIC_US, false, false),
            (PCAP_MAGIC_US, true, false),
            (PCAP_MAGIC_NS, false, true),
            (PCAP_MAGIC_NS, true, true),
        ] {
            let mut f = header(magic, 252, big);
            f.extend(rec(big, 2, 5, &packet, packet.len()));
            f.extend(rec(big, 3, 0, &packet[..30], packet.len()));
            let mut r = CaptureReader::new(&f[..], &OpenOptions::default()).unwrap();
            let a = r.next_record().unwrap().unwrap().to_owned();
            assert_eq!(a.ts_ns, 2_000_000_000 + if ns { 5 } else { 5_000 });
            assert_eq!(
                (a.protocol, a.direction, a.truncated),
                (Protocol::Vduse, Direction::ServerToClient, false)
            );
            assert_eq!(a.data, vec![9u8; 152]);
            assert_eq!(a.file_offset, 24);
            let b = r.next_record().unwrap().unwrap().to_owned();
            assert!(!b.truncated, "cut, not truncated");
            assert_eq!(b.data.len(), 6);
            assert_eq!(b.orig_len, 152);
            assert!(b.as_ref().is_cut());
            assert!(r.next_record().unwrap().is_none());
            assert_eq!(r.connections()[0].name, "vduse:0:");
        }
    }

    #[test]
    fn other_link_types_are_whole_records() {
        let mut f = header(PCAP_MAGIC_US, 1, false);
        f.extend(rec(false, 0, 0, &[1, 2, 3], 3));
        let mut r = CaptureReader::new(&f[..], &OpenOptions::default()).unwrap();
        let a = r.next_record().unwrap().unwrap();
        assert_eq!((a.protocol, a.data), (Protocol::Other, &[1u8, 2, 3][..]));
        assert_eq!(r.connections()[0].name, "pcap link type 1");
    }

    #[test]
    fn short_header_and_records() {
        let f = header(PCAP_MAGIC_US, 252, false);
        for n in 4..24 {
            let Err(e) = CaptureReader::new(&f[..n], &OpenOptions::default()) else {
                panic!("{n}");
            };
            assert!(
                matches!(e, CaptureError::Incomplete { offset: 0, .. }),
                "{e}"
            );
        }
        let mut f = header(PCAP_MAGIC_US, 252, false);
        f.extend(rec(false, 0, 0, &[0, 0, 0, 0, 1], 5));
        let mut g = f.clone();
        g.extend(rec(false, 0, 0, &[0; 8], 8));
        g.truncate(g.len() - 3);
        let mut r = CaptureReader::new(&g[..], &OpenOptions::default()).unwrap();
        assert_eq!(r.next_record().unwrap().unwrap().data, &[1]);
        let e = r.next_record().unwrap_err();
        assert_eq!(e.offset(), Some(f.len() as u64));
        assert!(r.next_record().unwrap().is_none());
        // A 4 GiB record length.
        let mut h = header(PCAP_MAGIC_US, 252, false);
        h.extend(rec(false, 0, 0, &[], 0));
        h[24 + 8..24 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut r = CaptureReader::new(&h[..], &OpenOptions::default()).unwrap();
        assert!(matches!(
            r.next_record(),
            Err(CaptureError::TooLarge { .. })
        ));
    }
}
