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
use super::pool::{Buf, SMALL};
use super::sock::{self, CMSG_SPACE, MAX_FDS};

/// The send buffer asked for on the proxy's sockets.
const SEND_BUFFER: usize = 2 << 20;

/// The longest VERSION reply held back to look for a twin socket before it is forwarded.
const MAX_VERSION_REPLY: usize = 64 << 10;

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
    // Room for a whole 1 MiB transfer in each of the proxy's send queues (the kernel caps it at
    // net.core.wmem_max): the proxy's writes block less, and a large message crosses in fewer turns.
    for s in [&client, &server] {
        let _ = rustix::net::sockopt::set_socket_send_buffer_size(s, SEND_BUFFER);
    }
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

/// Where message boundaries fall in a stream, from the headers' `msg_size` alone; and, for the splice
/// path, how much of the current message is opaque transfer data.
#[derive(Default)]
pub(crate) struct Scan {
    header: [u8; HEADER_SIZE],
    have: usize,
    /// Body bytes of the current message still to come.
    remaining: u64,
    /// The body offset where the current message's opaque data starts (`u64::MAX`: it has none).
    data_from: u64,
    /// The current message's body length.
    body: u64,
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

impl Scan {
    /// Advances over `data`; returns the offset of the last message that starts in it (where the
    /// descriptors of a read belong: Linux ends a read right after the `sendmsg` that carried them).
    pub(crate) fn feed(&mut self, data: &[u8]) -> Option<usize> {
        let mut pos = 0;
        let mut last = None;
        while pos < data.len() {
            if self.remaining > 0 {
                let k = self.remaining.min((data.len() - pos) as u64);
                pos += k as usize;
                self.remaining -= k;
                continue;
            }
            if self.have == 0 {
                last = Some(pos);
                // Fast path: a whole header in the chunk.
                if data.len() - pos >= HEADER_SIZE
                    && let Some(size) = vfu_codec::frame::msg_size(&data[pos..])
                {
                    self.start(&data[pos..], size);
                    pos += HEADER_SIZE;
                    continue;
                }
            }
            let k = (HEADER_SIZE - self.have).min(data.len() - pos);
            self.header[self.have..self.have + k].copy_from_slice(&data[pos..pos + k]);
            self.have += k;
            pos += k;
            if self.have == HEADER_SIZE {
                self.have = 0;
                let size = vfu_codec::frame::msg_size(&self.header).unwrap_or(0);
                let header = self.header;
                self.start(&header, size);
            }
        }
        last
    }

    /// A message with this header (at the start of `bytes`) and `msg_size` begins.
    fn start(&mut self, bytes: &[u8], size: u32) {
        // A msg_size below 16 takes the 16 header bytes, as receivers do.
        self.remaining = u64::from(size).saturating_sub(HEADER_SIZE as u64);
        self.body = self.remaining;
        self.data_from = Header::peek(bytes).map_or(u64::MAX, opaque_data_from);
    }

    /// Bytes of the current message that are opaque data and still to come, counted only once the
    /// fixed part before them has passed (0 otherwise).
    pub(crate) fn opaque_left(&self) -> u64 {
        if self.have == 0 && self.body - self.remaining >= self.data_from {
            self.remaining
        } else {
            0
        }
    }

    /// The current message's opaque data, in all (0 when it has none or its fixed part is still to
    /// come).
    pub(crate) fn opaque_total(&self) -> u64 {
        if self.have == 0 && self.data_from != u64::MAX {
            self.body.saturating_sub(self.data_from)
        } else {
            0
        }
    }

    /// Whether a read from here may run into the transfer data of a message whose header or fixed
    /// part has not been read whole: at a message boundary, inside a header, or inside the fixed part
    /// of a message that carries opaque data.
    pub(crate) fn before_data(&self) -> bool {
        self.have > 0
            || self.remaining == 0
            || (self.data_from != u64::MAX && self.body - self.remaining < self.data_from)
    }

    /// `n` bytes (at most [`opaque_left`](Self::opaque_left)) went by without being read.
    pub(crate) fn skip(&mut self, n: u64) {
        self.remaining -= n.min(self.remaining);
    }
}

/// One direction of one connection.
struct Forwarder {
    ctx: Arc<Ctx>,
    tx: SyncSender<RecEvent>,
    conn: u32,
    dir: Direction,
    src: Arc<OwnedFd>,
    dst: Arc<OwnedFd>,
    scan: Scan,
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
        Forwarder {
            ctx: Arc::clone(ctx),
            tx,
            conn,
            dir,
            src: Arc::clone(src),
            dst: Arc::clone(dst),
            scan: Scan::default(),
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

    /// Forwards until the source ends; returns the twin relays it started.
    ///
    /// Each read is handed to the recorder *before* it is forwarded: a peer can only answer a
    /// message after receiving it, so the recorder always sees a message before anything sent in
    /// reply, on either direction.
    fn run(mut self) -> Vec<JoinHandle<()>> {
        let mut space = [MaybeUninit::<u8>::uninit(); CMSG_SPACE];
        let mut fds: Vec<OwnedFd> = Vec::with_capacity(MAX_FDS);
        let mut held: Option<Buf> = None;
        let src = Arc::clone(&self.src);
        loop {
            if !matches!(self.splicer, Splice::Off) && !self.dst_broken && self.splice_bulk() {
                continue;
            }
            let mut buf = match held.take() {
                Some(b) => b,
                None => self.ctx.pool.take(false),
            };
            let Some(b) = Arc::get_mut(&mut buf) else {
                continue;
            };
            // Before a message's transfer data, read no more than a small buffer holds while the
            // splice path may take over: a large message's data then goes by splice from its first
            // kilobytes on instead of being copied in a read of everything queued behind its header.
            let room = if self.scan.before_data() && !matches!(self.splicer, Splice::Off) {
                b.len().min(SMALL)
            } else {
                b.len()
            };
            let spun = self.spin_recv(&mut b[..room], &mut space, &mut fds);
            let r = match spun
                .unwrap_or_else(|| sock::recv(src.as_fd(), &mut b[..room], &mut space, &mut fds))
            {
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
                // Descriptors never come without bytes on a stream socket; drop any defensively.
                fds.clear();
                held = Some(buf);
                self.end(&src);
                break;
            }
            let mut len = r.len;
            let attach = self.scan.feed(&b[..len]);
            let mut extra: Option<(usize, Vec<OwnedFd>)> = None;
            let mut twin = None;
            if self.twin_watch
                && !fds.is_empty()
                && let Some(p) = attach
            {
                // A VERSION reply may carry the twin socket: hold it back until it is whole.
                if let Some(size) = version_reply_size(&b[p..len])
                    && size <= MAX_VERSION_REPLY
                    && p + size <= b.len()
                {
                    while len < p + size {
                        let mut more = Vec::new();
                        match sock::recv(src.as_fd(), &mut b[len..p + size], &mut space, &mut more)
                        {
                            Ok(m) if m.len > 0 => {
                                self.scan.feed(&b[len..len + m.len]);
                                if !more.is_empty() {
                                    extra = Some((len, more));
                                    len += m.len;
                                    break;
                                }
                                len += m.len;
                            }
                            _ => break,
                        }
                    }
                    if len >= p + size && extra.is_none() {
                        twin = twin_socket(&b[p..p + size], fds.len());
                    }
                }
            }
            let nfds = fds.len() as u32;
            let fds_at = attach.filter(|_| nfds > 0).unwrap_or(0);
            let ts = now_ns();
            match &extra {
                None => self.tap(&buf, 0, len, ts, fds_at, nfds),
                Some((split, more)) => {
                    self.tap(&buf, 0, *split, ts, fds_at, nfds);
                    self.tap(&buf, *split, len - split, ts, 0, more.len() as u32);
                }
            }
            // The next buffer is taken now, so that the thread goes straight back to reading once
            // it has written: a writer that blocks right after waking its reader lets the kernel
            // run the reader on the writer's processor (a synchronous wake-up), which matters for
            // round trips.
            // A large buffer next while data comes in bulk.
            let bulk = len == room || self.scan.remaining > SMALL as u64;
            held = Some(self.ctx.pool.take(bulk));
            match &extra {
                None => self.forward(&buf[..len], &fds, fds_at, twin.as_ref()),
                Some((split, more)) => {
                    self.forward(&buf[..*split], &fds, fds_at, None);
                    self.forward(&buf[*split..len], more, 0, None);
                }
            }
            self.mark_forwarded();
            // Our reference goes; the recorder's returns the buffer to the pool.
            drop(buf);
            if let Some(t) = twin
                && !self.dst_broken
                && t.index < fds.len()
            {
                let server_end = fds.remove(t.index);
                if let Some(h) = start_twin(&self.ctx, self.conn, server_end, t.proxy) {
                    self.twins.push(h);
                }
            }
            fds.clear();
        }
        if let Some(b) = held {
            self.ctx.pool.put(b);
        }
        self.twins
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
        let want = self.scan.opaque_left();
        if want == 0 || self.scan.opaque_total() < SPLICE_MIN {
            return false;
        }
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
            self.scan.skip(k as u64);
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

    /// Sends one read on: the bytes before the message the descriptors belong to, then the rest with
    /// them (with the client's twin socket end in place of the server's).
    fn forward(&mut self, data: &[u8], fds: &[OwnedFd], fds_at: usize, twin: Option<&Twin>) {
        if self.dst_broken {
            return;
        }
        let mut borrowed: heapless::Vec<BorrowedFd<'_>, MAX_FDS> = heapless::Vec::new();
        for (i, fd) in fds.iter().enumerate() {
            let fd = match twin {
                Some(t) if t.index == i => t.client.as_fd(),
                _ => fd.as_fd(),
            };
            if borrowed.push(fd).is_err() {
                break;
            }
        }
        let dst = Arc::clone(&self.dst);
        let mut result = Ok(());
        if !borrowed.is_empty() && fds_at > 0 {
            result = sock::send_all(dst.as_fd(), &data[..fds_at], &[]);
        }
        let (rest, with) = if borrowed.is_empty() {
            (data, &[][..])
        } else {
            (&data[fds_at..], &borrowed[..])
        };
        if result.is_ok() {
            result = sock::send_all(dst.as_fd(), rest, with);
            if let Err(e) = &result
                && e.raw_os_error() == Some(rustix::io::Errno::TOOMANYREFS.raw_os_error())
            {
                self.note(
                    NoteKind::ForwardError,
                    format!("{}: the kernel refused to pass {} descriptors on ({e}); bytes sent without them", self.side(), with.len()),
                );
                result = sock::send_all(dst.as_fd(), rest, &[]);
            }
        }
        if let Err(e) = result {
            self.broken(e);
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

/// The `msg_size` of a non-error VERSION reply starting at `bytes[0]`, when its header is there.
fn version_reply_size(bytes: &[u8]) -> Option<usize> {
    let h = Header::peek(bytes)?;
    (h.cmd() == Command::VERSION && h.is_reply() && !h.is_error())
        .then_some(h.msg_size.get() as usize)
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
    fn scan_finds_the_last_message_start() {
        let mut s = Scan::default();
        let mut stream = Vec::new();
        stream.extend_from_slice(&header(20));
        stream.extend_from_slice(&[0; 4]);
        stream.extend_from_slice(&header(16));
        // Whole first message plus the second: starts at 0.
        assert_eq!(s.feed(&stream[..10]), Some(0));
        // The rest of the first message's header and body, then the second message at 10.
        assert_eq!(s.feed(&stream[10..]), Some(10));
        // A chunk that is all body has no start.
        let mut s = Scan::default();
        let mut big = header(100).to_vec();
        big.resize(100, 0);
        assert_eq!(s.feed(&big[..50]), Some(0));
        assert_eq!(s.feed(&big[50..]), None);
        // Two whole messages and the start of a third in one read: the third (at 32) gets the descriptors.
        let mut s = Scan::default();
        let mut three = header(16).to_vec();
        three.extend_from_slice(&header(16));
        three.extend_from_slice(&header(40));
        assert_eq!(s.feed(&three[..40]), Some(32));
        // msg_size below 16 consumes the 16 header bytes.
        let mut s = Scan::default();
        let mut bad = header(3).to_vec();
        bad.extend_from_slice(&header(16));
        assert_eq!(s.feed(&bad[..20]), Some(16)); // the second header starts at 16
        assert_eq!(s.feed(&bad[20..]), None);
    }

    #[test]
    fn scan_knows_where_transfer_data_starts() {
        // A REGION_WRITE request: 16-byte header, 16-byte fixed part, then 100 bytes of data.
        let mut m = header(132).to_vec();
        m[2..4].copy_from_slice(&10u16.to_le_bytes());
        m.resize(132, 0xA5);
        let mut s = Scan::default();
        assert!(s.before_data());
        s.feed(&m[..10]); // inside the header
        assert!(s.before_data());
        assert_eq!((s.opaque_left(), s.opaque_total()), (0, 0));
        s.feed(&m[10..20]); // inside the fixed part
        assert!(s.before_data());
        assert_eq!((s.opaque_left(), s.opaque_total()), (0, 100));
        s.feed(&m[20..40]); // into the data
        assert!(!s.before_data());
        assert_eq!((s.opaque_left(), s.opaque_total()), (92, 100));
        s.skip(92);
        assert!(s.before_data());
        assert_eq!(s.opaque_left(), 0);
        // A reply carries no data: only its boundary is "before data".
        let mut r = header(132).to_vec();
        r[2..4].copy_from_slice(&10u16.to_le_bytes());
        r[8..12].copy_from_slice(&1u32.to_le_bytes());
        r.resize(132, 0);
        s.feed(&r[..40]);
        assert!(!s.before_data());
        assert_eq!((s.opaque_left(), s.opaque_total()), (0, 0));
    }
}
