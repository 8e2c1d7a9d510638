//! [`PcapngWriter`]: writes the capture format of `shared/docs/capture-format.md`.

use std::io::{self, Read, Write};

use vfu_codec::EncodeError;
use vfu_codec::capture::{self, Packet};

use super::layout::dissector_of;
use super::{CaptureReader, Connection, Protocol, RecordRef};

/// Writes a little-endian pcapng file: a Section Header Block when created, an Interface Description
/// Block per [`add_connection`](Self::add_connection) (link type 252, snaplen 0, `if_name`,
/// `if_tsresol` 9), and an Enhanced Packet Block per [`write_record`](Self::write_record) (exported-PDU
/// tags 12 and 35, the message, `epb_flags` and, when there is something to say, the comment
/// `fds=N truncated`).
///
/// The blocks are encoded by [`vfu_codec::capture`], the one place the format's conventions are
/// written down. Each block is built in one reused buffer and handed to the writer with one
/// `write_all`; wrap a file in a [`std::io::BufWriter`] when records are small and many.
pub struct PcapngWriter<W: Write> {
    out: W,
    block: Vec<u8>,
    connections: Vec<Connection>,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

impl<W: Write> PcapngWriter<W> {
    /// Writes the Section Header Block (version 1.0, section length unspecified, no options).
    pub fn new(out: W) -> io::Result<Self> {
        let mut w = PcapngWriter {
            out,
            block: Vec::with_capacity(4096),
            connections: Vec::new(),
        };
        w.put(capture::SHB_LEN, capture::write_shb)?;
        Ok(w)
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
        self.put(capture::idb_len(name), |b| capture::write_idb(name, b))?;
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

    /// Adds the connections `reader` has found that this writer does not have yet, in order, so that
    /// reader connection ids are writer interface ids. Call it before each
    /// [`write_record`](Self::write_record) when converting: readers find connections as they go.
    pub fn copy_connections_from<R: Read>(&mut self, reader: &CaptureReader<R>) -> io::Result<()> {
        let have = self.connections.len();
        for c in reader.connections().iter().skip(have) {
            self.add_connection(&c.name, c.protocol)?;
        }
        Ok(())
    }

    /// Writes one record as an EPB on interface `record.conn` (timestamp in nanoseconds).
    /// `index` and `file_offset` are not written.
    pub fn write_record(&mut self, record: &RecordRef<'_>) -> io::Result<()> {
        if record.conn as usize >= self.connections.len() {
            return Err(invalid(format!(
                "record on connection {} but only {} connections were added",
                record.conn,
                self.connections.len()
            )));
        }
        let packet = Packet {
            interface: record.conn,
            ts_ns: record.ts_ns,
            dissector: dissector_of(record.protocol),
            direction: record.direction,
            fds: record.fds,
            truncated: record.truncated,
            data: record.data,
        };
        if u32::try_from(capture::epb_len(&packet)).is_err() {
            return Err(invalid(format!(
                "record of {} bytes is too long for a pcapng block",
                record.data.len()
            )));
        }
        self.put(capture::epb_len(&packet), |b| {
            capture::write_epb(&packet, b)
        })
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.out
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
    use vfu_codec::Direction;

    fn rec(conn: u32, data: &[u8], fds: u32, truncated: bool) -> RecordRef<'_> {
        RecordRef {
            conn,
            ts_ns: 0x1234_5678_9abc_def0,
            direction: Direction::ServerToClient,
            protocol: Protocol::VfioUser,
            fds,
            truncated,
            data,
            index: 0,
            file_offset: 0,
        }
    }

    #[test]
    fn shb_and_idb_bytes() {
        let mut w = PcapngWriter::new(Vec::new()).unwrap();
        assert_eq!(
            w.add_connection("vfio-user:0:/s", Protocol::VfioUser)
                .unwrap(),
            0
        );
        let out = w.into_inner().unwrap();
        #[rustfmt::skip]
        let want: &[u8] = &[
            0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 28, 0, 0, 0,
            1, 0, 0, 0, 52, 0, 0, 0, 252, 0, 0, 0, 0, 0, 0, 0,
            2, 0, 14, 0, b'v', b'f', b'i', b'o', b'-', b'u', b's', b'e', b'r', b':', b'0', b':', b'/', b's', 0, 0,
            9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0, 52, 0, 0, 0,
        ];
        assert_eq!(out, want);
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
    fn refuses_unknown_connections() {
        let mut w = PcapngWriter::new(Vec::new()).unwrap();
        let err = w.write_record(&rec(0, &[], 0, false)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let long = "x".repeat(70_000);
        assert!(w.add_connection(&long, Protocol::Other).is_err());
    }
}
