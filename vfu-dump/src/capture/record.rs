//! The record types every capture reader and the writer share: [`Protocol`], [`Connection`],
//! [`RecordRef`] and its owned [`Record`], and the readers' [`Meta`]. A leaf module, so that
//! `capture/mod.rs` can dispatch to the readers and writer without their importing it back.

use vfu_codec::Direction;

/// The longest block, record or reassembled message read: 64 MiB of message plus 64 KiB for headers,
/// tags and options.
pub const MAX_RECORD_LEN: usize = (64 << 20) + (64 << 10);

/// The protocol of a record or connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// vfio-user (exported-PDU dissector `vfio_user`, interface name `vfio-user:…`).
    VfioUser,
    /// VDUSE (dissector `vduse`, interface name `vduse:…`).
    Vduse,
    /// A VDUSE ioctl record (dissector `vduse_ioctl`, on a `vduse:…` interface; layout in
    /// [`ioctl`](super::ioctl)).
    VduseIoctl,
    /// Anything else: another dissector name, or a link type other than 252.
    Other,
}

impl Protocol {
    /// `"vfio-user"`, `"vduse"` or `"other"`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::VfioUser => "vfio-user",
            Protocol::Vduse => "vduse",
            Protocol::VduseIoctl => "vduse-ioctl",
            Protocol::Other => "other",
        }
    }
}

/// A connection: a pcapng interface, or a socket connection found in a sockdump capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    /// Its number: the index in [`CaptureReader::connections`](super::CaptureReader::connections), and [`RecordRef::conn`].
    pub id: u32,
    /// The interface name (`vfio-user:<n>:<socket path>`), or `interface <n>` when the IDB has none.
    pub name: String,
    /// From the name's prefix, else from the first packet's dissector name.
    pub protocol: Protocol,
}

/// One record: a whole protocol message (or the partial bytes at the end of a stream), borrowed from
/// the reader's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// The connection ([`Connection::id`]).
    pub conn: u32,
    /// Wall-clock time the message was complete, in nanoseconds since the Unix epoch (0 for raw input).
    pub ts_ns: u64,
    /// Which way the message travelled.
    pub direction: Direction,
    /// Its protocol.
    pub protocol: Protocol,
    /// How many file descriptors travelled with it (SCM_RIGHTS).
    pub fds: u32,
    /// What each of them is, in order, when the capture says (`fd=` comment words, as `vfu-dump
    /// trace -w` writes them from `/proc/PID/fd`: `/memfd:guest-ram (deleted)`,
    /// `anon_inode:[eventfd]`); at most `fds` of them, and empty when the capture has only the count.
    pub fd_kinds: &'a [String],
    /// The stream ended before the message was whole (`data` is what there was).
    pub truncated: bool,
    /// The message bytes (vfio-user: header and payload; VDUSE: one request or response), or its
    /// first bytes when the capture cut it to a snap length ([`orig_len`](Self::orig_len)).
    pub data: &'a [u8],
    /// The message's length: `data.len()`, or more when the capture holds only its first `data.len()`
    /// bytes (the record's captured length is below its original length, as a writer with a snap
    /// length leaves it; see [`RecordRef::is_cut`]).
    pub orig_len: usize,
    /// Its number among the records of the input, from 0.
    pub index: u64,
    /// File offset of the block or record that holds it (for a reassembled message, of the record
    /// holding its first byte; for raw input, of its first byte).
    pub file_offset: u64,
}

impl RecordRef<'_> {
    /// Whether the capture holds only the first bytes of the message ([`orig_len`](Self::orig_len)
    /// is more than `data.len()`). Unlike [`truncated`](Self::truncated), the message itself was
    /// whole.
    pub fn is_cut(&self) -> bool {
        self.orig_len > self.data.len()
    }

    /// An owned copy.
    pub fn to_owned(&self) -> Record {
        Record {
            conn: self.conn,
            ts_ns: self.ts_ns,
            direction: self.direction,
            protocol: self.protocol,
            fds: self.fds,
            fd_kinds: self.fd_kinds.to_vec(),
            truncated: self.truncated,
            data: self.data.to_vec(),
            orig_len: self.orig_len,
            index: self.index,
            file_offset: self.file_offset,
        }
    }
}

/// An owned [`RecordRef`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// See [`RecordRef::conn`].
    pub conn: u32,
    /// See [`RecordRef::ts_ns`].
    pub ts_ns: u64,
    /// See [`RecordRef::direction`].
    pub direction: Direction,
    /// See [`RecordRef::protocol`].
    pub protocol: Protocol,
    /// See [`RecordRef::fds`].
    pub fds: u32,
    /// See [`RecordRef::fd_kinds`].
    pub fd_kinds: Vec<String>,
    /// See [`RecordRef::truncated`].
    pub truncated: bool,
    /// See [`RecordRef::data`].
    pub data: Vec<u8>,
    /// See [`RecordRef::orig_len`].
    pub orig_len: usize,
    /// See [`RecordRef::index`].
    pub index: u64,
    /// See [`RecordRef::file_offset`].
    pub file_offset: u64,
}

impl Record {
    /// A borrowed view.
    pub fn as_ref(&self) -> RecordRef<'_> {
        RecordRef {
            conn: self.conn,
            ts_ns: self.ts_ns,
            direction: self.direction,
            protocol: self.protocol,
            fds: self.fds,
            fd_kinds: &self.fd_kinds,
            truncated: self.truncated,
            data: &self.data,
            orig_len: self.orig_len,
            index: self.index,
            file_offset: self.file_offset,
        }
    }
}

impl From<RecordRef<'_>> for Record {
    fn from(r: RecordRef<'_>) -> Record {
        r.to_owned()
    }
}

/// Where one record's data is and what it says; returned by the format readers, which keep the bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Meta {
    pub(crate) conn: u32,
    pub(crate) ts_ns: u64,
    pub(crate) direction: Direction,
    pub(crate) protocol: Protocol,
    pub(crate) fds: u32,
    pub(crate) truncated: bool,
    /// The message's length when the capture cut it (more than `len`); else `len`.
    pub(crate) orig_len: usize,
    pub(crate) file_offset: u64,
    /// The data's span in the reader's buffer (for sockdump: in stream `stream`'s buffer).
    pub(crate) start: usize,
    pub(crate) len: usize,
    pub(crate) stream: Option<usize>,
}
