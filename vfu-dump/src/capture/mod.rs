//! Reading and writing captures of vfio-user and VDUSE sessions.
//!
//! # Reading
//!
//! [`open`] (a path, `-` for standard input) or [`CaptureReader::new`] (any [`Read`]) detects the
//! format from the first bytes ([`sniff_format`]) and returns a [`CaptureReader`], whose
//! [`next_record`](CaptureReader::next_record) lends one [`RecordRef`] at a time: one whole protocol
//! message with its connection, timestamp, direction, protocol and file-descriptor count. Reading is
//! streaming and in constant memory: one read buffer is reused, so in the steady state no record
//! allocates, and a record's data borrows that buffer until the next call.
//!
//! | input | how it is recognised | records |
//! |---|---|---|
//! | pcapng (`docs/capture-format.md`) | `0a 0d 0d 0a` | one per Enhanced Packet Block |
//! | classic pcap, link type 252 | `d4 c3 b2 a1`, `a1 b2 c3 d4`, `4d 3c b2 a1`, `a1 b2 3c 4d` | one per record |
//! | classic pcap, link type 147 (sockdump) | the same magics | reassembled messages |
//! | raw byte stream of one direction | [`OpenOptions::raw`] and an unknown magic | framed by `msg_size` |
//!
//! ## pcapng: a small block parser of our own
//!
//! The pcapng reader is a block parser written here (`pcapng.rs`, under 400 lines) rather than the
//! `pcap-file` crate's `PcapNgParser`. `pcap-file` 2.0 parses every block's options into a `Vec` (an
//! allocation per message), reads through a fixed 8 MB buffer (a larger block cannot be read), and its
//! errors carry no file offset. Our parser borrows the record's data and options straight from the
//! read buffer, allocates nothing per record, bounds every length before reading it, and names the
//! block's offset in each error. `pcap-file` is still used in the tests, as an independent reader of
//! what [`PcapngWriter`] writes.
//!
//! What the pcapng reader understands:
//! - several sections, each in either byte order; connection ids run on across sections
//!   (interface 0 of the second section follows the last interface of the first);
//! - Interface Description Blocks: link type, `if_name` (the [`Connection`] name), `if_tsresol`
//!   (default 6, microseconds; powers of 2 too) and `if_tsoffset`;
//! - Enhanced Packet Blocks on link type 252: exported-PDU tags 12 (dissector name, giving the
//!   [`Protocol`]; when absent, the protocol the `if_name` prefix `vfio-user:` or `vduse:` gives) and
//!   35 (direction); `epb_flags` gives the direction when tag 35 is absent; `opt_comment` words
//!   `fds=N`, `fd=<description>` ([`RecordRef::fd_kinds`]) and `truncated`. A captured length below the original length marks
//!   the record cut ([`RecordRef::orig_len`]: a writer's snap length, not the stream's end). EPBs on
//!   other link types are returned whole as [`Protocol::Other`];
//! - all other blocks are skipped (simple and obsolete packet blocks too: they carry no direction).
//!
//! When neither tag 35 nor `epb_flags` gives a direction, [`OpenOptions::direction`] does, else
//! client-to-server.
//!
//! ## Classic pcap and sockdump
//!
//! Link type 252 records are read like EPBs, all on connection 0 (`vfio-user:0:`). Link type 147 is
//! sockdump's: each record is one `send` on an AF_UNIX socket, after a 125-byte prefix (the socket
//! path as a 109-byte Pascal string, then the big-endian peer pid and pid). The bytes of each
//! direction, keyed by (socket path, sender pid, receiver pid), are reassembled into whole vfio-user
//! messages with [`vfu_codec::frame::frame`]; a header whose `msg_size` is below 16 becomes its 16
//! header bytes, as receivers read it.
//!
//! ### sockdump heuristics
//!
//! sockdump records no connection identity and no roles, so:
//! - a connection is a distinct (socket path, pair of pids): two connections between the same two
//!   processes on the same path are taken as one;
//! - the client is found from the first whole message seen on the connection: a command other than
//!   DMA_READ/DMA_WRITE, or a reply to DMA_READ/DMA_WRITE, comes from the client; a reply to anything
//!   else, or a DMA_READ/DMA_WRITE command, comes from the server. As sessions open with the client's
//!   VERSION command, this is "the first sender is the client" whenever the capture starts with the
//!   session, and it still holds for a capture started mid-session;
//! - when both ends are the same process (pid = peer pid), the two directions cannot be told apart:
//!   their bytes form one stream, and each message's direction is guessed by the same rule;
//! - a `send` that sockdump cut short (captured length below the original) leaves a gap: the message
//!   in progress becomes a `truncated` record, the rest of it (known from its `msg_size`) is skipped,
//!   and when the gap reaches past the message, framing resumes at the next `send`;
//! - at the end of the input, each stream's leftover partial message becomes a `truncated` record.
//!
//! sockdump carries no file descriptors, so `fds` is always 0.
//!
//! ## Raw
//!
//! With [`OpenOptions::raw`] and a direction, input that is neither pcapng nor pcap is one
//! direction's vfio-user byte stream: it is framed by `msg_size`, with timestamps 0, on connection 0;
//! a partial message at the end becomes a `truncated` record.
//!
//! ## Limits and errors
//!
//! A block, record or message longer than [`MAX_RECORD_LEN`] is an error; below that, the buffer only
//! grows as bytes actually arrive, so a corrupt length never causes a large allocation. Every
//! [`CaptureError`] from the contents names the file offset. Records before an error are all
//! delivered; after an error, the reader returns `Ok(None)`.
//!
//! # Writing
//!
//! [`PcapngWriter`] writes the format of `capture-format.md`: one SHB, one IDB per connection (which
//! may be added between packets), one EPB per record.
//!
//! ```
//! use vfu_codec::Direction;
//! use vfu_dump::capture::{CaptureReader, OpenOptions, PcapngWriter, Protocol, RecordRef};
//!
//! let mut w = PcapngWriter::new(Vec::new()).unwrap();
//! let conn = w.add_connection("vfio-user:0:/run/dev.sock", Protocol::VfioUser).unwrap();
//! let mut version = [0u8; 16];
//! version[2] = 1; // command VERSION
//! version[4] = 16; // msg_size
//! w.write_record(&RecordRef {
//!     conn,
//!     ts_ns: 1_700_000_000_000_000_000,
//!     direction: Direction::ClientToServer,
//!     protocol: Protocol::VfioUser,
//!     fds: 0,
//!     fd_kinds: &[],
//!     truncated: false,
//!     data: &version,
//!     orig_len: version.len(),
//!     index: 0,
//!     file_offset: 0,
//! })
//! .unwrap();
//! let bytes = w.into_inner().unwrap();
//!
//! let mut r = CaptureReader::new(&bytes[..], &OpenOptions::default()).unwrap();
//! let rec = r.next_record().unwrap().unwrap();
//! assert_eq!(rec.data, &version);
//! assert_eq!(rec.direction, Direction::ClientToServer);
//! assert_eq!(r.connections()[0].name, "vfio-user:0:/run/dev.sock");
//! assert!(r.next_record().unwrap().is_none());
//! ```

mod atomic;
mod error;
mod input;
pub mod ioctl;
mod layout;
mod pcap;
mod pcapng;
mod raw;
mod record;
mod sockdump;
mod writer;

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use vfu_codec::Direction;

pub use atomic::AtomicFile;
pub use error::CaptureError;
pub use record::{Connection, MAX_RECORD_LEN, Protocol, Record, RecordRef};
pub use writer::{MIN_SNAPLEN, PcapngWriter, WIRESHARK_MAX_RECORD};

use input::Input;
use layout::{BT_SHB, Endian, PCAP_MAGIC_NS, PCAP_MAGIC_US};

/// The container format of an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// pcapng.
    Pcapng,
    /// Classic pcap (libpcap), either byte order, micro- or nanosecond timestamps.
    Pcap,
    /// A raw byte stream of one direction.
    Raw,
}

/// The format the first bytes of an input announce: [`Format::Pcapng`], [`Format::Pcap`], or `None`
/// (fewer than 4 bytes, or another magic). Never [`Format::Raw`]: raw input has no magic.
pub fn sniff_format(first_bytes: &[u8]) -> Option<Format> {
    if first_bytes.len() < 4 {
        return None;
    }
    let magic = Endian::Little.u32(first_bytes, 0);
    if magic == BT_SHB {
        return Some(Format::Pcapng);
    }
    [PCAP_MAGIC_US, PCAP_MAGIC_NS]
        .iter()
        .any(|&m| magic == m || magic == m.swap_bytes())
        .then_some(Format::Pcap)
}

/// How to open an input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Read input that is neither pcapng nor pcap as a raw byte stream (needs `direction`).
    pub raw: bool,
    /// The direction of raw input; for captures, the direction of records that give none.
    pub direction: Option<Direction>,
}

impl OpenOptions {
    /// Options for a raw byte stream of one direction.
    pub fn raw(direction: Direction) -> Self {
        OpenOptions {
            raw: true,
            direction: Some(direction),
        }
    }
}

enum Inner<R> {
    Pcapng(pcapng::PcapngReader<R>),
    Pcap(pcap::PcapReader<R>),
    Raw(raw::RawReader<R>),
}

/// A streaming reader of records, over a file, standard input or any [`Read`].
///
/// ```no_run
/// # fn main() -> Result<(), vfu_dump::capture::CaptureError> {
/// use std::path::Path;
/// use vfu_dump::capture::{open, OpenOptions};
///
/// let mut reader = open(Path::new("corpus/lvu-sample-client.pcapng"), &OpenOptions::default())?;
/// while let Some(rec) = reader.next_record()? {
///     println!("{} {} {} bytes", rec.conn, rec.direction.short(), rec.data.len());
/// }
/// # Ok(()) }
/// ```
pub struct CaptureReader<R = Box<dyn Read + Send>> {
    inner: Inner<R>,
    format: Format,
    next_index: u64,
    done: bool,
}

/// Opens a capture: `path` is a file, or `-` for standard input. See [`CaptureReader::new`]; the
/// difference is that the reading runs ahead on a thread of its own, overlapping the parsing.
pub fn open(path: &Path, opts: &OpenOptions) -> Result<CaptureReader, CaptureError> {
    let reader: Box<dyn Read + Send> = if path.as_os_str() == "-" {
        Box::new(io::stdin())
    } else {
        let open_error = |source| CaptureError::Open {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(open_error)?;
        // A directory opens, and fails at the first read: say so before.
        if file.metadata().is_ok_and(|m| m.is_dir()) {
            return Err(open_error(io::Error::new(
                io::ErrorKind::IsADirectory,
                "is a directory",
            )));
        }
        Box::new(file)
    };
    CaptureReader::from_input(Input::read_ahead(reader), opts)
}

impl<R: Read> CaptureReader<R> {
    /// Reads the first bytes of `reader` and picks the format: pcapng, pcap, or (with
    /// [`OpenOptions::raw`]) a raw stream. Anything else is [`CaptureError::UnknownFormat`]. A pcap or
    /// pcapng magic is recognised even when `raw` is set.
    pub fn new(reader: R, opts: &OpenOptions) -> Result<Self, CaptureError> {
        Self::from_input(Input::new(reader), opts)
    }

    fn from_input(mut input: Input<R>, opts: &OpenOptions) -> Result<Self, CaptureError> {
        let have = input.fill(4).map_err(|e| CaptureError::io(0, e))?;
        let head = input.data();
        let fallback = opts.direction.unwrap_or(Direction::ClientToServer);
        let (inner, format) = match sniff_format(head) {
            Some(Format::Pcapng) => (
                Inner::Pcapng(pcapng::PcapngReader::new(input, fallback)),
                Format::Pcapng,
            ),
            Some(Format::Pcap) => (
                Inner::Pcap(pcap::PcapReader::new(input, fallback)?),
                Format::Pcap,
            ),
            _ if opts.raw => {
                let direction = opts.direction.ok_or(CaptureError::RawNeedsDirection)?;
                (
                    Inner::Raw(raw::RawReader::new(input, direction)),
                    Format::Raw,
                )
            }
            _ => {
                let mut first_bytes = [0u8; 4];
                first_bytes[..have].copy_from_slice(&head[..have]);
                return Err(CaptureError::UnknownFormat {
                    first_bytes,
                    len: have,
                });
            }
        };
        Ok(CaptureReader {
            inner,
            format,
            next_index: 0,
            done: false,
        })
    }

    /// The next record, `Ok(None)` at the end of the input. The record borrows the reader's buffer
    /// until the next call. After an error, every later call returns `Ok(None)`.
    ///
    /// Inlined into its caller (the dispatch only; the format readers are not), so that a caller
    /// that turns the record into its own (the pipeline's file source) copies its fields once, not
    /// out of a returned `Result` first: 3 % of `read --stats`'s instructions (BENCHMARKS.md).
    #[inline(always)]
    pub fn next_record(&mut self) -> Result<Option<RecordRef<'_>>, CaptureError> {
        if self.done {
            return Ok(None);
        }
        let next = match &mut self.inner {
            Inner::Pcapng(r) => r.advance(),
            Inner::Pcap(r) => r.advance(),
            Inner::Raw(r) => r.advance(),
        };
        let meta = match next {
            Ok(Some(m)) => m,
            Ok(None) => {
                self.done = true;
                return Ok(None);
            }
            Err(e) => {
                self.done = true;
                return Err(e);
            }
        };
        let index = self.next_index;
        self.next_index += 1;
        let (data, fd_kinds): (_, &[String]) = match &self.inner {
            Inner::Pcapng(r) => (r.data(&meta), r.fd_kinds()),
            Inner::Pcap(r) => (r.data(&meta), &[]),
            Inner::Raw(r) => (r.data(&meta), &[]),
        };
        Ok(Some(RecordRef {
            conn: meta.conn,
            ts_ns: meta.ts_ns,
            direction: meta.direction,
            protocol: meta.protocol,
            fds: meta.fds,
            fd_kinds,
            truncated: meta.truncated,
            orig_len: meta.orig_len.max(data.len()),
            data,
            index,
            file_offset: meta.file_offset,
        }))
    }

    /// The connections seen so far: a connection is known before its first record is returned, and
    /// captures may add connections as they go (pcapng IDBs between packets, sockdump connections as
    /// they first send).
    pub fn connections(&self) -> &[Connection] {
        match &self.inner {
            Inner::Pcapng(r) => r.connections(),
            Inner::Pcap(r) => r.connections(),
            Inner::Raw(r) => r.connections(),
        }
    }

    /// The input's container format.
    pub fn format(&self) -> Format {
        self.format
    }
}

/// The copy of a reader's connections that [`PcapngWriter`] takes when converting (here, beside
/// the reader, so that the writer needs nothing of it).
impl<W: io::Write> PcapngWriter<W> {
    /// Adds the connections `reader` has found that this writer does not have yet, in order, so that
    /// reader connection ids are writer interface ids. Call it before each
    /// [`write_record`](Self::write_record) when converting: readers find connections as they go.
    pub fn copy_connections_from<R: Read>(&mut self, reader: &CaptureReader<R>) -> io::Result<()> {
        let have = self.connections().len();
        for c in reader.connections().iter().skip(have) {
            self.add_connection(&c.name, c.protocol)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniff() {
        assert_eq!(
            sniff_format(&[0x0a, 0x0d, 0x0d, 0x0a, 0]),
            Some(Format::Pcapng)
        );
        assert_eq!(sniff_format(&[0xd4, 0xc3, 0xb2, 0xa1]), Some(Format::Pcap));
        assert_eq!(sniff_format(&[0xa1, 0xb2, 0xc3, 0xd4]), Some(Format::Pcap));
        assert_eq!(sniff_format(&[0x4d, 0x3c, 0xb2, 0xa1]), Some(Format::Pcap));
        assert_eq!(sniff_format(&[0xa1, 0xb2, 0x3c, 0x4d]), Some(Format::Pcap));
        assert_eq!(sniff_format(&[0x0a, 0x0d, 0x0d]), None);
        assert_eq!(sniff_format(&[1, 0, 1, 0]), None);
    }

    #[test]
    fn unknown_magic_without_raw() {
        let bytes = [0x01u8, 0x00, 0x01, 0x00, 0x10, 0, 0, 0];
        let Err(err) = CaptureReader::new(&bytes[..], &OpenOptions::default()) else {
            panic!("accepted");
        };
        let s = err.to_string();
        assert!(s.contains("01 00 01 00") && s.contains("--raw"), "{s}");
        let Err(err) = CaptureReader::new(
            &bytes[..],
            &OpenOptions {
                raw: true,
                direction: None,
            },
        ) else {
            panic!("accepted");
        };
        assert!(matches!(err, CaptureError::RawNeedsDirection));
        let Err(err) = CaptureReader::new(&[][..], &OpenOptions::default()) else {
            panic!("accepted");
        };
        assert!(matches!(err, CaptureError::UnknownFormat { len: 0, .. }));
    }

    #[test]
    fn record_round_trips_through_owned() {
        let data = [1u8, 2, 3];
        let r = RecordRef {
            conn: 2,
            ts_ns: 9,
            direction: Direction::ServerToClient,
            protocol: Protocol::Vduse,
            fds: 1,
            fd_kinds: &[],
            truncated: true,
            data: &data,
            orig_len: 7,
            index: 4,
            file_offset: 5,
        };
        let owned = r.to_owned();
        assert_eq!(owned.as_ref(), r);
        assert_eq!(Record::from(r), owned);
    }
}
