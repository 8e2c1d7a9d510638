//! The capture file as the recorder writes it, and records written in place.
//!
//! Most records are written whole through the [`PcapngWriter`]. A large transfer whose data goes
//! by splice while a capture is taken (see "Bulk data with a capture" in the module documentation
//! of [`super`]) is written in place instead: its Enhanced Packet Block is begun in the file (the
//! block's head, the exported-PDU tags, the message's first bytes as read), its data is spliced
//! into the file from the tee pipe as it comes, and the block is finished when the message is
//! whole (the padding, the options and the trailer appended; the length fields and the timestamp,
//! which only then are known, written over the head's). The bytes are those
//! [`PcapngWriter::write_record`] writes for the same message, as the tests below check.
//!
//! While a record is open in the file, every other block (other connections' records, a new
//! connection's interface) is held in memory, in order, and written after it. Should that grow
//! past [`HOLD_MAX`] (the transfer stalls while other traffic goes on), the open record is
//! taken back out of the file into memory and finished there like any other, and the held blocks
//! are written at once (see [`Spill`]).

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;

use vfu_codec::Direction;
use vfu_codec::capture::{self, Packet, pad4};

use super::splice::{drain, read_pipe};
use crate::capture::PcapngWriter;

/// The most bytes of other blocks held while a record is open in the file (see the module
/// documentation).
pub(super) const HOLD_MAX: usize = 8 << 20;

/// The bytes of an Enhanced Packet Block before its packet data: block type, total length,
/// interface, timestamp (two words), captured length, original length.
const EPB_HEAD: usize = 28;

/// What the capture writer writes into: the file, or (while a record is open in it) the blocks held
/// back until that record is finished.
pub(crate) struct CaptureOut {
    file: BufWriter<File>,
    hold: Option<Vec<u8>>,
    /// The file opened again for reading, to take an open record back ([`spill`]). Records may be
    /// written in place only when there is one: the file is then a regular file, whose offsets can
    /// be written over, that can be read back and cut back.
    reader: Option<File>,
    /// `splice` into the file works; once it has failed as unsupported, bytes from the tee pipe are
    /// read and written instead.
    splice_ok: bool,
}

impl CaptureOut {
    pub(crate) fn new(file: File) -> Self {
        use std::os::fd::AsRawFd;
        let reader = if file.metadata().is_ok_and(|m| m.file_type().is_file()) {
            // The file may have been opened for writing only.
            File::open(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()
        } else {
            None
        };
        CaptureOut {
            file: BufWriter::with_capacity(1 << 20, file),
            hold: None,
            reader,
            splice_ok: true,
        }
    }

    /// Whether records may be written in place (the file is a regular file that can be read back).
    pub(crate) fn in_place(&self) -> bool {
        self.reader.is_some()
    }

    /// Bytes held back behind the open record.
    pub(super) fn held(&self) -> usize {
        self.hold.as_ref().map_or(0, Vec::len)
    }

    /// Writes the held blocks, if any, and stops holding.
    fn release(&mut self) -> io::Result<()> {
        match self.hold.take() {
            Some(h) => self.file.write_all(&h),
            None => Ok(()),
        }
    }
}

impl Write for CaptureOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.hold {
            Some(h) => {
                h.extend_from_slice(buf);
                Ok(buf.len())
            }
            None => self.file.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.hold {
            Some(h) => {
                h.extend_from_slice(buf);
                Ok(())
            }
            None => self.file.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A record open in the file.
#[derive(Debug)]
pub(super) struct OpenRecord {
    /// The stream it belongs to (connection, client→server).
    pub(super) key: (u32, bool),
    /// Where its block starts in the file.
    at: u64,
    interface: u32,
    direction: Direction,
    /// Bytes of exported-PDU tags before the message.
    tags: usize,
    /// Bytes of the message in the file so far.
    len: usize,
    /// The most bytes of the message the record holds (the capture's snap length less the tags;
    /// `usize::MAX` without one): bytes past it are left out, as the capture writer cuts a record.
    cap: usize,
}

impl OpenRecord {
    /// Where the message's first byte is in the file.
    fn data_at(&self) -> u64 {
        self.at + (EPB_HEAD + self.tags) as u64
    }
}

/// The records written in place are vfio-user messages.
const DISSECTOR: &str = capture::DISSECTOR_VFIO_USER;

/// Begins the record of a vfio-user message on `interface` in the file: its block's head (length
/// fields and timestamp to be written over by [`finish`]), the tags, and `head`, the message's
/// first bytes. Everything written before is flushed, so the file's offsets are the block's.
pub(super) fn begin(
    w: &mut PcapngWriter<CaptureOut>,
    key: (u32, bool),
    interface: u32,
    direction: Direction,
    head: &[u8],
) -> io::Result<OpenRecord> {
    let tags = capture::pdu_tags_len(DISSECTOR);
    let cap = match w.snaplen() {
        0 => usize::MAX,
        n => (n as usize).saturating_sub(tags),
    };
    let head = &head[..head.len().min(cap)];
    let packet = Packet {
        interface,
        ts_ns: 0,
        dissector: DISSECTOR,
        direction,
        fds: 0,
        truncated: false,
        data: head,
        orig_len: head.len(),
    };
    let mut block = vec![0u8; capture::epb_len(&packet)];
    capture::write_epb(&packet, &mut block).map_err(|e| io::Error::other(e.to_string()))?;
    let out = w.get_mut();
    out.file.flush()?;
    let at = out.file.get_mut().stream_position()?;
    out.file.write_all(&block[..EPB_HEAD + tags + head.len()])?;
    out.file.flush()?;
    out.hold = Some(Vec::new());
    Ok(OpenRecord {
        key,
        at,
        interface,
        direction,
        tags,
        len: head.len(),
        cap,
    })
}

/// Appends message bytes that were read to the open record (those within its snap length).
pub(super) fn append(
    w: &mut PcapngWriter<CaptureOut>,
    open: &mut OpenRecord,
    bytes: &[u8],
) -> io::Result<()> {
    let bytes = &bytes[..bytes.len().min(open.cap - open.len)];
    w.get_mut().file.write_all(bytes)?;
    open.len += bytes.len();
    Ok(())
}

/// Moves `k` bytes from the tee pipe to the end of the open record: spliced, or (where the file
/// takes no splice) read and written; those past its snap length (the forwarder tees none) are
/// taken out of the pipe for nothing. On an error, the rest of the `k` bytes is still taken out of
/// the pipe (so that the forwarder, which waits for room in it, goes on).
pub(super) fn splice_in(
    w: &mut PcapngWriter<CaptureOut>,
    open: &mut OpenRecord,
    pipe: &OwnedFd,
    k: usize,
) -> io::Result<()> {
    use rustix::pipe::{SpliceFlags, splice};
    let past = k - k.min(open.cap - open.len);
    let k = k - past;
    let out = w.get_mut();
    if let Err(e) = out.file.flush() {
        drain(pipe, k + past);
        return Err(e);
    }
    let mut done = 0;
    while done < k && out.splice_ok {
        match splice(
            pipe,
            None,
            out.file.get_mut(),
            None,
            k - done,
            SpliceFlags::empty(),
        ) {
            Ok(0) => break,
            Ok(j) => done += j,
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => out.splice_ok = false,
            Err(e) => {
                drain(pipe, k - done + past);
                return Err(e.into());
            }
        }
    }
    open.len += done;
    if done < k {
        let bytes = read_pipe(pipe, k - done);
        out.file.write_all(&bytes)?;
        open.len += bytes.len();
    }
    drain(pipe, past);
    Ok(())
}

/// Finishes the open record of a message of `whole` bytes (so far, if `truncated`): the padding,
/// the options (`fds` descriptors; `truncated`) and the trailer after the message, then its length
/// fields (the original length `whole`, more than the captured one when the record was cut) and
/// timestamp `ts_ns` over the head's; then writes the blocks held behind it.
pub(super) fn finish(
    w: &mut PcapngWriter<CaptureOut>,
    open: OpenRecord,
    ts_ns: u64,
    fds: u32,
    truncated: bool,
    whole: usize,
) -> io::Result<()> {
    // The block of the same packet without data: its options and its length less the data's.
    let empty = Packet {
        interface: open.interface,
        ts_ns,
        dissector: DISSECTOR,
        direction: open.direction,
        fds,
        truncated,
        data: &[],
        orig_len: 0,
    };
    let mut block = vec![0u8; capture::epb_len(&empty)];
    capture::write_epb(&empty, &mut block).map_err(|e| io::Error::other(e.to_string()))?;
    let total = block.len() + pad4(open.len);
    let whole = whole.max(open.len);
    let (Ok(total32), Ok(captured), Ok(original)) = (
        u32::try_from(total),
        u32::try_from(open.tags + open.len),
        u32::try_from(open.tags + whole),
    ) else {
        return Err(io::Error::other(format!(
            "record of {} bytes is too long for a pcapng block",
            open.len
        )));
    };
    let out = w.get_mut();
    let options = &block[EPB_HEAD + open.tags..block.len() - 4];
    out.file.write_all(&[0; 3][..pad4(open.len) - open.len])?;
    out.file.write_all(options)?;
    out.file.write_all(&total32.to_le_bytes())?;
    let mut head = [0u8; 24];
    head[0..4].copy_from_slice(&total32.to_le_bytes());
    head[4..8].copy_from_slice(&open.interface.to_le_bytes());
    head[8..12].copy_from_slice(&((ts_ns >> 32) as u32).to_le_bytes());
    head[12..16].copy_from_slice(&(ts_ns as u32).to_le_bytes());
    head[16..20].copy_from_slice(&captured.to_le_bytes());
    head[20..24].copy_from_slice(&original.to_le_bytes());
    out.file.get_ref().write_all_at(&head, open.at + 4)?;
    out.release()?;
    w.count_written(open.tags + open.len, whole > open.len);
    Ok(())
}

/// Takes the open record back out of the file: its message bytes so far are read back into `buf`
/// (which holds its first ones), the file is cut back to where the block began, and the held
/// blocks are written. The message is then finished in memory like any other.
pub(super) fn spill(
    w: &mut PcapngWriter<CaptureOut>,
    open: OpenRecord,
    buf: &mut Vec<u8>,
) -> io::Result<()> {
    let out = w.get_mut();
    out.file.flush()?;
    let Some(reader) = &out.reader else {
        return Err(io::Error::other("the capture cannot be read back"));
    };
    buf.resize(open.len, 0);
    reader.read_exact_at(buf, open.data_at())?;
    let file = out.file.get_mut();
    file.set_len(open.at)?;
    file.seek(SeekFrom::Start(open.at))?;
    out.release()
}
