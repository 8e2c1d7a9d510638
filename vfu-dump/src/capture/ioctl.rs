//! The VDUSE ioctl record (`docs/capture-format.md`, "VDUSE ioctl records"): one `ioctl(2)` a VDUSE
//! daemon made on `/dev/vduse/control` or `/dev/vduse/NAME`, with its argument as it went in and as
//! the kernel left it, and its result.
//!
//! ```text
//! offset size
//!      0    4  request number (u32, little-endian), e.g. 0x40088101 VDUSE_SET_API_VERSION
//!      4    4  result (i32, little-endian): the return value, or -errno
//!      8    4  arg_len (u32, little-endian): bytes of each argument copy below
//!     12    2  flags (u16, little-endian): bit 0 the argument before the call follows,
//!              bit 1 the argument after the call follows; other bits 0
//!     14    2  reserved, 0
//!     16       the argument before the call (arg_len bytes, when flags bit 0)
//!              the argument after the call (arg_len bytes, when flags bit 1)
//! ```
//!
//! The argument bytes are the kernel's own (`<linux/vduse.h>` structs, native-endian, as the codec's
//! VDUSE types read them). For `VDUSE_CREATE_DEV` and `VDUSE_DEV_SET_CONFIG` the argument includes its
//! variable tail (the `config_size` or `length` bytes after the fixed part).

use std::fmt;

use vfu_codec::vduse::VDUSE_IOCTLS;
use vfu_codec::wire::{FlagSpec, Named, Show, named};
use zerocopy::little_endian::{I32, U16, U32};

/// Size of the fixed head.
pub const IOCTL_HEAD: usize = 16;
/// Flags bit 0: the argument as it went in follows the head.
pub const IOCTL_IN: u16 = 1;
/// Flags bit 1: the argument as the kernel left it follows.
pub const IOCTL_OUT: u16 = 2;

/// The names of the VDUSE ioctl numbers, from the codec's table.
pub const IOCTL_NAMES: [Named; VDUSE_IOCTLS.len()] = {
    let mut t = [named(0, ""); VDUSE_IOCTLS.len()];
    let mut i = 0;
    while i < t.len() {
        t[i] = named(VDUSE_IOCTLS[i].number as u64, VDUSE_IOCTLS[i].name);
        i += 1;
    }
    t
};

/// The parts of the head's `flags`.
pub const IOCTL_RECORD_FLAGS: &[FlagSpec] = &[
    FlagSpec::bit(IOCTL_IN as u64, "IN"),
    FlagSpec::bit(IOCTL_OUT as u64, "OUT"),
];

vfu_codec::wire_struct! {
    /// The head of a VDUSE ioctl record, for tools generated from field tables (the Wireshark
    /// dissector). [`IoctlRecord::parse`] reads the same bytes.
    pub struct IoctlRecordHead("vfu capture format (docs/capture-format.md): VDUSE ioctl record head", size 16) {
        /// The ioctl request number.
        request: U32 = Show::Enum(&IOCTL_NAMES),
        /// The return value, or -errno.
        result: I32 = Show::Dec,
        /// Bytes in each copy of the argument.
        arg_len: U32 = Show::Dec,
        /// IN 1: the argument before the call follows; OUT 2: the argument after it.
        flags: U16 = Show::Flags(IOCTL_RECORD_FLAGS),
        /// Zero.
        reserved: U16 = Show::Reserved,
    }
}

/// A parsed ioctl record, borrowing the record's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoctlRecord<'a> {
    /// The request number.
    pub request: u32,
    /// The return value, or `-errno`.
    pub result: i32,
    /// The argument before the call, when recorded.
    pub arg_in: Option<&'a [u8]>,
    /// The argument after the call, when recorded.
    pub arg_out: Option<&'a [u8]>,
}

/// Why ioctl record bytes do not parse: the byte offset and the rule broken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IoctlRecordError {
    /// Byte offset in the record.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for IoctlRecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at offset {:#x}", self.message, self.offset)
    }
}

impl std::error::Error for IoctlRecordError {}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl<'a> IoctlRecord<'a> {
    /// Parses a record; every length is checked against the bytes present.
    pub fn parse(b: &'a [u8]) -> Result<Self, IoctlRecordError> {
        if b.len() < IOCTL_HEAD {
            return Err(IoctlRecordError {
                offset: b.len(),
                message: format!(
                    "ioctl record of {} bytes is shorter than its {IOCTL_HEAD}-byte head",
                    b.len()
                ),
            });
        }
        let arg_len = le32(b, 8) as usize;
        let flags = u16::from_le_bytes([b[12], b[13]]);
        if flags & !(IOCTL_IN | IOCTL_OUT) != 0 || b[14] != 0 || b[15] != 0 {
            return Err(IoctlRecordError {
                offset: 12,
                message: format!("ioctl record flags {flags:#x} or reserved bytes are not defined"),
            });
        }
        let copies = usize::from(flags & IOCTL_IN != 0) + usize::from(flags & IOCTL_OUT != 0);
        let want = arg_len
            .checked_mul(copies)
            .and_then(|n| n.checked_add(IOCTL_HEAD));
        if want != Some(b.len()) {
            return Err(IoctlRecordError {
                offset: 8,
                message: format!(
                    "ioctl record arg_len {arg_len} with {copies} copies does not match its {} bytes",
                    b.len()
                ),
            });
        }
        let mut at = IOCTL_HEAD;
        let mut take = |present: bool| {
            present.then(|| {
                let s = &b[at..at + arg_len];
                at += arg_len;
                s
            })
        };
        let arg_in = take(flags & IOCTL_IN != 0);
        let arg_out = take(flags & IOCTL_OUT != 0);
        Ok(IoctlRecord {
            request: le32(b, 0),
            result: le32(b, 4) as i32,
            arg_in,
            arg_out,
        })
    }

    /// Appends the record's bytes to `out`. `arg_in` and `arg_out`, when both given, must have the
    /// same length (the shorter is zero-padded).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let len = self
            .arg_in
            .map_or(0, <[u8]>::len)
            .max(self.arg_out.map_or(0, <[u8]>::len));
        let flags = if self.arg_in.is_some() { IOCTL_IN } else { 0 }
            | if self.arg_out.is_some() { IOCTL_OUT } else { 0 };
        out.extend_from_slice(&self.request.to_le_bytes());
        out.extend_from_slice(&self.result.to_le_bytes());
        out.extend_from_slice(&(len as u32).to_le_bytes());
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        for a in [self.arg_in, self.arg_out].into_iter().flatten() {
            out.extend_from_slice(a);
            out.resize(out.len() + len - a.len(), 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors_name_offsets() {
        let rec = IoctlRecord {
            request: 0xc030_8115,
            result: 0,
            arg_in: Some(&[1, 2, 3]),
            arg_out: Some(&[4, 5, 6]),
        };
        let mut b = Vec::new();
        rec.encode(&mut b);
        assert_eq!(b.len(), 22);
        assert_eq!(IoctlRecord::parse(&b).unwrap(), rec);
        let none = IoctlRecord {
            request: 0x8113,
            result: -22,
            arg_in: None,
            arg_out: None,
        };
        let mut b2 = Vec::new();
        none.encode(&mut b2);
        assert_eq!(IoctlRecord::parse(&b2).unwrap(), none);
        assert_eq!(IoctlRecord::parse(&b[..10]).unwrap_err().offset, 10);
        assert_eq!(IoctlRecord::parse(&b[..21]).unwrap_err().offset, 8);
        let mut bad = b.clone();
        bad[12] = 4;
        assert_eq!(IoctlRecord::parse(&bad).unwrap_err().offset, 12);
        let mut huge = b2.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        huge[12] = 3;
        assert!(IoctlRecord::parse(&huge).is_err());
    }

    #[test]
    fn ioctl_records_round_trip_through_a_capture() {
        use crate::capture::{CaptureReader, OpenOptions, PcapngWriter, Protocol, RecordRef};
        use vfu_codec::Direction;
        let mut data = Vec::new();
        IoctlRecord {
            request: 0x8008_8100,
            result: 0,
            arg_in: None,
            arg_out: Some(&[0; 8]),
        }
        .encode(&mut data);
        let mut w = PcapngWriter::new(Vec::new()).unwrap();
        let c = w
            .add_connection("vduse:0:/dev/vduse/control", Protocol::Vduse)
            .unwrap();
        let rec = RecordRef {
            conn: c,
            ts_ns: 7,
            direction: Direction::ServerToClient,
            protocol: Protocol::VduseIoctl,
            fds: 1,
            fd_kinds: &[],
            truncated: false,
            data: &data,
            orig_len: data.len(),
            index: 0,
            file_offset: 0,
        };
        w.write_record(&rec).unwrap();
        let bytes = w.into_inner().unwrap();
        let mut r = CaptureReader::new(&bytes[..], &OpenOptions::default()).unwrap();
        let got = r.next_record().unwrap().unwrap();
        assert_eq!(
            (got.protocol, got.data, got.fds, got.direction),
            (
                Protocol::VduseIoctl,
                &data[..],
                1,
                Direction::ServerToClient
            )
        );
        assert_eq!(r.connections()[0].protocol, Protocol::Vduse);
    }
}
