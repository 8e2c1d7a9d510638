//! [`PcapngWriter`]: writes the capture format of `shared/docs/capture-format.md`.

use std::io::{self, Read, Write};

use super::layout::{
    BT_EPB, BT_IDB, BT_SHB, BYTE_ORDER_MAGIC, EPB_FLAGS, IF_NAME, IF_TSRESOL, LINKTYPE_UPPER_PDU,
    OPT_COMMENT, OPT_ENDOFOPT, emit_comment, emit_pdu_tags, epb_flags_of, pad4,
};
use super::{CaptureReader, Connection, Protocol, RecordRef};

/// Writes a little-endian pcapng file: a Section Header Block when created, an Interface Description
/// Block per [`add_connection`](Self::add_connection) (link type 252, snaplen 0, `if_name`,
/// `if_tsresol` 9), and an Enhanced Packet Block per [`write_record`](Self::write_record) (exported-PDU
/// tags 12 and 35, the message, `epb_flags` and, when there is something to say, the comment
/// `fds=N truncated`).
///
/// Each block is built in one reused buffer and handed to the writer with one `write_all`; wrap a
/// file in a [`std::io::BufWriter`] when records are small and many.
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
        w.start_block(BT_SHB);
        w.u32(BYTE_ORDER_MAGIC);
        w.u16(1);
        w.u16(0);
        w.block.extend_from_slice(&(-1i64).to_le_bytes());
        w.finish_block()?;
        Ok(w)
    }

    /// Adds a connection: writes its IDB and returns its interface id, which records name in
    /// [`RecordRef::conn`]. `name` is the whole `if_name`, `vfio-user:<n>:<socket path>` or
    /// `vduse:<n>:<device path>` by convention. Connections may be added between records.
    pub fn add_connection(&mut self, name: &str, protocol: Protocol) -> io::Result<u32> {
        let Ok(name_len) = u16::try_from(name.len()) else {
            return Err(invalid(format!(
                "interface name of {} bytes is longer than an option can hold",
                name.len()
            )));
        };
        let id = self.connections.len() as u32;
        self.start_block(BT_IDB);
        self.u16(LINKTYPE_UPPER_PDU as u16);
        self.u16(0);
        self.u32(0); // snaplen: no limit
        self.u16(IF_NAME);
        self.u16(name_len);
        self.block.extend_from_slice(name.as_bytes());
        self.pad();
        self.u16(IF_TSRESOL);
        self.u16(1);
        self.block.extend_from_slice(&[9, 0, 0, 0]);
        self.u16(OPT_ENDOFOPT);
        self.u16(0);
        self.finish_block()?;
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
        self.start_block(BT_EPB);
        self.u32(record.conn);
        self.u32((record.ts_ns >> 32) as u32);
        self.u32(record.ts_ns as u32);
        let lens_at = self.block.len();
        self.u32(0); // captured length, set below
        self.u32(0); // original length
        let data_at = self.block.len();
        emit_pdu_tags(&mut self.block, record.protocol, record.direction);
        self.block.extend_from_slice(record.data);
        let Ok(cap) = u32::try_from(self.block.len() - data_at) else {
            return Err(invalid(format!(
                "record of {} bytes is too long for a pcapng block",
                record.data.len()
            )));
        };
        self.block[lens_at..lens_at + 4].copy_from_slice(&cap.to_le_bytes());
        self.block[lens_at + 4..lens_at + 8].copy_from_slice(&cap.to_le_bytes());
        self.pad();
        self.u16(EPB_FLAGS);
        self.u16(4);
        self.u32(epb_flags_of(record.direction));
        if record.fds > 0 || record.truncated {
            self.u16(OPT_COMMENT);
            let len_at = self.block.len();
            self.u16(0);
            let start = self.block.len();
            emit_comment(&mut self.block, record.fds, record.truncated);
            let len = (self.block.len() - start) as u16;
            self.block[len_at..len_at + 2].copy_from_slice(&len.to_le_bytes());
            self.pad();
        }
        self.u16(OPT_ENDOFOPT);
        self.u16(0);
        self.finish_block()
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

    fn start_block(&mut self, ty: u32) {
        self.block.clear();
        self.u32(ty);
        self.u32(0); // total length, set by finish_block
    }

    fn finish_block(&mut self) -> io::Result<()> {
        let total = self.block.len() + 4;
        let Ok(total32) = u32::try_from(total) else {
            return Err(invalid(format!("block of {total} bytes is too long")));
        };
        self.u32(total32);
        self.block[4..8].copy_from_slice(&total32.to_le_bytes());
        self.out.write_all(&self.block)
    }

    fn u16(&mut self, v: u16) {
        self.block.extend_from_slice(&v.to_le_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.block.extend_from_slice(&v.to_le_bytes());
    }

    fn pad(&mut self) {
        self.block.resize(pad4(self.block.len()), 0);
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
        let opts = &out[28 + pad4(cap)..];
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
