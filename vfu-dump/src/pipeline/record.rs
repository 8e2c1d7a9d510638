//! What a source hands the pipeline: [`Record`]s (one message each) and [`Event`]s.

use vfu_codec::Direction;

use crate::capture::{Protocol, RecordRef};

/// One message, from whichever source: a capture file's record, a message the proxy forwarded, one
/// the live peer of a replay sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Connection number (a capture's interface; numbered on across files).
    pub conn: u32,
    /// Message number in the run (0-based, every connection counted together).
    pub index: u64,
    /// Wall-clock time in nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// Which way it travelled (VDUSE: kernel to daemon is client to server).
    pub direction: Direction,
    /// Which protocol it is.
    pub protocol: Protocol,
    /// How many file descriptors travelled with it.
    pub fds: u32,
    /// What each descriptor is, when the source knows (`memfd:guest-ram`, `anon_inode:[eventfd]`, as
    /// `/proc/PID/fd` names them); empty when it does not (the proxy; a capture that records only the
    /// count).
    pub fd_kinds: &'a [String],
    /// The stream ended inside this message: `data` is what there was.
    pub truncated: bool,
    /// The message, or its first bytes when a capture cut it ([`orig_len`](Self::orig_len)).
    pub data: &'a [u8],
    /// The message's length: `data.len()`, or more when the capture that was read holds only its
    /// first `data.len()` bytes (a snap length). The pipeline decodes, validates and counts such
    /// a message at its whole length and shows it as cut.
    pub orig_len: usize,
}

impl<'a> Record<'a> {
    /// The record as a capture holds it, on connection `conn` of the capture.
    pub fn to_capture(&self, conn: u32) -> RecordRef<'a> {
        RecordRef {
            conn,
            ts_ns: self.ts_ns,
            direction: self.direction,
            protocol: self.protocol,
            fds: self.fds,
            fd_kinds: self.fd_kinds,
            truncated: self.truncated,
            data: self.data,
            orig_len: self.orig_len,
            index: self.index,
            file_offset: 0,
        }
    }
}

impl<'a> From<RecordRef<'a>> for Record<'a> {
    fn from(r: RecordRef<'a>) -> Self {
        Record {
            conn: r.conn,
            index: r.index,
            ts_ns: r.ts_ns,
            direction: r.direction,
            protocol: r.protocol,
            fds: r.fds,
            fd_kinds: r.fd_kinds,
            truncated: r.truncated,
            data: r.data,
            orig_len: r.orig_len,
        }
    }
}

/// What a source says besides messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A connection begins: its number, its name (a capture's `if_name`, `vfio-user:0:/run/dev.sock`)
    /// and protocol, and for a twin socket the connection it belongs to. Comes before the
    /// connection's first record.
    Open {
        /// Its number.
        conn: u32,
        /// Its name.
        name: &'a str,
        /// Its protocol.
        protocol: Protocol,
        /// The main connection, for a twin socket.
        twin_of: Option<u32>,
    },
    /// A connection ended after this many messages.
    Close {
        /// Its number.
        conn: u32,
        /// Messages it carried.
        messages: u64,
    },
    /// Something worth a line, about one connection or (`None`) the whole run.
    Note {
        /// The connection concerned.
        conn: Option<u32>,
        /// What to say.
        text: &'a str,
    },
    /// The source's closing counts: a text line and the same as named numbers (for JSON).
    Summary {
        /// The line.
        text: &'a str,
        /// The counts.
        fields: &'a [(&'a str, u64)],
    },
    /// One input (a capture file) ended; the next record comes from the next one.
    EndOfInput,
}
