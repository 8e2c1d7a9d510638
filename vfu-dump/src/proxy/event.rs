//! What the forwarders tell the recorder, and the counts the recorder keeps: the one module that
//! both sides share, so that neither imports the other.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use vfu_codec::Direction;

use super::pool::Buf;

/// Counts over the proxy's whole run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Connections accepted from clients.
    pub connections: u64,
    /// Twin sockets relayed (each is a connection of its own in the capture).
    pub twin_sockets: u64,
    /// Clients whose server connection could not be made.
    pub connect_failures: u64,
    /// Messages recorded (partial ones included).
    pub messages: u64,
    /// Bytes received from clients (all forwarded, all recorded).
    pub bytes_c2s: u64,
    /// Bytes received from servers.
    pub bytes_s2c: u64,
    /// Messages that do not decode (truncated ones included).
    pub malformed: u64,
    /// Records cut short: a stream that ended inside a message, or a piece of an oversized one.
    pub truncated: u64,
    /// Headers whose `msg_size` is more than a capture record holds (64 MiB).
    pub oversized: u64,
    /// File descriptors forwarded.
    pub fds: u64,
    /// Reads whose descriptors the kernel cut short (MSG_CTRUNC): those descriptors were lost.
    pub fds_truncated: u64,
    /// Chunks that could not be forwarded (the receiver was gone).
    pub forward_errors: u64,
    /// Messages the printer skipped because it fell behind.
    pub not_printed: u64,
    /// Bytes of bulk transfer data forwarded with `splice(2)`, never copied through the proxy (see
    /// "Bulk data" in the module documentation of `vfu_dump::proxy`).
    pub spliced: u64,
}

/// Why something is noted; counted in the [`Summary`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NoteKind {
    Info,
    ConnectFailed,
    ForwardError,
    FdsTruncated,
}

/// What forwarders tell the recorder.
pub(crate) enum RecEvent {
    /// A new connection (a capture interface).
    Open {
        conn: u32,
        name: String,
        twin_of: Option<u32>,
    },
    /// Bytes received on one direction.
    Chunk(Chunk),
    /// `len` bytes of opaque transfer data moved on one direction by `splice(2)`, not read, at `ts`;
    /// with a capture, duplicated into the tee pipe `tee`, whose read end the recorder empties.
    Elided {
        conn: u32,
        dir: Direction,
        ts: u64,
        len: u64,
        tee: Option<Arc<OwnedFd>>,
    },
    /// One direction ended.
    Eof { conn: u32, dir: Direction, ts: u64 },
    /// Something worth a line.
    Note {
        conn: u32,
        kind: NoteKind,
        text: String,
    },
    /// The connection is finished.
    Close { conn: u32 },
}

/// One read of one direction, in a pool buffer.
pub(crate) struct Chunk {
    pub(crate) conn: u32,
    pub(crate) dir: Direction,
    /// When it was read (ns since the Unix epoch).
    pub(crate) ts: u64,
    /// The pool buffer; bytes `start..start + len` were read.
    pub(crate) buf: Buf,
    pub(crate) start: usize,
    pub(crate) len: usize,
    /// Where in the chunk the message the descriptors belong to starts (0 when none starts in it).
    pub(crate) fds_at: usize,
    /// Descriptors that came with the read.
    pub(crate) nfds: u32,
}

impl Chunk {
    /// A chunk holding all of `bytes`, in a buffer of its own, with no descriptors (what the
    /// recorder feeds itself for bytes that did not come in a pool buffer).
    pub(crate) fn of_bytes(conn: u32, dir: Direction, ts: u64, bytes: Vec<u8>) -> Chunk {
        Chunk {
            conn,
            dir,
            ts,
            len: bytes.len(),
            buf: std::sync::Arc::new(bytes),
            start: 0,
            fds_at: 0,
            nfds: 0,
        }
    }
}

/// Wall-clock nanoseconds since the Unix epoch.
pub(crate) fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
