//! [`PcapngWriter`]: writes the capture format of `docs/capture-format.md`.

use std::io::{self, Write};

use vfu_codec::EncodeError;
use vfu_codec::capture::{self, Packet};

use super::layout::dissector_of;
use super::record::{Connection, Protocol, RecordRef};

/// Writes a little-endian pcapng file: a Section Header Block when created, an Interface Description
/// Block per [`add_connection`](Self::add_connection) (link type 252, snaplen 0, `if_name`,
/// `if_tsresol` 9), and an Enhanced Packet Block per [`write_record`](Self::write_record) (exported-PDU
/// tags 12 and 35, the message, `epb_flags` and, when there is something to say, the comment
/// `fds=N fd=… truncated`).
///
/// The blocks are encoded by [`vfu_codec::capture`], the one place the format's conventions are
/// written down. Each block is built in one reused buffer and handed to the writer with one
/// `write_all`; wrap a file in a [`std::io::BufWriter`] when records are small and many.
pub struct PcapngWriter<W: Write> {
    out: W,
    block: Vec<u8>,
    connections: Vec<Connection>,
    /// Most bytes of packet data (tags and message) per record; 0: no limit.
    snaplen: u32,
    /// Records written cut to `snaplen`.
    cut: u64,
    /// Records whose packet data is over [`WIRESHARK_MAX_RECORD`].
    over_wireshark: u64,
}

/// The longest packet data (exported-PDU tags and message) Wireshark and tshark read in a record of
/// link type 252 (`WTAP_MAX_PACKET_SIZE_STANDARD`, 256 KiB): tshark 4.0 stops reading a capture at
/// the first longer record. A writer's snap length of at most this makes every record readable.
pub const WIRESHARK_MAX_RECORD: u32 = 262_144;

/// The smallest snap length [`PcapngWriter::with_snaplen`] takes: the tags, a header and the fixed
/// part of every vfio-user message, and every VDUSE message, fit in it.
pub const MIN_SNAPLEN: u32 = 256;

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

impl<W: Write> PcapngWriter<W> {
    /// Writes the Section Header Block (version 1.0, section length unspecified, no options).
    pub fn new(out: W) -> io::Result<Self> {
        Self::with_snaplen(out, 0)
    }

    /// A writer that cuts every record to at most `snaplen` bytes of packet data (the exported-PDU
    /// tags and the message's first bytes), writing the message's whole length as the record's
    /// original length, as pcapng marks a packet cut to a snap length; each interface announces the
    /// limit in its IDB. 0 is no limit; otherwise it must be at least [`MIN_SNAPLEN`].
    /// [`WIRESHARK_MAX_RECORD`] makes a capture every Wireshark opens.
    pub fn with_snaplen(out: W, snaplen: u32) -> io::Result<Self> {
        if snaplen != 0 && snaplen < MIN_SNAPLEN {
            return Err(invalid(format!(
                "a snap length of {snaplen} bytes is below the minimum of {MIN_SNAPLEN}"
            )));
        }
        let mut w = PcapngWriter {
            out,
            block: Vec::with_capacity(4096),
            connections: Vec::new(),
            snaplen,
            cut: 0,
            over_wireshark: 0,
        };
        w.put(capture::SHB_LEN, capture::write_shb)?;
        Ok(w)
    }

    /// The snap length (0: none).
    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }

    /// Records written cut to the snap length.
    pub fn cut_records(&self) -> u64 {
        self.cut
    }

    /// Records written whole whose packet data is longer than [`WIRESHARK_MAX_RECORD`] (the ones
    /// Wireshark cannot read).
    pub fn records_over_wireshark_limit(&self) -> u64 {
        self.over_wireshark
    }

    /// Counts a record written into the underlying writer directly ([`get_mut`](Self::get_mut)), of
    /// `captured` bytes of packet data (tags and message), `cut` to the snap length or not, as
    /// [`write_record`](Self::write_record) counts its own, for [`size_notes`](Self::size_notes).
    pub fn count_written(&mut self, captured: usize, cut: bool) {
        if cut {
            self.cut += 1;
        } else if captured > WIRESHARK_MAX_RECORD as usize {
            self.over_wireshark += 1;
        }
    }

    /// What to tell the person who asked for the capture about its record sizes: how many
    /// messages were cut to the snap length, and how many records Wireshark cannot read (with what
    /// to do about them). Empty when there is nothing to say.
    pub fn size_notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.cut > 0 {
            notes.push(format!(
                "{} cut to {} bytes (each record keeps its message's whole length)",
                if self.cut == 1 {
                    "1 message".to_owned()
                } else {
                    format!("{} messages", self.cut)
                },
                self.snaplen
            ));
        }
        if self.over_wireshark > 0 {
            notes.push(format!(
                "{} longer than {WIRESHARK_MAX_RECORD} bytes, which Wireshark and tshark do not read \
                 (tshark 4.0 stops at the first): --snaplen {WIRESHARK_MAX_RECORD} writes them cut so \
                 that they do",
                if self.over_wireshark == 1 {
                    "1 record is".to_owned()
                } else {
                    format!("{} records are", self.over_wireshark)
                }
            ));
        }
        notes
    }

    /// Adds a connection: writes its IDB and returns its interface id, which records name in
    /// [`RecordRef::conn`]. `name` is the whole `if_name`, `vfio-user:<n>:<socket path>` or
    /// `vduse:<n>:<device path>` by convention. Connections may be added between records.
    pub fn add_connection(&mut self, name: &str, protocol: Protocol) -> io::Result<u32> {
        if u16::try_from(name.len()).is_err() {
            return Err(invalid(format!(
                "interface name of {} bytes is longer than an option can hold",
                name.len()
            )));
        }
        let id = self.connections.len() as u32;
        let snaplen = self.snaplen;
        self.put(capture::idb_len(name), |b| {
            capture::write_idb_snaplen(name, snaplen, b)
        })?;
        self.connections.push(Connection {
            id,
            name: name.to_owned(),
            protocol,
        });
        Ok(id)
    }

    /// The connections added so far.
    pub fn connections(&self) -> &[Connection] {
        &self.connections
    }

    /// Writes one record as an EPB on interface `record.conn` (timestamp in nanoseconds), cut to
    /// the snap length if it has one (a record already cut keeps its original length).
    /// `index` and `file_offset` are not written.
    pub fn write_record(&mut self, record: &RecordRef<'_>) -> io::Result<()> {
        if record.conn as usize >= self.connections.len() {
            return Err(invalid(format!(
                "record on connection {} but only {} connections were added",
                record.conn,
                self.connections.len()
            )));
        }
        let dissector = dissector_of(record.protocol);
        let tags = capture::pdu_tags_len(dissector);
        let keep = match self.snaplen {
            0 => record.data.len(),
            n => record.data.len().min((n as usize).saturating_sub(tags)),
        };
        let orig_len = record.orig_len.max(record.data.len());
        if keep < orig_len {
            self.cut += 1;
        } else if tags + keep > WIRESHARK_MAX_RECORD as usize {
            self.over_wireshark += 1;
        }
        let packet = Packet {
            interface: record.conn,
            ts_ns: record.ts_ns,
            dissector,
            direction: record.direction,
            fds: record.fds,
            truncated: record.truncated,
            data: &record.data[..keep],
            orig_len,
        };
        let kinds = record.fd_kinds;
        let len = capture::epb_len_with_kinds(&packet, kinds);
        if u32::try_from(len).is_err() {
            return Err(invalid(format!(
                "record of {} bytes is too long for a pcapng block",
                record.data.len()
            )));
        }
        self.put(len, |b| capture::write_epb_with_kinds(&packet, kinds, b))
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// The underlying writer, to write to it directly between blocks (a block written there must
    /// be a whole pcapng block).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Flushes and returns the underlying writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }

    /// Encodes one block of `len` bytes with `encode` into the reused buffer and writes it.
    fn put(
        &mut self,
        len: usize,
        encode: impl FnOnce(&mut [u8]) -> Result<usize, EncodeError>,
    ) -> io::Result<()> {
        self.block.clear();
        self.block.resize(len, 0);
        let n = encode(&mut self.block).map_err(|e| invalid(e.to_string()))?;
        self.out.write_all(&self.block[..n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{CaptureReader, OpenOptions};
    use vfu_codec::Direction;
    use vfu_codec::capture::DISSECTOR_VFIO_USER;

    fn rec(conn: u32, data: &[u8], fds: u32, truncated: bool) -> RecordRef<'_> {
        RecordRef {
            conn,
            ts_ns: 0x1234_5678_9abc_def0,
            direction: Direction::ServerToClient,
            protocol: Protocol::VfioUser,
            fds,
            fd_kinds: &[],
            truncated,
            data,
            orig_len: data.len(),
            index: 0,
            file_offset: 0,
        }
    }

    #[test]
    fn shb_and_idb_are_the_codecs() {
        // Byte for byte what vfu_codec::capture encodes (its tests hold the layout, byte by byte).
        let mut w = PcapngWriter::new(Vec::new()).unwrap();
        let name = "vfio-user:0:/s";
        assert_eq!(w.add_connection(name, Protocol::VfioUser).unwrap(), 0);
        let out = w.into_inner().unwrap();
        let mut want = vec![0u8; capture::SHB_LEN + capture::idb_len(name)];
        let n = capture::write_shb(&mut want).unwrap();
        capture::write_idb(name, &mut want[n..]).unwrap();
        assert_eq!(out, want);
        assert_eq!(&out[..4], &[0x0a, 0x0d, 0x0d, 0x0a]);
    }

    #[test]
    fn epb_layout() {
        let mut w = PcapngWriter::new(Vec::new()).unwrap();
        w.add_connection("x", Protocol::VfioUser).unwrap();
        let skip = w.get_ref().len();
        w.write_record(&rec(0, &[0xA5; 17], 2, true)).unwrap();
        let out = &w.get_ref()[skip..];
        assert_eq!(out.len() % 4, 0);
        let total = u32::from_le_bytes(out[4..8].try_into().unwrap()) as usize;
        assert_eq!(total, out.len());
        assert_eq!(&out[out.len() - 4..], &out[4..8]);
        assert_eq!(&out[8..12], &0u32.to_le_bytes());
        assert_eq!(&out[12..16], &0x1234_5678u32.to_le_bytes());
        assert_eq!(&out[16..20], &0x9abc_def0u32.to_le_bytes());
        let cap = u32::from_le_bytes(out[20..24].try_into().unwrap()) as usize;
        assert_eq!(cap, 28 + 17);
        let opts = &out[28 + capture::pad4(cap)..];
        assert_eq!(&opts[..8], &[2, 0, 4, 0, 1, 0, 0, 0]);
        assert_eq!(&opts[8..12], &[1, 0, 15, 0]);
        assert_eq!(&opts[12..27], b"fds=2 truncated");
        assert_eq!(&opts[28..32], &[0, 0, 0, 0]);
    }

    #[test]
    fn fd_kinds_read_back_per_record() {
        let kinds: Vec<String> = vec![
            "/memfd:guest ram (deleted)".into(),
            "anon_inode:[eventfd]".into(),
        ];
        let mut w = PcapngWriter::new(Vec::new()).unwrap();
        w.add_connection("vfio-user:0:/s", Protocol::VfioUser)
            .unwrap();
        let skip = w.get_ref().len();
        let plain = rec(0, &[0x11; 16], 2, true);
        w.write_record(&plain).unwrap();
        // Without descriptions: what was written before they existed.
        let mut want = vec![0u8; 256];
        let packet = Packet {
            interface: 0,
            ts_ns: plain.ts_ns,
            dissector: DISSECTOR_VFIO_USER,
            direction: plain.direction,
            fds: 2,
            truncated: true,
            data: plain.data,
            orig_len: 16,
        };
        let n = capture::write_epb(&packet, &mut want).unwrap();
        assert_eq!(&w.get_ref()[skip..], &want[..n]);
        w.write_record(&RecordRef {
            fd_kinds: &kinds,
            ..rec(0, &[0x22; 16], 2, false)
        })
        .unwrap();
        w.write_record(&rec(0, &[0x33; 16], 1, false)).unwrap();
        let out = w.into_inner().unwrap();
        let text = b"fds=2 fd=/memfd:guest%20ram%20(deleted) fd=anon_inode:[eventfd]";
        assert!(out.windows(text.len()).any(|w| w == text));
        let mut r = CaptureReader::new(&out[..], &OpenOptions::default()).unwrap();
        let got: Vec<_> = std::iter::from_fn(|| r.next_record().unwrap().map(|r| r.to_owned()))
            .map(|r| (r.fds, r.truncated, r.fd_kinds))
            .collect();
        assert_eq!(
            got,
            vec![(2, true, vec![]), (2, false, kinds), (1, false, vec![])]
        );
    }

    #[test]
    fn cuts_to_the_snap_length_and_reads_back_as_cut() {
        let mut w = PcapngWriter::with_snaplen(Vec::new(), 300).unwrap();
        w.add_connection("vfio-user:0:/s", Protocol::VfioUser)
            .unwrap();
        let big = vec![0x11u8; 5000];
        w.write_record(&rec(0, &big, 1, false)).unwrap();
        let small = [0x22u8; 100];
        w.write_record(&rec(0, &small, 0, false)).unwrap();
        assert_eq!((w.cut_records(), w.records_over_wireshark_limit()), (1, 0));
        let out = w.into_inner().unwrap();
        // The IDB's snaplen field.
        assert_eq!(&out[28 + 12..28 + 16], &300u32.to_le_bytes());
        let mut r = CaptureReader::new(&out[..], &OpenOptions::default()).unwrap();
        let a = r.next_record().unwrap().unwrap().to_owned();
        assert_eq!(a.data.len(), 300 - 28);
        assert_eq!(a.data, big[..300 - 28]);
        assert_eq!(a.orig_len, 5000);
        assert!(!a.truncated, "cut is not truncated");
        assert_eq!(a.fds, 1);
        let b = r.next_record().unwrap().unwrap().to_owned();
        assert_eq!((b.data.len(), b.orig_len), (100, 100));
        assert!(PcapngWriter::with_snaplen(Vec::new(), 255).is_err());
    }

    #[test]
    fn counts_records_wireshark_cannot_read() {
        let mut w = PcapngWriter::new(Vec::new()).unwrap();
        w.add_connection("x", Protocol::VfioUser).unwrap();
        let at_limit = vec![0u8; WIRESHARK_MAX_RECORD as usize - 28];
        w.write_record(&rec(0, &at_limit, 0, false)).unwrap();
        assert_eq!(w.records_over_wireshark_limit(), 0);
        let over = vec![0u8; WIRESHARK_MAX_RECORD as usize - 27];
        w.write_record(&rec(0, &over, 0, false)).unwrap();
        assert_eq!(w.records_over_wireshark_limit(), 1);
    }

    #[test]
    fn refuses_unknown_connections() {
        let mut w = PcapngWriter::new(Vec::new()).unwrap();
        let err = w.write_record(&rec(0, &[], 0, false)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let long = "x".repeat(70_000);
        assert!(w.add_connection(&long, Protocol::Other).is_err());
    }
}
