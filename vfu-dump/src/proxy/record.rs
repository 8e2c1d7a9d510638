//! The recorder thread: frames each direction into whole messages, writes the capture, counts, and
//! offers each message to the printer.

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use vfu_codec::frame::{Frame, frame, msg_size};
use vfu_codec::{Direction, HEADER_SIZE};

use super::event::{Chunk, NoteKind, RecEvent, Summary, now_ns};
use super::inplace::{self, CaptureOut, HOLD_MAX, OpenRecord};
use super::pad::ZeroPad;
use super::pool::Pool;
use super::print::{self, Item, PMsg};
use super::splice::{drain, read_pipe, read_pipe_into};
use crate::capture::{PcapngWriter, Protocol, RecordRef};

/// The most bytes one capture record holds (the capture readers' limit is 64 MiB of message plus
/// room for headers). A message declaring more is recorded in pieces of this size, each marked
/// `truncated`, so that every byte still reaches the capture.
pub(crate) const MAX_MSG: usize = 64 << 20;

/// How long the recorder pauses after a busy turn, so that under load it takes messages in batches
/// instead of being woken for each.
const BATCH_PAUSE: Duration = Duration::from_micros(200);

/// How often the capture is flushed while traffic flows (it is also flushed whenever traffic stops).
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// A direction's message in progress.
#[derive(Default)]
struct Stream {
    /// Its bytes so far (up to the first span that went by unread).
    buf: Vec<u8>,
    /// A span of its transfer data went by unread (spliced): from there on its bytes are counted in
    /// `absent`, not stored, whether or not they were read (see [`super::pad`]).
    unread: bool,
    /// Bytes after `buf` that count as zeros.
    absent: usize,
    /// Its descriptors so far.
    fds: u32,
    /// Body bytes still to come, once the header is whole.
    remaining: Option<u64>,
    /// An oversized message of which pieces were already recorded.
    piece: bool,
    /// Its record is open in the capture file ([`Sinks::open`]): its bytes after `buf` go to the
    /// file as they come, and count in `absent` (see [`super::inplace`]).
    in_file: bool,
}

/// Where records go.
struct Sinks {
    capture: Option<PcapngWriter<CaptureOut>>,
    capture_error: Option<io::Error>,
    /// The record being written in place, if one is.
    open: Option<OpenRecord>,
    /// How many bytes of other blocks may wait behind it ([`HOLD_MAX`]; less in tests).
    hold_max: usize,
    /// Records written in place (and finished there).
    in_place: u64,
    /// Capture interface of each connection.
    iface: HashMap<u32, u32>,
    printq: Option<(Arc<print::Queue>, bool)>,
    summary: Summary,
    per_conn: HashMap<u32, u64>,
    index: u64,
    /// Lays out messages with spliced data whole, for the capture and the malformed count.
    pad: ZeroPad,
}

impl Sinks {
    /// Records one message: capture, counts, and a copy offered to the printer.
    fn emit(&mut self, conn: u32, dir: Direction, ts: u64, fds: u32, truncated: bool, data: &[u8]) {
        let m = self.record(conn, dir, ts, fds, truncated, data, false);
        if let (Some(m), Some((q, true))) = (m, &self.printq)
            && !q.push_msg(m, data)
        {
            self.summary.not_printed += 1;
        }
    }

    /// As [`emit`](Self::emit), for the message (or piece) held by a stream: its bytes in `s.buf`,
    /// followed by `s.absent` that went by unread (zeros), with `s.fds` descriptors. The printer gets
    /// the buffer itself (and `s.buf` an empty one), not a copy.
    fn emit_held(&mut self, conn: u32, dir: Direction, ts: u64, truncated: bool, s: &mut Stream) {
        let (fds, absent) = (s.fds, s.absent);
        // A record written in place is finished in the file; the rest is as for any other.
        let written = std::mem::take(&mut s.in_file);
        if written && let Some(open) = self.open.take() {
            self.finish(open, ts, fds, truncated, s.len());
            self.in_place += 1;
        }
        let m = if absent == 0 {
            self.record(conn, dir, ts, fds, truncated, &s.buf, written)
        } else {
            let mut pad = std::mem::take(&mut self.pad);
            let m = self.record(
                conn,
                dir,
                ts,
                fds,
                truncated,
                pad.with(&s.buf, absent),
                written,
            );
            self.pad = pad;
            m.map(|m| PMsg { absent, ..m })
        };
        if let (Some(m), Some((q, true))) = (m, &self.printq)
            && !q.push_owned(m, &mut s.buf)
        {
            self.summary.not_printed += 1;
        }
    }

    /// Writes the capture record (unless it was `written` in place already) and counts; returns
    /// the printer's message head when it wants one.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        conn: u32,
        dir: Direction,
        ts: u64,
        fds: u32,
        truncated: bool,
        data: &[u8],
        written: bool,
    ) -> Option<PMsg> {
        let index = self.index;
        self.index += 1;
        let rec = RecordRef {
            conn: self.iface.get(&conn).copied().unwrap_or(conn),
            ts_ns: ts,
            direction: dir,
            protocol: Protocol::VfioUser,
            fds,
            fd_kinds: &[],
            truncated,
            data,
            orig_len: data.len(),
            index,
            file_offset: 0,
        };
        if !written
            && let Some(w) = &mut self.capture
            && let Err(e) = w.write_record(&rec)
        {
            self.capture_failed(e);
        }
        let s = &mut self.summary;
        s.messages += 1;
        s.fds += u64::from(fds);
        s.truncated += u64::from(truncated);
        if truncated || vfu_codec::decode(data, dir).is_err() {
            s.malformed += 1;
        }
        *self.per_conn.entry(conn).or_default() += 1;
        matches!(self.printq, Some((_, true))).then(|| PMsg {
            index,
            conn,
            dir,
            ts,
            fds,
            truncated,
            data: Vec::new(),
            absent: 0,
        })
    }

    fn note(&mut self, conn: u32, text: String) {
        if let Some((q, _)) = &self.printq {
            q.push(Item::Note { conn, text });
        }
    }

    fn capture_failed(&mut self, e: io::Error) {
        if self.capture_error.is_none() {
            self.note(u32::MAX, format!("writing the capture failed: {e}; no more records are written (forwarding goes on)"));
            self.capture_error = Some(e);
        }
        self.capture = None;
        self.open = None;
    }

    /// Whether the message held by `s` may be written in place from now on: there is a capture
    /// file that allows it, no other record is open in it, and the message is one record (at most
    /// [`MAX_MSG`]) of which nothing went by unread.
    fn can_begin(&self, s: &Stream) -> bool {
        self.open.is_none()
            && self
                .capture
                .as_ref()
                .is_some_and(|w| w.get_ref().in_place())
            && !s.piece
            && !s.unread
            && s.buf.len() >= HEADER_SIZE
            && s.remaining
                .is_some_and(|r| r.saturating_add(s.buf.len() as u64) <= MAX_MSG as u64)
    }

    /// Begins the record of the message held by `s` in the file.
    fn begin(&mut self, key: (u32, bool), conn: u32, dir: Direction, s: &mut Stream) {
        let interface = self.iface.get(&conn).copied().unwrap_or(conn);
        let Some(w) = &mut self.capture else { return };
        match inplace::begin(w, key, interface, dir, &s.buf) {
            Ok(open) => {
                self.open = Some(open);
                s.in_file = true;
                s.unread = true;
            }
            Err(e) => self.capture_failed(e),
        }
    }

    /// Moves `k` bytes of the message written in place from the tee pipe into the file.
    fn splice_in(&mut self, pipe: &OwnedFd, k: usize) {
        let (Some(w), Some(open)) = (&mut self.capture, &mut self.open) else {
            drain(pipe, k);
            return;
        };
        if let Err(e) = inplace::splice_in(w, open, pipe, k) {
            self.capture_failed(e);
        }
    }

    /// Appends read bytes of the message written in place.
    fn append(&mut self, bytes: &[u8]) {
        let (Some(w), Some(open)) = (&mut self.capture, &mut self.open) else {
            return;
        };
        if let Err(e) = inplace::append(w, open, bytes) {
            self.capture_failed(e);
        }
    }

    fn finish(&mut self, open: OpenRecord, ts: u64, fds: u32, truncated: bool, whole: usize) {
        let Some(w) = &mut self.capture else { return };
        if let Err(e) = inplace::finish(w, open, ts, fds, truncated, whole) {
            self.capture_failed(e);
        }
    }

    fn flush(&mut self) {
        if let Some(w) = &mut self.capture
            && let Err(e) = w.flush()
        {
            self.capture_failed(e);
        }
    }
}

fn side(dir: Direction) -> &'static str {
    match dir {
        Direction::ClientToServer => "client→server",
        Direction::ServerToClient => "server→client",
    }
}

impl Stream {
    /// Frames one chunk, recording each message as it completes. The `nfds` descriptors go to the
    /// message that holds the chunk's byte `fds_at`.
    fn feed(&mut self, out: &mut Sinks, c: &Chunk) {
        let (conn, dir, ts, fds_at) = (c.conn, c.dir, c.ts, c.fds_at);
        let data = &c.buf[c.start..c.start + c.len];
        let nfds = c.nfds;
        let mut pending = nfds;
        let mut take_fds = |a: usize, b: usize| -> u32 {
            if pending > 0 && a <= fds_at && fds_at < b {
                std::mem::take(&mut pending)
            } else {
                0
            }
        };
        let mut pos = 0;
        while pos < data.len() {
            if self.buf.is_empty() && self.remaining.is_none() {
                // Fast path: a whole message in the chunk, recorded straight from it.
                match frame(&data[pos..]) {
                    Frame::Complete { message, .. } if message.len() <= MAX_MSG => {
                        let f = take_fds(pos, pos + message.len());
                        out.emit(conn, dir, ts, f, false, message);
                        pos += message.len();
                        continue;
                    }
                    Frame::BadSize { header, .. } => {
                        let f = take_fds(pos, pos + header.len());
                        out.emit(conn, dir, ts, f, false, header);
                        pos += header.len();
                        continue;
                    }
                    _ => {}
                }
            }
            if self.remaining.is_none() {
                let k = (HEADER_SIZE - self.buf.len()).min(data.len() - pos);
                self.fds += take_fds(pos, pos + k);
                self.buf.extend_from_slice(&data[pos..pos + k]);
                pos += k;
                if self.buf.len() < HEADER_SIZE {
                    break;
                }
                let size = u64::from(msg_size(&self.buf).unwrap_or(0));
                if size < HEADER_SIZE as u64 {
                    out.emit_held(conn, dir, ts, false, self);
                    self.reset();
                    continue;
                }
                if size > MAX_MSG as u64 {
                    out.summary.oversized += 1;
                    out.note(
                        conn,
                        format!(
                            "{}: a header declares msg_size {size} ({:.1} MiB), more than a capture record holds; \
                             forwarded as it comes, recorded in pieces of 64 MiB marked truncated",
                            side(dir),
                            size as f64 / f64::from(1u32 << 20)
                        ),
                    );
                }
                self.remaining = Some(size - HEADER_SIZE as u64);
            }
            let r = self.remaining.unwrap_or(0);
            let k = r
                .min((data.len() - pos) as u64)
                .min((MAX_MSG - self.len()) as u64) as usize;
            self.fds += take_fds(pos, pos + k);
            if self.in_file {
                out.append(&data[pos..pos + k]);
                self.absent += k;
            } else if self.unread {
                self.absent += k;
            } else {
                self.buf.extend_from_slice(&data[pos..pos + k]);
            }
            pos += k;
            self.body_added(out, conn, dir, ts, r - k as u64);
        }
        // Descriptors with no byte to go with (cannot happen on a stream socket): the message in
        // progress, or none.
        self.fds += pending;
    }

    /// `len` bytes of the current message's opaque data went by unread (spliced): they count as zeros,
    /// and so does the rest of the message (see [`Stream::absent`]), without being stored. The
    /// forwarder frames the stream as this does, so they lie inside the message's body; should they
    /// not, they are zeros of whatever comes, and the stream still ends where the bytes did.
    fn elide(&mut self, out: &mut Sinks, conn: u32, dir: Direction, ts: u64, len: u64) {
        let mut left = len;
        while left > 0 {
            let r = self.remaining.unwrap_or(0);
            if self.remaining.is_none() || r == 0 {
                // Not inside a message body: feed zeros the ordinary way (a header of zeros is a
                // msg_size-0 message, as the bytes would have been had they been read).
                let k = left.min(HEADER_SIZE as u64) as usize;
                let c = Chunk::of_bytes(conn, dir, ts, vec![0; k]);
                self.feed(out, &c);
                left -= k as u64;
                continue;
            }
            let k = r.min(left).min((MAX_MSG - self.len()) as u64) as usize;
            self.unread = true;
            self.absent += k;
            left -= k as u64;
            self.body_added(out, conn, dir, ts, r - k as u64);
        }
    }

    /// `len` bytes of the current message's opaque data went by splice and wait in the tee pipe
    /// `pipe` (see "Bulk data with a capture" in the module documentation of [`super`]): they go
    /// into the capture file in place when the message's record may be written there (the
    /// message's first such bytes begin its record), else they are read into the message like any
    /// read bytes (or, without a capture, taken out of the pipe and counted as zeros).
    #[allow(clippy::too_many_arguments)]
    fn teed(
        &mut self,
        out: &mut Sinks,
        key: (u32, bool),
        conn: u32,
        dir: Direction,
        ts: u64,
        len: u64,
        pipe: &OwnedFd,
    ) {
        let mut left = len;
        while left > 0 {
            let r = self.remaining.unwrap_or(0);
            if self.remaining.is_none() || r == 0 {
                // Not inside a message body (the forwarder frames the stream as this does, so this
                // cannot happen): the bytes are framed as read ones.
                let k = left.min(64 << 10) as usize;
                let c = Chunk::of_bytes(conn, dir, ts, read_pipe(pipe, k));
                self.feed(out, &c);
                left -= k as u64;
                continue;
            }
            let k = r.min(left).min((MAX_MSG - self.len()) as u64) as usize;
            if !self.in_file && out.can_begin(self) {
                out.begin(key, conn, dir, self);
            }
            if self.in_file {
                out.splice_in(pipe, k);
                self.absent += k;
            } else if out.capture.is_some() && !self.unread {
                read_pipe_into(pipe, k, &mut self.buf);
            } else {
                drain(pipe, k);
                self.unread = true;
                self.absent += k;
            }
            left -= k as u64;
            self.body_added(out, conn, dir, ts, r - k as u64);
        }
    }

    /// The record of this message, open in the file, is taken back into memory (see
    /// [`inplace::spill`]): its bytes are in `buf` again and it goes on as a message that is read.
    fn spill(&mut self, out: &mut Sinks) {
        if !self.in_file {
            return;
        }
        self.in_file = false;
        let (Some(w), Some(open)) = (&mut out.capture, out.open.take()) else {
            return;
        };
        let head = self.buf.len();
        let whole = self.len();
        match inplace::spill(w, open, &mut self.buf) {
            Ok(()) => {
                // What the record left out past a snap length counts as zeros, cut again when
                // the record is written.
                self.absent = whole - self.buf.len();
                self.unread = self.absent > 0;
            }
            Err(e) => {
                self.buf.truncate(head);
                out.capture_failed(e);
            }
        }
    }

    /// Body bytes were added to the message in progress, `left` of them are still to come: record
    /// the message when it is whole, or a piece of it when it has reached the most a record holds.
    fn body_added(&mut self, out: &mut Sinks, conn: u32, dir: Direction, ts: u64, left: u64) {
        self.remaining = Some(left);
        if left == 0 {
            out.emit_held(conn, dir, ts, self.piece, self);
            self.reset();
        } else if self.len() >= MAX_MSG {
            out.emit_held(conn, dir, ts, true, self);
            self.buf.clear();
            self.fds = 0;
            self.piece = true;
            self.absent = 0;
        }
    }

    /// The length of the message (or piece) so far.
    fn len(&self) -> usize {
        self.buf.len() + self.absent
    }

    fn reset(&mut self) {
        self.buf.clear();
        if self.buf.capacity() > 4 << 20 {
            self.buf = Vec::new();
        }
        self.fds = 0;
        self.absent = 0;
        self.unread = false;
        self.remaining = None;
        self.piece = false;
        self.in_file = false;
    }

    /// The stream ended: what is held becomes a truncated record.
    fn end(&mut self, out: &mut Sinks, conn: u32, dir: Direction, ts: u64) {
        let text = if self.piece {
            format!(
                "{}: the stream ended inside an oversized message",
                side(dir)
            )
        } else if self.len() == 0 {
            String::new()
        } else {
            let declared = msg_size(&self.buf).map_or(String::new(), |s| format!(" of {s}"));
            format!(
                "{}: the stream ended inside a message ({} bytes{declared}); recorded as truncated",
                side(dir),
                self.len()
            )
        };
        if self.len() > 0 {
            out.emit_held(conn, dir, ts, true, self);
        }
        if !text.is_empty() {
            out.note(conn, text);
        }
        self.reset();
    }
}

/// Runs the recorder until every forwarder and the acceptor have dropped their senders.
pub(crate) fn run(
    pool: &Pool,
    rx: &Receiver<RecEvent>,
    capture: Option<PcapngWriter<CaptureOut>>,
    printq: Option<(Arc<print::Queue>, bool)>,
    stats: &Mutex<Summary>,
) -> io::Result<Summary> {
    run_bounded(pool, rx, capture, printq, stats, HOLD_MAX).map(|(s, _, _)| s)
}

/// [`run`], with at most `hold_max` bytes of blocks waiting behind a record open in the file;
/// returns the counts, how many records were written in place, and the capture's size notes.
fn run_bounded(
    pool: &Pool,
    rx: &Receiver<RecEvent>,
    capture: Option<PcapngWriter<CaptureOut>>,
    printq: Option<(Arc<print::Queue>, bool)>,
    stats: &Mutex<Summary>,
    hold_max: usize,
) -> io::Result<(Summary, u64, Vec<String>)> {
    let mut out = Sinks {
        capture,
        capture_error: None,
        open: None,
        hold_max,
        in_place: 0,
        iface: HashMap::new(),
        printq,
        summary: Summary::default(),
        per_conn: HashMap::new(),
        index: 0,
        pad: ZeroPad::default(),
    };
    let mut streams: HashMap<(u32, bool), Stream> = HashMap::new();
    let mut busy = false;
    let mut last_flush = Instant::now();
    loop {
        let ev = match rx.try_recv() {
            Ok(ev) => ev,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                *stats.lock().unwrap_or_else(PoisonError::into_inner) = out.summary.clone();
                if busy {
                    busy = false;
                    if last_flush.elapsed() >= FLUSH_EVERY {
                        out.flush();
                        last_flush = Instant::now();
                    }
                    std::thread::sleep(BATCH_PAUSE);
                    continue;
                }
                out.flush();
                last_flush = Instant::now();
                match rx.recv() {
                    Ok(ev) => ev,
                    Err(_) => break,
                }
            }
        };
        busy = true;
        match ev {
            RecEvent::Chunk(c) => {
                let key = (c.conn, c.dir == Direction::ClientToServer);
                match c.dir {
                    Direction::ClientToServer => out.summary.bytes_c2s += c.len as u64,
                    Direction::ServerToClient => out.summary.bytes_s2c += c.len as u64,
                }
                let s = streams.entry(key).or_default();
                s.feed(&mut out, &c);
                pool.put(c.buf);
            }
            RecEvent::Elided {
                conn,
                dir,
                ts,
                len,
                tee,
            } => {
                match dir {
                    Direction::ClientToServer => out.summary.bytes_c2s += len,
                    Direction::ServerToClient => out.summary.bytes_s2c += len,
                }
                out.summary.spliced += len;
                let key = (conn, dir == Direction::ClientToServer);
                let s = streams.entry(key).or_default();
                match tee {
                    Some(pipe) => s.teed(&mut out, key, conn, dir, ts, len, &pipe),
                    None => s.elide(&mut out, conn, dir, ts, len),
                }
            }
            RecEvent::Eof { conn, dir, ts } => {
                if let Some(mut s) = streams.remove(&(conn, dir == Direction::ClientToServer)) {
                    s.end(&mut out, conn, dir, ts);
                }
            }
            RecEvent::Open {
                conn,
                name,
                twin_of,
            } => {
                if twin_of.is_some() {
                    out.summary.twin_sockets += 1;
                } else {
                    out.summary.connections += 1;
                }
                if let Some(w) = &mut out.capture {
                    match w.add_connection(&name, Protocol::VfioUser) {
                        Ok(i) => {
                            out.iface.insert(conn, i);
                        }
                        Err(e) => out.capture_failed(e),
                    }
                }
                if let Some((q, _)) = &out.printq {
                    q.push(Item::Open {
                        conn,
                        name,
                        twin_of,
                    });
                }
            }
            RecEvent::Note { conn, kind, text } => {
                match kind {
                    NoteKind::Info => {}
                    NoteKind::ConnectFailed => out.summary.connect_failures += 1,
                    NoteKind::ForwardError => out.summary.forward_errors += 1,
                    NoteKind::FdsTruncated => out.summary.fds_truncated += 1,
                }
                out.note(conn, text);
            }
            RecEvent::Close { conn } => {
                for dir in [true, false] {
                    if let Some(mut s) = streams.remove(&(conn, dir)) {
                        let d = if dir {
                            Direction::ClientToServer
                        } else {
                            Direction::ServerToClient
                        };
                        s.end(&mut out, conn, d, now_ns());
                    }
                }
                let messages = out.per_conn.remove(&conn).unwrap_or(0);
                out.iface.remove(&conn);
                if let Some((q, _)) = &out.printq {
                    q.push(Item::Close { conn, messages });
                }
            }
        }
        // Blocks waiting behind a record open in the file: past the bound, that record is taken
        // back into memory and they are written.
        if out
            .capture
            .as_ref()
            .is_some_and(|w| w.get_ref().held() > out.hold_max)
            && let Some(key) = out.open.as_ref().map(|o| o.key)
            && let Some(s) = streams.get_mut(&key)
        {
            s.spill(&mut out);
        }
    }
    // Streams still open (cannot happen after a clean stop, but nothing may be lost).
    let mut left: Vec<_> = streams.drain().collect();
    left.sort_by_key(|(k, _)| *k);
    for ((conn, c2s), mut s) in left {
        let d = if c2s {
            Direction::ClientToServer
        } else {
            Direction::ServerToClient
        };
        s.end(&mut out, conn, d, now_ns());
    }
    out.flush();
    let mut notes = Vec::new();
    if let Some(mut w) = out.capture.take() {
        // Cut messages, and records Wireshark cannot read: said before the summary.
        notes = w.size_notes();
        for note in &notes {
            out.note(u32::MAX, format!("capture: {note}"));
        }
        if let Err(e) = w.flush() {
            out.capture_failed(e);
        }
    }
    if let Some((q, _)) = &out.printq {
        out.summary.not_printed = q.dropped();
        q.push(Item::Summary(out.summary.clone()));
        q.close();
    }
    *stats.lock().unwrap_or_else(PoisonError::into_inner) = out.summary.clone();
    match out.capture_error {
        Some(e) => Err(e),
        None => Ok((out.summary, out.in_place, notes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use vfu_codec::{Body, decode};

    fn message(id: u16, cmd: u16, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&id.to_le_bytes());
        m.extend_from_slice(&cmd.to_le_bytes());
        m.extend_from_slice(&((16 + body.len()) as u32).to_le_bytes());
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(body);
        m
    }

    fn chunk(bytes: &[u8]) -> Chunk {
        Chunk::of_bytes(0, Direction::ClientToServer, 1, bytes.to_vec())
    }

    /// A REGION_WRITE whose data went by partly spliced, partly read, and the message behind it: the
    /// recorder keeps only the head of the first, the printer gets it with the right length, and both
    /// decode as they would have whole.
    #[test]
    fn spliced_data_is_counted_not_stored() {
        let q = Arc::new(print::Queue::new());
        let mut out = Sinks {
            capture: None,
            capture_error: None,
            open: None,
            hold_max: HOLD_MAX,
            in_place: 0,
            iface: HashMap::new(),
            printq: Some((Arc::clone(&q), true)),
            summary: Summary::default(),
            per_conn: HashMap::new(),
            index: 0,
            pad: ZeroPad::default(),
        };
        let count: u32 = 300_000;
        let mut fixed = Vec::new();
        fixed.extend_from_slice(&0x40u64.to_le_bytes());
        fixed.extend_from_slice(&0u32.to_le_bytes());
        fixed.extend_from_slice(&count.to_le_bytes());
        let mut head = message(1, 10, &fixed);
        head[4..8].copy_from_slice(&(32 + count).to_le_bytes());
        let info = message(2, 4, &[0; 16]);

        let dir = Direction::ClientToServer;
        let mut s = Stream::default();
        // Header, fixed part and 100 data bytes read; 200,000 spliced; 1,000 read; the rest spliced;
        // then the next message.
        let first: Vec<u8> = [&head[..], &[0xAB; 100][..]].concat();
        s.feed(&mut out, &chunk(&first));
        s.elide(&mut out, 0, dir, 2, 200_000);
        assert!(s.buf.len() == first.len() && s.absent == 200_000);
        s.feed(&mut out, &chunk(&[0xCD; 1000]));
        assert_eq!(
            s.buf.len(),
            first.len(),
            "bytes after a spliced span are counted, not stored"
        );
        s.elide(&mut out, 0, dir, 3, u64::from(count) - 201_100);
        s.feed(&mut out, &chunk(&info));
        assert_eq!((out.summary.messages, out.summary.malformed), (2, 0));

        let mut items = VecDeque::new();
        q.close();
        q.pop_all(&mut items).unwrap();
        let msgs: Vec<PMsg> = items
            .into_iter()
            .filter_map(|i| match i {
                Item::Msg(m) => Some(m),
                _ => None,
            })
            .collect();
        assert_eq!(msgs.len(), 2);
        assert_eq!(
            (msgs[0].data.as_slice(), msgs[0].absent),
            (&first[..], count as usize - 100)
        );
        let mut pad = ZeroPad::default();
        let whole = pad.with(&msgs[0].data, msgs[0].absent);
        let m = decode(whole, dir).unwrap();
        let Body::RegionRw { access, data } = m.body else {
            panic!("{:?}", m.body)
        };
        assert_eq!((access.count.get(), data.len()), (count, count as usize));
        assert!(data[..100].iter().all(|&b| b == 0xAB) && data[100..].iter().all(|&b| b == 0));
        assert_eq!((msgs[1].data.as_slice(), msgs[1].absent), (&info[..], 0));
    }
}

/// Records written in place (the tee path) against the same messages read: the recorder is driven
/// with the events a forwarder sends, the teed bytes put into real tee pipes just before their
/// events, and the capture files compared.
#[cfg(test)]
mod in_place_tests {
    use super::*;
    use crate::capture::{CaptureReader, OpenOptions, Record};
    use std::fs::File;
    use std::path::PathBuf;
    use std::sync::mpsc::sync_channel;

    const C2S: Direction = Direction::ClientToServer;
    /// A DEVICE_GET_INFO request's body.
    const INFO: [u8; 16] = [16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    const S2C: Direction = Direction::ServerToClient;

    /// What a forwarder tells the recorder, with the bytes.
    #[derive(Clone)]
    enum Ev {
        Open(u32),
        /// Bytes read, with so many descriptors (with the read's first byte).
        Read(u32, Direction, Vec<u8>, u32),
        /// Bytes spliced and teed.
        Teed(u32, Direction, Vec<u8>),
        /// Bytes spliced and not teed (past the snap length).
        Untee(u32, Direction, Vec<u8>),
        End(u32, Direction),
        Close(u32),
    }

    fn message(id: u16, cmd: u16, flags: u32, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&id.to_le_bytes());
        m.extend_from_slice(&cmd.to_le_bytes());
        m.extend_from_slice(&((16 + body.len()) as u32).to_le_bytes());
        m.extend_from_slice(&flags.to_le_bytes());
        m.extend_from_slice(&[0; 4]);
        m.extend_from_slice(body);
        m
    }

    /// A REGION_WRITE of `n` bytes of data that tell their position.
    fn region_write(id: u16, n: usize) -> Vec<u8> {
        let mut body = Vec::with_capacity(16 + n);
        body.extend_from_slice(&0x40u64.to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes());
        body.extend_from_slice(&(n as u32).to_le_bytes());
        body.extend((0..n).map(|i| (i as u8) ^ ((i >> 8) as u8) ^ (id as u8)));
        message(id, 10, 0, &body)
    }

    fn tmp(name: &str) -> PathBuf {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        std::env::temp_dir().join(format!(
            "vfu-inplace-{}-{}-{name}.pcapng",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ))
    }

    /// Runs the recorder over `events` into a capture at a new path: teed bytes through tee pipes
    /// when `tee`, else as reads (the path of a proxy that reads everything). Returns the file's
    /// bytes, the counts and the records written in place.
    fn record(events: &[Ev], tee: bool, hold_max: usize) -> (Vec<u8>, Summary, u64, Vec<String>) {
        record_cut(events, tee, hold_max, 0)
    }

    /// [`record`] into a capture with a snap length.
    fn record_cut(
        events: &[Ev],
        tee: bool,
        hold_max: usize,
        snaplen: u32,
    ) -> (Vec<u8>, Summary, u64, Vec<String>) {
        let path = tmp(if tee { "tee" } else { "read" });
        let w = PcapngWriter::with_snaplen(CaptureOut::new(File::create(&path).unwrap()), snaplen)
            .unwrap();
        assert!(w.get_ref().in_place());
        let (tx, rx) = sync_channel(16);
        let recorder = std::thread::spawn(move || {
            let pool = Pool::new();
            let stats = Mutex::new(Summary::default());
            run_bounded(&pool, &rx, Some(w), None, &stats, hold_max).unwrap()
        });
        let mut pipes: HashMap<(u32, bool), (Arc<OwnedFd>, OwnedFd)> = HashMap::new();
        // A teed span goes in pieces that fit the tee pipe (64 KiB here), each with its event,
        // as a forwarder's `tee` returns them.
        let pieces = events.iter().enumerate().flat_map(|(i, ev)| match ev {
            Ev::Teed(conn, dir, bytes) => bytes
                .chunks(16 << 10)
                .map(|b| (i, Ev::Teed(*conn, *dir, b.to_vec())))
                .collect::<Vec<_>>(),
            _ => vec![(i, ev.clone())],
        });
        for (i, ev) in pieces {
            let ts = 1_000 + i as u64;
            let ev = match ev {
                Ev::Open(conn) => RecEvent::Open {
                    conn,
                    name: format!("vfio-user:{conn}:/test"),
                    twin_of: None,
                },
                Ev::Read(conn, dir, bytes, nfds) => RecEvent::Chunk(Chunk {
                    nfds,
                    ..Chunk::of_bytes(conn, dir, ts, bytes)
                }),
                Ev::Teed(conn, dir, bytes) | Ev::Untee(conn, dir, bytes) if !tee => {
                    RecEvent::Chunk(Chunk::of_bytes(conn, dir, ts, bytes))
                }
                Ev::Untee(conn, dir, bytes) => RecEvent::Elided {
                    conn,
                    dir,
                    ts,
                    len: bytes.len() as u64,
                    tee: None,
                },
                Ev::Teed(conn, dir, bytes) => {
                    let (r, w) = pipes.entry((conn, dir == C2S)).or_insert_with(|| {
                        let (r, w) = rustix::pipe::pipe().unwrap();
                        (Arc::new(r), w)
                    });
                    // Blocks while the pipe is full, until the recorder has taken earlier bytes.
                    let mut at = 0;
                    while at < bytes.len() {
                        at += rustix::io::write(&*w, &bytes[at..]).unwrap();
                    }
                    RecEvent::Elided {
                        conn,
                        dir,
                        ts,
                        len: bytes.len() as u64,
                        tee: Some(Arc::clone(r)),
                    }
                }
                Ev::End(conn, dir) => RecEvent::Eof { conn, dir, ts },
                Ev::Close(conn) => RecEvent::Close { conn },
            };
            tx.send(ev).unwrap();
        }
        drop(tx);
        let (summary, in_place, notes) = recorder.join().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        (bytes, summary, in_place, notes)
    }

    fn records(file: &[u8]) -> Vec<Record> {
        let mut r = CaptureReader::new(file, &OpenOptions::default()).unwrap();
        let mut v = Vec::new();
        while let Some(rec) = r.next_record().unwrap() {
            v.push(rec.to_owned());
        }
        v
    }

    /// `m` as a read of its first `head` bytes with `nfds` descriptors and spans teed after it.
    fn spliced(
        conn: u32,
        dir: Direction,
        m: &[u8],
        head: usize,
        spans: &[usize],
        nfds: u32,
    ) -> Vec<Ev> {
        let mut v = vec![Ev::Read(conn, dir, m[..head].to_vec(), nfds)];
        let mut at = head;
        for &k in spans {
            v.push(Ev::Teed(conn, dir, m[at..at + k].to_vec()));
            at += k;
        }
        if at < m.len() {
            v.push(Ev::Teed(conn, dir, m[at..].to_vec()));
        }
        v
    }

    /// A record written in place is byte for byte the one written whole: descriptors, padding of
    /// each odd length, read bytes between teed ones, the message after it in the same read, and a
    /// stream that ends inside one (truncated).
    #[test]
    fn records_written_in_place_are_those_written_whole() {
        let big = region_write(1, 300_000);
        let mut ev = vec![Ev::Open(0), Ev::Read(0, C2S, message(9, 4, 0, &INFO), 1)];
        // Head read, a teed span, read bytes (descriptors could not be ruled out), teed again, and
        // the last bytes read together with the next message.
        let reply = message(1, 10, 1, &big[16..32]);
        ev.extend([
            Ev::Read(0, C2S, big[..8192].to_vec(), 2),
            Ev::Teed(0, C2S, big[8192..108_192].to_vec()),
            Ev::Read(0, C2S, big[108_192..113_192].to_vec(), 0),
            Ev::Teed(0, C2S, big[113_192..big.len() - 3].to_vec()),
            Ev::Read(
                0,
                C2S,
                [&big[big.len() - 3..], &message(2, 13, 0, &[])[..]].concat(),
                0,
            ),
            Ev::Read(0, S2C, reply, 0),
        ]);
        // Each padding: data lengths 1 to 4 mod 4, teed whole after the head, server→client too.
        for (i, n) in [70_001usize, 70_002, 70_003, 70_004]
            .into_iter()
            .enumerate()
        {
            let id = 10 + i as u16;
            let read = region_write(id, n);
            let mut reply = read.clone();
            reply[2..4].copy_from_slice(&9u16.to_le_bytes());
            reply[8..12].copy_from_slice(&1u32.to_le_bytes());
            ev.extend(spliced(
                0,
                C2S,
                &message(id, 9, 0, &read[16..32]),
                32,
                &[],
                0,
            ));
            ev.extend(spliced(0, S2C, &reply, 4096, &[30_000], 0));
        }
        // Cut short: the client goes after part of a transfer.
        let last = region_write(20, 200_000);
        ev.extend(spliced(0, C2S, &last[..150_000], 8192, &[50_000], 1));
        ev.extend([Ev::End(0, C2S), Ev::End(0, S2C), Ev::Close(0)]);

        let (teed, s_teed, in_place, notes) = record(&ev, true, HOLD_MAX);
        let (read, s_read, none, notes_read) = record(&ev, false, HOLD_MAX);
        assert_eq!((in_place, none), (6, 0), "written in place");
        assert!(teed == read, "the files differ");
        // The 300 KiB record, written in place, is one Wireshark cannot read, and is said so.
        assert_eq!(notes, notes_read);
        assert!(
            notes.len() == 1 && notes[0].starts_with("1 record is longer than"),
            "{notes:?}"
        );
        assert_eq!(
            s_teed,
            Summary {
                spliced: s_teed.spliced,
                ..s_read.clone()
            }
        );
        let recs = records(&teed);
        let cut = recs.last().unwrap();
        assert_eq!(
            (cut.data.as_slice(), cut.fds, cut.truncated),
            (&last[..150_000], 1, true)
        );
        let whole = recs.iter().find(|r| r.data.len() == big.len()).unwrap();
        assert!(whole.data == big && whole.fds == 2 && !whole.truncated);
        assert_eq!(
            (s_read.messages, s_read.truncated, s_read.malformed),
            (13, 1, 1)
        );
    }

    /// With a snap length, a record written in place is cut as the capture writer cuts one
    /// written whole: only the bytes within the snap length are in the file (the forwarder tees no
    /// more), the original length is the message's, a message whose head read is past the snap
    /// length is cut from it, a stream that ends inside one is truncated and cut, and a record
    /// taken back into memory is cut the same; the size notes count the cut records.
    #[test]
    fn records_written_in_place_are_cut_to_the_snap_length() {
        const SNAP: u32 = 100_000;
        let cap = SNAP as usize
            - vfu_codec::capture::pdu_tags_len(vfu_codec::capture::DISSECTOR_VFIO_USER);
        let big = region_write(1, 300_000);
        let long_head = region_write(2, 200_000);
        let last = region_write(3, 200_000);
        let small = message(4, 4, 0, &INFO);
        let mut ev = vec![
            Ev::Open(0),
            Ev::Read(0, S2C, small.clone(), 0),
            Ev::Read(0, C2S, big[..8192].to_vec(), 1),
            Ev::Teed(0, C2S, big[8192..60_000].to_vec()),
            Ev::Read(0, C2S, big[60_000..61_000].to_vec(), 0),
            Ev::Teed(0, C2S, big[61_000..cap].to_vec()),
            Ev::Untee(0, C2S, big[cap..big.len() - 5].to_vec()),
            Ev::Read(0, C2S, big[big.len() - 5..].to_vec(), 0),
            Ev::Read(0, C2S, long_head[..120_000].to_vec(), 0),
            Ev::Untee(0, C2S, long_head[120_000..].to_vec()),
        ];
        ev.extend([
            Ev::Read(0, C2S, last[..8192].to_vec(), 0),
            Ev::Teed(0, C2S, last[8192..cap].to_vec()),
            Ev::Untee(0, C2S, last[cap..150_000].to_vec()),
            Ev::End(0, C2S),
            Ev::End(0, S2C),
            Ev::Close(0),
        ]);
        let (teed, s_teed, in_place, notes) = record_cut(&ev, true, HOLD_MAX, SNAP);
        let (read, s_read, _, notes_read) = record_cut(&ev, false, HOLD_MAX, SNAP);
        assert_eq!(in_place, 2, "written in place");
        assert!(teed == read, "the files differ");
        assert_eq!(notes, notes_read);
        assert_eq!(
            notes,
            ["3 messages cut to 100000 bytes (each record keeps its message's whole length)"]
        );
        assert_eq!(
            s_teed,
            Summary {
                spliced: s_teed.spliced,
                ..s_read.clone()
            }
        );
        let recs = records(&teed);
        let got: Vec<_> = recs
            .iter()
            .map(|r| (r.data.len(), r.orig_len, r.fds, r.truncated))
            .collect();
        assert_eq!(
            got,
            [
                (small.len(), small.len(), 0, false),
                (cap, big.len(), 1, false),
                (cap, long_head.len(), 0, false),
                (cap, 150_000, 0, true),
            ]
        );
        assert!(recs[1].data == big[..cap] && recs[2].data == long_head[..cap]);
        assert!(recs[3].data == last[..cap]);
        // Taken back into memory (too much waits behind it) before the cut (then begun in place
        // again) and after it (then finished in memory): the same records.
        for (at, written) in [(4, 2), (7, 1)] {
            let mut ev = ev.clone();
            ev.insert(at, Ev::Read(0, S2C, vec![0; 2000], 0));
            let (spilled, _, in_place, _) = record_cut(&ev, true, 1000, SNAP);
            let (read, _, _, _) = record_cut(&ev, false, 1000, SNAP);
            assert_eq!(in_place, written, "taken back at {at}");
            assert!(spilled == read, "the files differ when taken back at {at}");
        }
    }

    /// While a record is open in the file, other records (another connection's, a new
    /// connection's interface and record) wait and come after it; each keeps its timestamp.
    #[test]
    fn other_records_wait_behind_an_open_one() {
        let big = region_write(1, 200_000);
        let small = message(5, 4, 0, &INFO);
        let ev = vec![
            Ev::Open(0),
            Ev::Open(1),
            Ev::Read(0, C2S, big[..8192].to_vec(), 0),
            Ev::Teed(0, C2S, big[8192..60_000].to_vec()),
            Ev::Read(1, C2S, small.clone(), 0),
            Ev::Open(2),
            Ev::Read(2, S2C, small.clone(), 1),
            Ev::Teed(0, C2S, big[60_000..].to_vec()),
            Ev::Close(0),
            Ev::Close(1),
            Ev::Close(2),
        ];
        let (teed, _, in_place, _) = record(&ev, true, HOLD_MAX);
        let (read, _, _, _) = record(&ev, false, HOLD_MAX);
        assert_eq!(in_place, 1);
        let (t, r) = (records(&teed), records(&read));
        let order = |v: &[Record]| {
            v.iter()
                .map(|r| (r.conn, r.data.len(), r.ts_ns))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            order(&t),
            [(0, big.len(), 1_007), (1, 32, 1_004), (2, 32, 1_006)]
        );
        assert_eq!(
            order(&r),
            [(1, 32, 1_004), (2, 32, 1_006), (0, big.len(), 1_007)]
        );
        assert!(t[0].data == big);
        assert_eq!(t[2].fds, 1);
    }

    /// Past the bound on what may wait, the open record is taken back into memory: the file is
    /// then the one a proxy that read everything writes, byte for byte. A second large transfer
    /// while one is open is read from its tee pipe into memory.
    #[test]
    fn an_open_record_is_taken_back_when_too_much_waits() {
        let big = region_write(1, 200_000);
        let other = region_write(2, 150_000);
        let mut ev = vec![
            Ev::Open(0),
            Ev::Open(1),
            Ev::Read(0, C2S, big[..8192].to_vec(), 1),
            Ev::Teed(0, C2S, big[8192..100_000].to_vec()),
        ];
        for i in 0..20u16 {
            ev.push(Ev::Read(1, S2C, message(100 + i, 4, 0, &INFO), 0));
        }
        ev.extend([
            Ev::Teed(0, C2S, big[100_000..150_000].to_vec()),
            Ev::Read(1, C2S, other[..4096].to_vec(), 0),
            Ev::Teed(1, C2S, other[4096..].to_vec()),
            Ev::Teed(0, C2S, big[150_000..].to_vec()),
            Ev::Close(0),
            Ev::Close(1),
        ]);
        let (teed, _, in_place, _) = record(&ev, true, 1000);
        let (read, _, _, _) = record(&ev, false, 1000);
        assert!(teed == read, "the files differ");
        // The first was begun in place and taken back; the second then began in place.
        assert_eq!(in_place, 1);
        // Without the bound, both records stay in order of their start.
        let (teed, _, in_place, _) = record(&ev, true, HOLD_MAX);
        assert_eq!(in_place, 1);
        let t = records(&teed);
        assert!(t[0].data == big && t[0].fds == 1);
        assert_eq!(t.len(), 22);
        assert!(t.iter().any(|r| r.data == other));
    }
}
