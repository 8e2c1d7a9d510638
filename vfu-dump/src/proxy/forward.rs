//! The forwarding loop of one direction.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::net::Shutdown;
use vfu_codec::{Body, Direction, HEADER_SIZE, Header};

use super::ctx::Ctx;
use super::event::{Chunk, NoteKind, RecEvent, now_ns};
use super::framing::{fds_owner, frame_size, opaque_data_from};
use super::pool::{Buf, LARGE, SMALL};
use super::sock::{self, CMSG_SPACE, MAX_FDS};
use super::splice::{Moved, SPLICE_MIN, Splice, Splicer};

/// The send buffer asked for on the destination while a message too large to be sent whole goes on
/// in pieces (the kernel doubles it and caps it at net.core.wmem_max): room for a whole 1 MiB
/// transfer in the queue.
const PIECE_SEND_BUFFER: usize = 2 << 20;

/// Starts the relay of a twin socket: the proxy, the main connection's number, the server's end, the
/// proxy's end of the pair whose other end the client gets.
pub(super) type StartTwin = fn(&Arc<Ctx>, u32, OwnedFd, OwnedFd) -> Option<JoinHandle<()>>;

/// Where a direction is in its stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cur {
    /// Between messages, or inside a header: what there is of the message is held (`have` bytes).
    Start,
    /// A message of `size` bytes (at most the destination's send buffer) is held until it is whole,
    /// then sent with one `sendmsg`.
    Whole { size: usize },
    /// A message too large to be held (more than the destination's send buffer, or more
    /// descriptors than one `sendmsg` carries) goes on as it comes: `left` bytes of it are still to
    /// come, `done` of its body have gone by; its opaque data starts at body offset `data_from`
    /// (`u64::MAX`: it has none) and its body has `body` bytes.
    Piece {
        left: u64,
        done: u64,
        data_from: u64,
        body: u64,
    },
}

/// One direction of one connection.
pub(super) struct Forwarder {
    ctx: Arc<Ctx>,
    tx: SyncSender<RecEvent>,
    conn: u32,
    dir: Direction,
    src: Arc<OwnedFd>,
    dst: Arc<OwnedFd>,
    /// The largest message sent whole: the destination socket's send buffer (`SO_SNDBUF`), what a
    /// direct sender's socket has by default.
    limit: usize,
    cur: Cur,
    /// The buffer holding the message in progress from its first byte (`have` bytes of it).
    held: Option<Buf>,
    have: usize,
    /// The held message's descriptors, and where in it each read's batch of them came (offset, count).
    fds: Vec<OwnedFd>,
    batches: Vec<(usize, usize)>,
    /// Set on the main connection's server→client direction: looks for a twin socket in VERSION
    /// replies, and starts its relay (see `conn::start_twin`).
    start_twin: Option<StartTwin>,
    /// The receiver is gone: record, do not forward.
    dst_broken: bool,
    twins: Vec<JoinHandle<()>>,
    /// The splice path: made at the first large transfer (so that a connection that never has one
    /// holds no pipe), when the proxy allows it and the kernel supports its checks.
    splicer: Splice,
    /// How long this direction polls after forwarding: the proxy's spin time for the client→server
    /// direction on a machine with a processor to spare, zero otherwise (see "Spinning" in the module
    /// documentation).
    spin: Duration,
    /// When this direction last forwarded something (kept only while it may poll).
    forwarded: Instant,
}

impl Forwarder {
    pub(super) fn new(
        ctx: &Arc<Ctx>,
        tx: SyncSender<RecEvent>,
        conn: u32,
        dir: Direction,
        src: &Arc<OwnedFd>,
        dst: &Arc<OwnedFd>,
        start_twin: Option<StartTwin>,
    ) -> Self {
        // Read, never assumed: it is net.core.wmem_default unless someone changed it. Should the
        // kernel not say, every message goes on as it comes, as it did before messages were held.
        let limit = rustix::net::sockopt::socket_send_buffer_size(&**dst).unwrap_or(0);
        Forwarder {
            ctx: Arc::clone(ctx),
            tx,
            conn,
            dir,
            src: Arc::clone(src),
            dst: Arc::clone(dst),
            limit,
            cur: Cur::Start,
            held: None,
            have: 0,
            fds: Vec::with_capacity(MAX_FDS),
            batches: Vec::new(),
            start_twin,
            dst_broken: false,
            twins: Vec::new(),
            splicer: if ctx.splice {
                Splice::Untried
            } else {
                Splice::Off
            },
            spin: if dir == Direction::ClientToServer && ctx.max_spinning > 0 {
                ctx.spin
            } else {
                Duration::ZERO
            },
            forwarded: Instant::now(),
        }
    }

    fn note(&self, kind: NoteKind, text: String) {
        let _ = self.tx.send(RecEvent::Note {
            conn: self.conn,
            kind,
            text,
        });
    }

    fn side(&self) -> &'static str {
        match self.dir {
            Direction::ClientToServer => "client→server",
            Direction::ServerToClient => "server→client",
        }
    }

    /// A pool buffer of at least `n` bytes (a one-off allocation above the large size, for a
    /// destination whose send buffer is larger than that).
    fn buffer(&self, n: usize) -> Buf {
        if n <= SMALL {
            self.ctx.pool.take(false)
        } else if n <= LARGE {
            self.ctx.pool.take(true)
        } else {
            Arc::new(vec![0; n])
        }
    }

    /// Forwards until the source ends; returns the twin relays it started.
    ///
    /// Every message of at most the destination's send buffer is held until it is whole and then
    /// sent with one `sendmsg`, its descriptors with it, as its sender sent it: a receiver that reads
    /// a body with one `recv` (libvfio-user) gets it whole whenever it would have directly. A larger
    /// message goes on as it comes (its transfer data by splice where it may), as a direct
    /// connection passes it on in pieces too. Each message (or piece) is handed to the recorder
    /// *before* it is forwarded: a peer can only answer a message after receiving it, so the recorder
    /// always sees a message before anything sent in reply, on either direction.
    pub(super) fn run(mut self) -> Vec<JoinHandle<()>> {
        let mut space = [MaybeUninit::<u8>::uninit(); CMSG_SPACE];
        let mut fds: Vec<OwnedFd> = Vec::with_capacity(MAX_FDS);
        let src = Arc::clone(&self.src);
        let splicing = !matches!(self.splicer, Splice::Off);
        loop {
            if splicing && !self.dst_broken && self.splice_bulk() {
                continue;
            }
            // Where the read goes, and how much it may take.
            let (mut buf, start, want) = match self.cur {
                Cur::Start | Cur::Whole { .. } => {
                    let mut buf = match self.held.take() {
                        Some(b) => b,
                        None => self.ctx.pool.take(false),
                    };
                    if let Cur::Whole { size } = self.cur
                        && self.have >= buf.len()
                        && buf.len() < size
                    {
                        // The held message has filled its buffer: on into one that takes it all.
                        let mut b = self.buffer(size);
                        if let Some(m) = Arc::get_mut(&mut b) {
                            m[..self.have].copy_from_slice(&buf[..self.have]);
                        }
                        self.ctx.pool.put(std::mem::replace(&mut buf, b));
                    }
                    let want = match self.cur {
                        // The rest of the message, not a byte of the next one.
                        Cur::Whole { size } => size.min(buf.len()) - self.have,
                        // Between messages, no more than a small buffer while the splice path may
                        // take over: the data of a large transfer behind its header then goes by
                        // splice from its first kilobytes on instead of being copied.
                        _ if splicing => SMALL.min(buf.len()) - self.have,
                        _ => buf.len() - self.have,
                    };
                    (buf, self.have, want)
                }
                Cur::Piece {
                    left,
                    done,
                    data_from,
                    ..
                } => {
                    let mut want = usize::try_from(left).unwrap_or(usize::MAX);
                    if splicing && done < data_from {
                        // Up to the transfer data, which the splice path takes.
                        want = want.min(usize::try_from(data_from - done).unwrap_or(usize::MAX));
                    }
                    let buf = self.buffer(want.min(LARGE));
                    let want = want.min(buf.len());
                    (buf, 0, want)
                }
            };
            let Some(b) = Arc::get_mut(&mut buf) else {
                // Cannot happen: a held buffer was never handed out, a pool buffer is nobody's.
                self.held = None;
                self.have = 0;
                continue;
            };
            let spun = self.spin_recv(&mut b[start..start + want], &mut space, &mut fds);
            let r = match spun.unwrap_or_else(|| {
                sock::recv(
                    src.as_fd(),
                    &mut b[start..start + want],
                    &mut space,
                    &mut fds,
                )
            }) {
                Ok(r) => r,
                Err(e) => {
                    self.note(
                        NoteKind::Info,
                        format!("{}: read failed: {e}; closing this direction", self.side()),
                    );
                    sock::Received {
                        len: 0,
                        ctrunc: false,
                    }
                }
            };
            if r.ctrunc {
                self.note(
                    NoteKind::FdsTruncated,
                    format!(
                        "{}: the kernel cut the descriptors of a read short (more than {MAX_FDS}?); those were lost",
                        self.side()
                    ),
                );
            }
            if r.len == 0 {
                // The stream ended: what is held goes on as it is (the receiver would have had
                // those bytes directly), then the end. Descriptors never come without bytes on a
                // stream socket; drop any defensively.
                fds.clear();
                if self.have > 0 {
                    let have = self.have;
                    self.emit(&buf, 0, have, None);
                } else {
                    self.ctx.pool.put(buf);
                }
                self.end(&src);
                break;
            }
            let end = start + r.len;
            match self.cur {
                Cur::Piece {
                    left,
                    done,
                    data_from,
                    body,
                } => {
                    self.add_fds(&mut fds, 0);
                    self.emit(&buf, 0, r.len, None);
                    let left = left - r.len as u64;
                    let next = if left == 0 {
                        Cur::Start
                    } else {
                        Cur::Piece {
                            left,
                            done: done + r.len as u64,
                            data_from,
                            body,
                        }
                    };
                    self.set_cur(next);
                }
                Cur::Whole { size } => {
                    self.add_fds(&mut fds, start);
                    self.have = end;
                    if end == size {
                        self.emit_whole(&buf, 0, size);
                        self.have = 0;
                        self.cur = Cur::Start;
                    } else if self.fds.len() > MAX_FDS {
                        // More descriptors than one sendmsg carries: it cannot go on whole, so it
                        // goes as it came.
                        self.emit(&buf, 0, end, None);
                        self.have = 0;
                        let next = self.piece_after(&buf[..HEADER_SIZE], end as u64);
                        self.set_cur(next);
                    } else {
                        self.held = Some(buf);
                    }
                }
                Cur::Start => self.walk(buf, start, end, &mut fds),
            }
        }
        if let Some(b) = self.held.take() {
            self.ctx.pool.put(b);
        }
        self.twins
    }

    /// After `sent` bytes of the message with this header went on: the rest goes as it comes.
    fn piece_after(&self, header: &[u8], sent: u64) -> Cur {
        let size = frame_size(header);
        let body = size - HEADER_SIZE as u64;
        let left = size - sent;
        if left == 0 {
            return Cur::Start;
        }
        Cur::Piece {
            left,
            done: sent - HEADER_SIZE as u64,
            data_from: Header::peek(header).map_or(u64::MAX, opaque_data_from),
            body,
        }
    }

    /// Moves to `next`. While a message goes on in pieces, the destination's send buffer is raised
    /// (to [`PIECE_SEND_BUFFER`], as far as net.core.wmem_max allows), so that a large transfer
    /// crosses in fewer turns and the proxy's writes block less; it is set back, and read again,
    /// when the message has gone by, so that whole messages are queued as a direct sender's
    /// default socket queues them.
    fn set_cur(&mut self, next: Cur) {
        let was = matches!(self.cur, Cur::Piece { .. });
        let is = matches!(next, Cur::Piece { .. });
        self.cur = next;
        if was == is || self.limit == 0 {
            return;
        }
        use rustix::net::sockopt::{set_socket_send_buffer_size, socket_send_buffer_size};
        // The kernel doubles what it is given (and reports the doubled value).
        let size = if is {
            PIECE_SEND_BUFFER
        } else {
            self.limit.div_ceil(2)
        };
        let _ = set_socket_send_buffer_size(&*self.dst, size);
        if !is {
            self.limit = socket_send_buffer_size(&*self.dst).unwrap_or(self.limit);
        }
    }

    /// Takes a read's descriptors into the held message's, as a batch that came with its byte `at`.
    fn add_fds(&mut self, fds: &mut Vec<OwnedFd>, at: usize) {
        if !fds.is_empty() {
            self.batches.push((at, fds.len()));
            self.fds.append(fds);
        }
    }

    /// Goes through `buf[..end]`, a read from `start` on after the `start` bytes of a header held
    /// from earlier reads: sends each whole message, sends the start of a message too large to be
    /// held, and holds what is left of a message that is not whole yet.
    fn walk(&mut self, buf: Buf, start: usize, end: usize, fds: &mut Vec<OwnedFd>) {
        let owner = if fds.is_empty() {
            usize::MAX
        } else {
            fds_owner(&buf, start, end)
        };
        let mut pos = 0;
        // Whether `buf` was handed out (to the recorder): then nothing more may be written into it.
        let mut shared = false;
        while pos < end {
            if pos == owner {
                let at = start.saturating_sub(pos);
                self.add_fds(fds, at);
            }
            let avail = end - pos;
            let size = if avail >= HEADER_SIZE {
                usize::try_from(frame_size(&buf[pos..])).unwrap_or(usize::MAX)
            } else {
                0
            };
            if avail >= HEADER_SIZE && size <= avail && size <= self.limit {
                if self.fds.len() <= MAX_FDS {
                    self.emit_whole(&buf, pos, size);
                } else {
                    self.emit(&buf, pos, size, None);
                }
                shared = true;
                pos += size;
                continue;
            }
            if avail >= HEADER_SIZE && (size > self.limit || self.fds.len() > MAX_FDS) {
                // Too large to hold: its start goes now, the rest as it comes.
                self.emit(&buf, pos, avail, None);
                let next = self.piece_after(&buf[pos..pos + HEADER_SIZE], avail as u64);
                self.set_cur(next);
                self.have = 0;
                return;
            }
            // Not whole yet: hold it, from its first byte.
            // Memory follows the bytes that came, not the size the header declares: a small
            // buffer first, a large one once more than that has come (see `run`).
            let need = if size == 0 || size > SMALL {
                SMALL.max(avail)
            } else {
                size
            };
            let keep = if pos == 0 && !shared && buf.len() >= need {
                buf
            } else {
                let mut b = self.buffer(need);
                if let Some(m) = Arc::get_mut(&mut b) {
                    m[..avail].copy_from_slice(&buf[pos..end]);
                }
                if !shared {
                    self.ctx.pool.put(buf);
                }
                b
            };
            self.held = Some(keep);
            self.have = avail;
            self.cur = if size == 0 {
                Cur::Start
            } else {
                Cur::Whole { size }
            };
            return;
        }
        self.have = 0;
        self.cur = Cur::Start;
    }

    /// Records and sends the whole message `buf[pos..pos + size]` with the held descriptors; a
    /// VERSION reply that turns twin-socket mode on gets the proxy's twin socket in place of the
    /// server's.
    fn emit_whole(&mut self, buf: &Buf, pos: usize, size: usize) {
        let twin = if self.start_twin.is_some() && !self.fds.is_empty() && !self.dst_broken {
            twin_socket(&buf[pos..pos + size], self.fds.len())
        } else {
            None
        };
        self.emit(buf, pos, size, twin.as_ref());
        if let Some(t) = twin
            && !self.dst_broken
            && t.index < self.fds.len()
        {
            let server_end = self.fds.remove(t.index);
            if let Some(h) = self
                .start_twin
                .and_then(|start| start(&self.ctx, self.conn, server_end, t.proxy))
            {
                self.twins.push(h);
            }
        }
        self.fds.clear();
    }

    /// Records `buf[pos..pos + len]` (a whole message, or a piece of one) with the held descriptors
    /// and sends it on. The descriptors are let go, except when a twin socket is being set up (then
    /// the caller takes the server's end out first).
    fn emit(&mut self, buf: &Buf, pos: usize, len: usize, twin: Option<&Twin>) {
        let nfds = self.fds.len() as u32;
        self.tap(buf, pos, len, now_ns(), 0, nfds);
        self.forward(&buf[pos..pos + len], twin);
        self.mark_forwarded();
        self.batches.clear();
        if twin.is_none() {
            self.fds.clear();
        }
    }

    /// This direction forwarded something: its poll window starts now (no clock is read in a
    /// direction that never polls).
    fn mark_forwarded(&mut self) {
        if !self.spin.is_zero() {
            self.forwarded = Instant::now();
        }
    }

    /// Reads without sleeping, polling the client for up to the proxy's spin time after the last
    /// forward, when a spinning slot is free (see "Spinning" in the module documentation). `None`:
    /// nothing came (or this direction never polls, or its time is up, or every slot is taken); the
    /// caller then blocks in `recvmsg`.
    fn spin_recv(
        &self,
        buf: &mut [u8],
        space: &mut [MaybeUninit<u8>; CMSG_SPACE],
        fds: &mut Vec<OwnedFd>,
    ) -> Option<io::Result<sock::Received>> {
        let spin = self.spin;
        if spin.is_zero() || self.forwarded.elapsed() >= spin {
            return None;
        }
        let slots = &self.ctx.spinning;
        slots
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.ctx.max_spinning).then_some(n + 1)
            })
            .ok()?;
        let got = loop {
            match sock::try_recv(self.src.as_fd(), buf, space, fds) {
                Ok(None) if self.forwarded.elapsed() < spin => std::hint::spin_loop(),
                Ok(None) => break None,
                Ok(Some(r)) => break Some(Ok(r)),
                Err(e) => break Some(Err(e)),
            }
        };
        slots.fetch_sub(1, Ordering::AcqRel);
        got
    }

    /// Moves opaque transfer data that is already queued on the source, and carries no descriptor,
    /// to the destination with `splice(2)` (see "Bulk data" in the module documentation). Returns
    /// whether it moved anything; when it did not, the caller reads as usual.
    fn splice_bulk(&mut self) -> bool {
        let Cur::Piece {
            left,
            done,
            data_from,
            body,
        } = self.cur
        else {
            return false;
        };
        if done < data_from || body.saturating_sub(data_from) < SPLICE_MIN {
            return false;
        }
        if matches!(self.splicer, Splice::Untried) {
            self.splicer =
                Splicer::new(self.src.as_fd(), self.ctx.tee).map_or(Splice::Off, Splice::Ready);
        }
        let Splice::Ready(sp) = &self.splicer else {
            return false;
        };
        let (conn, dir, tx) = (self.conn, self.dir, &self.tx);
        // Each span is recorded before it is forwarded, as every read is.
        let recorded = |k, tee: Option<&Arc<OwnedFd>>| {
            let _ = tx.send(RecEvent::Elided {
                conn,
                dir,
                ts: now_ns(),
                len: k,
                tee: tee.cloned(),
            });
        };
        let read = |buf: Buf| {
            let len = buf.len();
            let _ = tx.send(RecEvent::Chunk(Chunk {
                conn,
                dir,
                ts: now_ns(),
                buf,
                start: 0,
                len,
                fds_at: 0,
                nfds: 0,
            }));
        };
        // Teed only as far as the capture keeps of the message (a message longer than a capture
        // record is recorded in pieces, each cut on its own: all of it is teed).
        let at = HEADER_SIZE as u64 + done;
        let tee_want = if HEADER_SIZE as u64 + body > super::record::MAX_MSG as u64 {
            u64::MAX
        } else {
            self.ctx.tee_cap.saturating_sub(at)
        };
        let Some(Moved {
            moved,
            failed,
            tee_failed,
        }) = sp.move_queued(&self.src, &self.dst, left, tee_want, recorded, read)
        else {
            return false;
        };
        if tee_failed {
            // From now on this direction reads what it forwards.
            self.splicer = Splice::Off;
        }
        let next = if moved == left {
            Cur::Start
        } else {
            Cur::Piece {
                left: left - moved,
                done: done + moved,
                data_from,
                body,
            }
        };
        self.set_cur(next);
        if let Some(e) = failed {
            self.broken(e);
        }
        if moved > 0 {
            self.mark_forwarded();
        }
        moved > 0
    }

    fn tap(&self, buf: &Buf, start: usize, len: usize, ts: u64, fds_at: usize, nfds: u32) {
        let chunk = Chunk {
            conn: self.conn,
            dir: self.dir,
            ts,
            buf: Arc::clone(buf),
            start,
            len,
            fds_at,
            nfds,
        };
        if let Err(e) = self.tx.send(RecEvent::Chunk(chunk)) {
            // The recorder is gone (only after a stop): give the buffer back.
            if let RecEvent::Chunk(c) = e.0 {
                self.ctx.pool.put(c.buf);
            }
        }
    }

    /// Sends `data` on with the held descriptors (the client's twin socket end in place of the
    /// server's): with one `sendmsg` when they fit one, else in pieces at the reads that brought
    /// them, each piece with its own, as the sender had to send them.
    fn forward(&mut self, data: &[u8], twin: Option<&Twin>) {
        // Once the proxy stops, every socket is shut: what is still held (a partial message the
        // stop ended) is recorded, and sending it would only fail.
        if self.dst_broken || self.ctx.stopping.load(Ordering::SeqCst) {
            return;
        }
        let dst = Arc::clone(&self.dst);
        let mut borrowed: Vec<BorrowedFd<'_>> = Vec::new();
        let fds: &[OwnedFd] = &self.fds;
        if !fds.is_empty() {
            borrowed.reserve(fds.len());
            for (i, fd) in fds.iter().enumerate() {
                borrowed.push(match twin {
                    Some(t) if t.index == i => t.client.as_fd(),
                    _ => fd.as_fd(),
                });
            }
        }
        let result = if borrowed.len() <= MAX_FDS {
            self.send(dst.as_fd(), data, &borrowed)
        } else {
            // Batches (offset in `data`, count) in the order they came; bytes before the first
            // go without.
            let mut result = Ok(());
            let mut first = 0;
            let cut = |k: usize| {
                self.batches
                    .get(k)
                    .map_or(data.len(), |b| b.0.min(data.len()))
            };
            if cut(0) > 0 {
                result = self.send(dst.as_fd(), &data[..cut(0)], &[]);
            }
            for (k, &(_, n)) in self.batches.iter().enumerate() {
                if result.is_err() {
                    break;
                }
                let (from, to) = (cut(k), cut(k + 1).max(cut(k)));
                result = self.send(dst.as_fd(), &data[from..to], &borrowed[first..first + n]);
                first += n;
            }
            result
        };
        if let Err(e) = result {
            self.broken(e);
        }
    }

    /// One `sendmsg` (more only if the kernel takes part of it, as it does for a message larger than
    /// the send buffer), retried without descriptors when the kernel refuses to pass them.
    fn send(&self, dst: BorrowedFd<'_>, data: &[u8], with: &[BorrowedFd<'_>]) -> io::Result<()> {
        let result = sock::send_all(dst, data, with);
        match &result {
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::TOOMANYREFS.raw_os_error()) => {
                self.note(
                    NoteKind::ForwardError,
                    format!("{}: the kernel refused to pass {} descriptors on ({e}); bytes sent without them", self.side(), with.len()),
                );
                sock::send_all(dst, data, &[])
            }
            _ => result,
        }
    }

    /// A write to the destination failed: it is gone. Say so, record from now on without
    /// forwarding, and let the sender know at once.
    fn broken(&mut self, e: io::Error) {
        self.dst_broken = true;
        let to = match self.dir {
            Direction::ClientToServer => "server",
            Direction::ServerToClient => "client",
        };
        self.note(
            NoteKind::ForwardError,
            format!(
                "{}: the {to} is gone ({e}); what still arrives is recorded, not forwarded",
                self.side()
            ),
        );
        sock::shutdown(self.src.as_fd(), Shutdown::Read);
    }

    /// The source ended: pass the end on.
    fn end(&self, src: &Arc<OwnedFd>) {
        let _ = self.tx.send(RecEvent::Eof {
            conn: self.conn,
            dir: self.dir,
            ts: now_ns(),
        });
        if sock::peer_gone(src.as_fd()) {
            // Closed, not half-closed: the other peer's writes must fail now, not at its next read.
            sock::shutdown(self.dst.as_fd(), Shutdown::Both);
        } else {
            sock::shutdown(self.dst.as_fd(), Shutdown::Write);
        }
    }
}

/// A twin socket being set up.
struct Twin {
    /// Which of the reply's descriptors the server's socket is.
    index: usize,
    /// The end given to the client.
    client: OwnedFd,
    /// The end the proxy keeps.
    proxy: OwnedFd,
}

/// Whether a whole VERSION reply turns twin-socket mode on with a valid `fd_index` (§2.1); if so,
/// makes the socketpair.
fn twin_socket(msg: &[u8], nfds: usize) -> Option<Twin> {
    let m = vfu_codec::decode(msg, Direction::ServerToClient).ok()?;
    let Body::Version(v) = m.body else {
        return None;
    };
    let caps = vfu_codec::vfio::caps::parse_capabilities(v.json?).ok()?;
    let t = caps.twin_socket?;
    if t.supported != Some(true) {
        return None;
    }
    let index = usize::try_from(t.fd_index?).ok().filter(|&i| i < nfds)?;
    let (proxy, client) = rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .ok()?;
    Some(Twin {
        index,
        client,
        proxy,
    })
}
