//! Connection threads and the forwarding loop of one direction.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::net::Shutdown;
use vfu_codec::{Body, Command, Direction, HEADER_SIZE, Header};

use super::Ctx;
use super::event::{Chunk, NoteKind, RecEvent, now_ns};
use super::pool::{Buf, LARGE, SMALL};
use super::sock::{self, CMSG_SPACE, MAX_FDS};

/// The send buffer asked for on the destination while a message too large to be sent whole goes on
/// in pieces (the kernel doubles it and caps it at net.core.wmem_max): room for a whole 1 MiB
/// transfer in the queue.
const PIECE_SEND_BUFFER: usize = 2 << 20;

/// The least opaque data in a message for the splice path to take it (below this, `recvmsg` and
/// `sendmsg` are as cheap). Once a message qualifies, all of its opaque data that the first read did
/// not take is spliced, down to its last byte.
const SPLICE_MIN: u64 = 64 << 10;

/// The pipe size asked for on the splice path (the kernel allows 1 MiB unless
/// `fs.pipe-max-size` says otherwise).
const SPLICE_PIPE: usize = 1 << 20;

/// Whether a direction splices.
enum Splice {
    /// Not allowed here, or not possible (no pipe, or no `scm_fds:` in fdinfo).
    Off,
    /// Allowed; tried at the first large transfer.
    Untried,
    Ready(Splicer),
}

/// The splice path of one direction: a pipe, and the source socket's fdinfo file to learn whether any
/// descriptor waits in its receive queue.
struct Splicer {
    pipe_r: OwnedFd,
    pipe_w: OwnedFd,
    pipe_size: usize,
    fdinfo: std::fs::File,
}

impl Splicer {
    /// `None` when a pipe cannot be made or the kernel does not report `scm_fds:` (then the
    /// direction always reads and writes).
    fn new(src: BorrowedFd<'_>) -> Option<Splicer> {
        use std::os::fd::AsRawFd;
        let (pipe_r, pipe_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).ok()?;
        let pipe_size = rustix::pipe::fcntl_setpipe_size(&pipe_w, SPLICE_PIPE)
            .or_else(|_| rustix::pipe::fcntl_getpipe_size(&pipe_w))
            .ok()?;
        let fdinfo = std::fs::File::open(format!("/proc/self/fdinfo/{}", src.as_raw_fd())).ok()?;
        let s = Splicer {
            pipe_r,
            pipe_w,
            pipe_size,
            fdinfo,
        };
        s.fds_queued()?;
        Some(s)
    }

    /// The descriptors queued in the socket's receive queue (`scm_fds:` of its fdinfo).
    fn fds_queued(&self) -> Option<u64> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 512];
        let n = self.fdinfo.read_at(&mut buf, 0).ok()?;
        let text = std::str::from_utf8(buf.get(..n)?).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("scm_fds:"))
            .and_then(|v| v.trim().parse().ok())
    }
}

/// Serves one accepted client: connects to the server, forwards both ways, cleans up.
pub(crate) fn connection(ctx: &Arc<Ctx>, conn: u32, client: OwnedFd, tx: SyncSender<RecEvent>) {
    let server = match sock::connect(&ctx.server, ctx.connect_timeout, &ctx.stopping) {
        Ok(s) => s,
        Err(e) => {
            let _ = tx.send(RecEvent::Note {
                conn,
                kind: NoteKind::ConnectFailed,
                text: format!(
                    "cannot connect to the server {} ({e}, after {:.1} s); client connection closed",
                    ctx.server.display(),
                    ctx.connect_timeout.as_secs_f64()
                ),
            });
            let _ = tx.send(RecEvent::Close { conn });
            ctx.active.fetch_sub(1, Ordering::SeqCst);
            return;
        }
    };
    // The send buffers stay as the system made them (net.core.wmem_default), as a peer's are: the
    // messages sent whole are those a direct sender can queue whole (see `Forwarder::limit`).
    let client = Arc::new(client);
    let server = Arc::new(server);
    ctx.add_sockets(conn, &[&client, &server]);
    let s2c = Forwarder::new(
        ctx,
        tx.clone(),
        conn,
        Direction::ServerToClient,
        &server,
        &client,
        true,
    );
    let other = std::thread::Builder::new()
        .name(format!("vfu-proxy-c{conn}-s2c"))
        .stack_size(256 << 10)
        .spawn(move || s2c.run());
    let mut twins = Vec::new();
    match other {
        Ok(h) => {
            let c2s = Forwarder::new(
                ctx,
                tx.clone(),
                conn,
                Direction::ClientToServer,
                &client,
                &server,
                false,
            );
            twins.extend(c2s.run());
            if let Ok(t) = h.join() {
                twins.extend(t);
            }
        }
        Err(e) => {
            let _ = tx.send(RecEvent::Note {
                conn,
                kind: NoteKind::Info,
                text: format!("cannot start a thread ({e}); connection closed"),
            });
        }
    }
    for t in twins {
        let _ = t.join();
    }
    ctx.remove_sockets(conn);
    let _ = tx.send(RecEvent::Close { conn });
    ctx.active.fetch_sub(1, Ordering::SeqCst);
}

/// Relays a twin socket: `server` is the end the server sent, `proxy` our end of the pair whose other
/// end the client got.
fn start_twin(
    ctx: &Arc<Ctx>,
    main: u32,
    server: OwnedFd,
    proxy: OwnedFd,
) -> Option<JoinHandle<()>> {
    let (conn, tx) = ctx.open(Some(main))?;
    let _ = tx.send(RecEvent::Note {
        conn: main,
        kind: NoteKind::Info,
        text: format!(
            "twin socket: the client gets the proxy's socket; relayed as connection {conn}"
        ),
    });
    let server = Arc::new(server);
    let proxy = Arc::new(proxy);
    ctx.add_sockets(conn, &[&server, &proxy]);
    let c = Arc::clone(ctx);
    std::thread::Builder::new()
        .name(format!("vfu-proxy-c{conn}-twin"))
        .stack_size(256 << 10)
        .spawn(move || {
            let s2c = Forwarder::new(
                &c,
                tx.clone(),
                conn,
                Direction::ServerToClient,
                &server,
                &proxy,
                false,
            );
            let h = std::thread::Builder::new()
                .name(format!("vfu-proxy-c{conn}-s2c"))
                .stack_size(256 << 10)
                .spawn(move || s2c.run());
            if let Ok(h) = h {
                let c2s = Forwarder::new(
                    &c,
                    tx.clone(),
                    conn,
                    Direction::ClientToServer,
                    &proxy,
                    &server,
                    false,
                );
                let _ = c2s.run();
                let _ = h.join();
            }
            c.remove_sockets(conn);
            let _ = tx.send(RecEvent::Close { conn });
        })
        .ok()
}

/// The size a receiver gives a message with this header: its `msg_size`, or the 16 header bytes when
/// `msg_size` is below that (as receivers take them).
fn frame_size(header: &[u8]) -> u64 {
    vfu_codec::frame::msg_size(header)
        .map_or(HEADER_SIZE as u64, |s| u64::from(s).max(HEADER_SIZE as u64))
}

/// Where the opaque data of a message with this header starts in its body (after the fixed part), for
/// the commands whose variable part is bytes that nothing decodes: REGION_READ/WRITE, DMA_READ/WRITE
/// and MIG_DATA_READ/WRITE, in the direction that carries the data, not error replies.
fn opaque_data_from(h: &Header) -> u64 {
    if h.is_error() {
        return u64::MAX;
    }
    let reply = h.is_reply();
    match (h.cmd(), reply) {
        (Command::REGION_WRITE | Command::DMA_WRITE, false)
        | (Command::REGION_READ | Command::DMA_READ, true) => 16,
        (Command::MIG_DATA_WRITE, false) | (Command::MIG_DATA_READ, true) => 8,
        _ => u64::MAX,
    }
}

/// The message a read's descriptors belong to: of the messages that start in `buf[..end]` (one
/// starts at 0, and the others follow from the headers' sizes), the last one that starts at or after
/// `start`, where the read began; 0, the message held from earlier reads, when none does. Linux ends
/// a read right after the `sendmsg` that carried descriptors (`unix_stream_read_generic`) and every
/// vfio-user sender puts them with the message's first byte, so the last message that starts in a
/// read is theirs.
fn fds_owner(buf: &[u8], start: usize, end: usize) -> usize {
    let mut owner = 0;
    let mut pos = 0usize;
    while pos < end {
        if pos >= start {
            owner = pos;
        }
        if end - pos < HEADER_SIZE {
            break;
        }
        let size = frame_size(&buf[pos..]);
        pos = pos.saturating_add(usize::try_from(size).unwrap_or(usize::MAX));
    }
    owner
}

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
struct Forwarder {
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
    /// Look for a twin socket in VERSION replies (the main connection's server→client direction).
    twin_watch: bool,
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
    fn new(
        ctx: &Arc<Ctx>,
        tx: SyncSender<RecEvent>,
        conn: u32,
        dir: Direction,
        src: &Arc<OwnedFd>,
        dst: &Arc<OwnedFd>,
        twin_watch: bool,
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
            twin_watch,
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
    fn run(mut self) -> Vec<JoinHandle<()>> {
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
        let twin = if self.twin_watch && !self.fds.is_empty() && !self.dst_broken {
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
            if let Some(h) = start_twin(&self.ctx, self.conn, server_end, t.proxy) {
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
        use rustix::pipe::{SpliceFlags, splice};
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
        let want = left;
        if matches!(self.splicer, Splice::Untried) {
            self.splicer = Splicer::new(self.src.as_fd()).map_or(Splice::Off, Splice::Ready);
        }
        let Splice::Ready(sp) = &self.splicer else {
            return false;
        };
        let src = Arc::clone(&self.src);
        let dst = Arc::clone(&self.dst);
        // Queued bytes first, then no descriptor anywhere in the queue: then those bytes carry none.
        // Inside a large transfer, wait for data here rather than in `recvmsg`, which would copy it.
        let mut queued = rustix::io::ioctl_fionread(&*src).unwrap_or(0);
        if queued == 0 {
            use rustix::event::{PollFd, PollFlags, poll};
            let mut p = [PollFd::new(&*src, PollFlags::IN)];
            if poll(&mut p, None).is_err() {
                return false;
            }
            queued = rustix::io::ioctl_fionread(&*src).unwrap_or(0);
        }
        let n = queued.min(want);
        if n == 0 || sp.fds_queued() != Some(0) {
            return false;
        }
        let mut moved = 0u64;
        let mut failed = None;
        while moved < n && failed.is_none() {
            let chunk = (n - moved).min(sp.pipe_size as u64) as usize;
            let k = match splice(&*src, None, &sp.pipe_w, None, chunk, SpliceFlags::MOVE) {
                Ok(0) => break,
                Ok(k) => k,
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => break,
            };
            // Recorded before it is forwarded, as every read is.
            let _ = self.tx.send(RecEvent::Elided {
                conn: self.conn,
                dir: self.dir,
                ts: now_ns(),
                len: k as u64,
            });
            moved += k as u64;
            let mut out = 0;
            while out < k {
                match splice(&sp.pipe_r, None, &*dst, None, k - out, SpliceFlags::MOVE) {
                    Ok(0) => {
                        failed = Some(io::Error::from(io::ErrorKind::WriteZero));
                        break;
                    }
                    Ok(j) => out += j,
                    Err(rustix::io::Errno::INTR) => {}
                    Err(e) => {
                        failed = Some(e.into());
                        break;
                    }
                }
            }
            if failed.is_some() {
                // Empty the pipe: those bytes are recorded (as spliced) and cannot be delivered.
                let mut sink = [0u8; 4096];
                let mut left = k - out;
                while left > 0 {
                    match rustix::io::read(&sp.pipe_r, &mut sink[..left.min(4096)]) {
                        Ok(0) | Err(_) => break,
                        Ok(j) => left -= j,
                    }
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn header(size: u32) -> [u8; 16] {
        let mut h = [0u8; 16];
        h[4..8].copy_from_slice(&size.to_le_bytes());
        h
    }

    #[test]
    fn a_reads_descriptors_go_to_the_last_message_that_starts_in_it() {
        let mut stream = Vec::new();
        stream.extend_from_slice(&header(20));
        stream.extend_from_slice(&[0; 4]);
        stream.extend_from_slice(&header(16));
        // A read of everything: the second message (at 20) is the last to start in it.
        assert_eq!(fds_owner(&stream, 0, stream.len()), 20);
        // A read that ends inside the first message: its own.
        assert_eq!(fds_owner(&stream, 0, 10), 0);
        // A read that continues the first message (held from 0) and holds the second: the second.
        assert_eq!(fds_owner(&stream, 10, stream.len()), 20);
        // A read that only continues the first: the held one.
        assert_eq!(fds_owner(&stream, 10, 18), 0);
        // Three whole headers and a partial one: the partial one at 48.
        let mut four = [header(16), header(16), header(16)].concat();
        four.extend_from_slice(&header(40)[..8]);
        assert_eq!(fds_owner(&four, 0, four.len()), 48);
        // msg_size below 16 takes the 16 header bytes, as receivers do; a huge one ends the scan.
        let bad = [header(3), header(16)].concat();
        assert_eq!(fds_owner(&bad, 0, bad.len()), 16);
        let huge = [header(u32::MAX), header(16)].concat();
        assert_eq!(fds_owner(&huge, 0, huge.len()), 0);
    }

    #[test]
    fn frame_sizes_as_receivers_take_them() {
        assert_eq!(frame_size(&header(0)), 16);
        assert_eq!(frame_size(&header(15)), 16);
        assert_eq!(frame_size(&header(16416)), 16416);
        assert_eq!(frame_size(&header(u32::MAX)), u64::from(u32::MAX));
    }

    #[test]
    fn transfer_data_starts_after_the_fixed_part() {
        let mut h = header(132);
        h[2..4].copy_from_slice(&10u16.to_le_bytes()); // REGION_WRITE
        assert_eq!(opaque_data_from(Header::peek(&h).unwrap()), 16);
        h[8..12].copy_from_slice(&1u32.to_le_bytes()); // its reply carries no data
        assert_eq!(opaque_data_from(Header::peek(&h).unwrap()), u64::MAX);
        h[2..4].copy_from_slice(&9u16.to_le_bytes()); // REGION_READ reply does
        assert_eq!(opaque_data_from(Header::peek(&h).unwrap()), 16);
        h[8..12].copy_from_slice(&(1u32 | 0x20).to_le_bytes()); // not an error reply
        assert_eq!(opaque_data_from(Header::peek(&h).unwrap()), u64::MAX);
    }
}
