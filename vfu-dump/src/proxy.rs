//! `vfu-dump proxy`: a transparent vfio-user socket proxy that decodes, prints and records live.
//!
//! ```text
//!  client (VMM) ──▶ --listen CLIENT.sock ══ proxy ══ --connect SERVER.sock ◀── server (device)
//! ```
//!
//! [`Proxy::start`] binds the listen socket and returns a [`ProxyHandle`]; `cmd/proxy.rs` is the
//! command-line wrapper (options, signals, output). Tests drive the library directly.
//!
//! # Design
//!
//! **Threads.** One acceptor thread polls the listen socket and a stop socket. Each accepted client
//! gets a connection thread, which connects to the server (retrying for `--connect-timeout` while the
//! server is not listening yet) and then forwards client→server itself while a second thread forwards
//! server→client. A twin socket adds two more forwarding threads. A forwarding thread does nothing but
//! a blocking `recvmsg` on one socket and a blocking `sendmsg` on the other, so each direction moves
//! independently (a peer that does not read can stall only its own direction, never the other one)
//! and a message that comes in one piece costs one read and one write, with no `poll` in between.
//!
//! **One message, one send.** Every message of at most the destination socket's send buffer
//! (`SO_SNDBUF`, read from the socket: the system's `net.core.wmem_default`, 208 KiB by default,
//! since the proxy leaves it as a peer's socket has it, except while a larger message goes on in
//! pieces, when it asks for 2 MiB, which the kernel doubles within net.core.wmem_max) is held until
//! it is whole and then sent with one `sendmsg`, header, body and descriptors together, as soon as
//! it is whole: the receiver sees
//! the message as its sender's one `sendmsg` would have queued it directly. This matters because
//! receivers read a body with one `recv` and treat a short read as an error (libvfio-user's server,
//! and every device built on it): Linux queues one `sendmsg` in pieces of at most
//! `min(sk_sndbuf / 2 - 64, SKB_MAX_HEAD(0) + 32 KiB)` bytes (36,544 on x86-64), waking the receiver
//! after each, and a `recv` returns what is queued when it runs, so a message of at most one piece
//! is never split by a direct connection, and one that fits the send buffer arrives whole when it
//! is alone on the connection (measured: `strict_receiver_*` in `tests/proxy.rs`). A message larger
//! than the send buffer, which no direct sender can queue at once either, goes on as it comes
//! (its transfer data by splice, see "Bulk data"), and so does one that carries more descriptors
//! than one `sendmsg` can (253), each piece with the descriptors that came with it. Reads are sized
//! so that a message's last read ends with it: the rest of a held message is read exactly, and
//! only a read between messages (at most 8 KiB while splicing is allowed, so that it does not copy
//! transfer data that could be spliced) may hold several. A partial message stays held until the
//! rest comes; at the end of the stream (or at a stop) what there is of it is sent on and recorded
//! as truncated.
//!
//! **Bytes and descriptors.** Every byte is forwarded unchanged, whatever it holds: garbage, a
//! 4 GiB `msg_size` (sent on as it comes), a message cut short by a disconnect. Descriptors (up to
//! the kernel's 253 per read; the control buffer holds that many, and a truncated control buffer is
//! reported) go with the message they came with. Linux may return in one `recvmsg` the end of one
//! `sendmsg` together with a later `sendmsg` that carried descriptors; it ends a read right after
//! the `sendmsg` that carried them (`unix_stream_read_generic`), and every vfio-user sender puts them
//! with a message's first byte, so a read's descriptors belong to the last message that starts in
//! it ([`vfu_codec::frame::msg_size`] on each header gives the boundaries), or, when none starts in
//! it, to the message it continues. The capture attaches them to the same message, the rule of
//! `capture-format.md`.
//!
//! **Twin socket.** When a VERSION reply carries descriptors and its capabilities say
//! `twin_socket: {supported: true, fd_index: i}` with `i` naming one of them, the proxy makes a
//! socketpair, sends the client its own end in place of descriptor `i`, keeps the server's socket, and
//! relays between the two as a connection of its own (its own capture interface), so DMA_READ and
//! DMA_WRITE on the twin socket are seen, forwarded and recorded like the main socket's traffic. The
//! reply's bytes are not changed: `fd_index` still names the same slot.
//!
//! **Disconnects.** End of stream on one side is passed on at once as a half-close
//! (`shutdown(SHUT_WR)` of the other side), so a peer that only half-closes keeps receiving. When the
//! peer has closed both directions (`POLLHUP`), the other side is shut down in both directions as well,
//! so the other peer's writes fail at once instead of at its next read. A write that fails (the
//! receiver is gone) is reported, the sender's socket is shut for reading so that it learns, and what
//! still arrives is recorded.
//!
//! **Recording never waits on printing; forwarding never waits on decoding.** A forwarder receives
//! into a buffer of a shared pool, hands a reference to that same buffer (a whole message, or a
//! piece of one too large to hold) to the recorder thread through a bounded channel (no copy, and
//! no allocation once the pool has grown), and only then forwards from it: a peer can answer a message only after receiving it, so the recorder always
//! sees a message before its reply, whichever thread carried each. The recorder frames each
//! direction into whole messages, writes the capture (one record per message, one interface per
//! connection) and offers each message to the printer thread (a copy, or for a message reassembled
//! from several reads the reassembly buffer itself), which decodes, validates, filters and renders
//! it. The two hand-offs behave differently, on purpose:
//!
//! - recorder → printer is **lossy**: the printer's queue is bounded (messages and bytes); when it is
//!   full (a slow terminal), the message is not printed and counted, and a line says how many were
//!   skipped. The capture still has them. Validation after such a gap may report findings that a
//!   complete view would not.
//! - forwarder → recorder is **lossless**: when the recorder's queue is full the forwarder waits
//!   for the recorder. That happens only if writing the capture is slower than the traffic (a disk
//!   that cannot keep up); the alternatives were losing records or buffering without bound, and the
//!   capture is the record of truth. Without `-w` the recorder does no I/O and cannot fall behind.
//!
//! **Bulk data.** When nothing needs the bytes of bulk transfers in memory (no `-x`; a capture
//! takes them as below), the opaque
//! data of a REGION_READ/WRITE, DMA_READ/WRITE or MIG_DATA_READ/WRITE too large to be sent whole
//! (larger than the destination's send buffer, see "One message, one send"; at least 64 KiB of
//! data; all of it that the read of the header and fixed part did not take) is moved with `splice(2)`
//! from the source socket into a pipe and from the pipe into the destination socket: the kernel
//! passes the pages along and the proxy never copies them, which is what lets a proxied 1 MiB
//! transfer run near the speed of a direct one. So that the read of a header does not also copy the
//! data queued behind it, a read that may start a message takes at most 8 KiB while splicing is
//! allowed. `splice` cannot carry SCM_RIGHTS descriptors, so it is used only for bytes known to
//! carry none: the bytes queued on the socket (`FIONREAD`) are read first, then `scm_fds:` in
//! `/proc/self/fdinfo/<socket>` must be 0 (no descriptor anywhere in the receive queue at that
//! moment), and only those queued bytes are spliced; on a kernel without `scm_fds:` (before 6.8),
//! or when either check fails, the ordinary `recvmsg` path runs. The recorder gets the length of
//! what went by and keeps only the message's head; where the whole message is needed it is laid out
//! as that head followed by zeros, in a buffer kept zeroed between messages (`pad`), so lines,
//! JSON, validation and the counts are unchanged (they never show transfer data) and the data is
//! never filled in byte by byte; [`Summary::spliced`] counts these bytes. `VFU_PROXY_SPLICE=0`
//! turns it off.
//!
//! **Bulk data with a capture.** With `-w`, the spliced bytes are also duplicated, still in the
//! kernel, with `tee(2)` from the pipe into a second pipe of the same direction (the tee pipe),
//! before they go on to the destination (recorded before forwarded, as every read). The recorder
//! writes such a message's record in place (`inplace`): when its first teed bytes come, it begins
//! the record's block in the file (block head, tags, the bytes read before), splices the teed
//! bytes from the tee pipe into the file as they come (read bytes of the message in between are
//! written there too), and when the message is whole (or the stream ends inside it) appends the
//! options and trailer and writes the lengths and the timestamp over the block's head. So the
//! transfer is copied once, by the kernel into the file, instead of four times (out of the source
//! socket, into the destination socket, into the recorder's reassembly, into the file), and the
//! record is byte for byte the one a read message gets. While a record is open in the file, the
//! other blocks (other directions' and connections' records) are held in memory and written after
//! it, so the file's records are in the order their messages began there, each with its own
//! timestamp (when it was complete); should more than `inplace::HOLD_MAX` wait (a transfer stalls
//! while others go on), the open record is read back into memory, the file cut back to its start,
//! and the message finished like a read one. One record is open in the file at a time: a second
//! large transfer meanwhile has its teed bytes read from the tee pipe into memory. Records are
//! written in place only into a regular file (its offsets can be written over); to anything else
//! (a pipe, a terminal) the capture needs the bytes in memory, and nothing is spliced. With a snap
//! length (`--snaplen`), only the spliced bytes the record keeps are teed (those within the snap
//! length of the message's start), and the record in place is cut there as the capture writer
//! cuts every other (its captured length the snap length, its original length the message's). A
//! full tee pipe makes the forwarder wait for the recorder, the capture's backpressure as below.
//!
//! **Spinning.** A thread that sleeps in `recvmsg` has to be woken when a message comes, and on a
//! virtual machine whose idle processors halt, that wake-up can cost tens of microseconds: more than
//! the rest of a round trip. So after forwarding a request, the client→server thread keeps polling
//! the client (`recvmsg` with `MSG_DONTWAIT`) for `--spin` microseconds (default 50) before it
//! sleeps: while requests follow each other, the next one is picked up at once. Only that direction
//! spins: a reply comes from a server that goes to sleep right after sending it, and the kernel can
//! run the woken thread on the processor the server leaves. Measured (BENCHMARKS.md), spinning on
//! the server→client side instead, or on whichever side forwarded last, made round trips slower,
//! not faster. At most one thread per processor beyond the first spins at a time, none on a single
//! processor, and an idle connection never spins. `--spin 0` turns it off.
//!
//! Both consumer threads batch: after a busy turn they sleep briefly instead of being woken per
//! message, so under load a forwarded message costs no wake-up system call.
//!
//! **Stopping.** [`ProxyHandle::stop`] (or SIGINT/SIGTERM in [`crate::cmd::proxy::run`]) wakes the
//! acceptor, which shuts down every socket, joins the connection threads, removes the listen socket
//! file, and lets the recorder write the messages left partial as `truncated` records and flush the
//! capture.

mod conn;
mod ctx;
mod event;
mod forward;
mod framing;
mod inplace;
mod pad;
mod pool;
mod print;
mod record;
pub(crate) mod sock;
mod splice;

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::capture::{AtomicFile, PcapngWriter};

use ctx::{Ctx, Registry};
pub use event::Summary;
use event::{NoteKind, RecEvent};
pub use print::{PrintOptions, Sink};

/// How many events (mostly whole messages, or pieces of up to 256 KiB of larger ones) may wait for
/// the recorder; a forwarder whose chunk finds the queue full waits (see "Recording never waits on
/// printing" above).
pub(crate) const RECORDER_QUEUE: usize = 64;

/// How to run a proxy.
pub struct Config {
    /// The socket clients connect to (created; a stale socket file is replaced).
    pub listen: PathBuf,
    /// The server's socket.
    pub connect: PathBuf,
    /// Permission bits of the listen socket.
    pub mode: u32,
    /// How long to retry a server that is not listening yet, per client.
    pub connect_timeout: Duration,
    /// Write a capture here.
    pub capture: Option<PathBuf>,
    /// Cut the capture's records to this many bytes of packet data (0: whole messages); see
    /// [`PcapngWriter::with_snaplen`].
    pub snaplen: u32,
    /// Print; `None` prints nothing at all.
    pub print: Option<PrintOptions>,
    /// How long the client→server thread of a connection keeps polling the client without sleeping
    /// after it forwarded a request, before it blocks (see "Spinning" in the module documentation).
    /// Zero: never.
    pub spin: Duration,
    /// Whether the data of transfers too large to be forwarded whole may go by `splice(2)` (see
    /// "Bulk data" in the module documentation). It never does when a capture or a hex dump needs
    /// the bytes, nor when the environment has `VFU_PROXY_SPLICE=0`.
    pub splice: bool,
}

impl Config {
    /// A configuration that forwards and records nothing else: no capture, no output, mode 0600,
    /// a 5 s connect timeout, spinning for [`DEFAULT_SPIN`].
    pub fn new(listen: impl Into<PathBuf>, connect: impl Into<PathBuf>) -> Self {
        Config {
            listen: listen.into(),
            connect: connect.into(),
            mode: 0o600,
            connect_timeout: Duration::from_secs(5),
            capture: None,
            snaplen: 0,
            print: None,
            spin: DEFAULT_SPIN,
            splice: true,
        }
    }
}

/// How long the client→server thread polls after forwarding before it sleeps, unless told otherwise.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(50);

/// The proxy: see [`Proxy::start`].
pub struct Proxy;

impl Proxy {
    /// Creates the capture file, binds the listen socket and starts serving in background threads.
    pub fn start(config: Config) -> io::Result<ProxyHandle> {
        if config.mode > 0o777 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "socket mode must be at most 0777",
            ));
        }
        // Written under a temporary name beside the path and renamed onto it when the proxy has
        // stopped and flushed it (`join`), so that a capture that failed leaves no partial file.
        let (pending, capture) = match &config.capture {
            Some(p) => {
                let (pending, f) = AtomicFile::create(p)?;
                let w = PcapngWriter::with_snaplen(inplace::CaptureOut::new(f), config.snaplen)?;
                (Some(pending), Some(w))
            }
            None => (None, None),
        };
        let listener = sock::listen(&config.listen, config.mode)?;
        let listen_id = std::fs::metadata(&config.listen)
            .map(|m| (m.dev(), m.ino()))
            .ok();
        let (stop_rx, stop_tx) = UnixStream::pair()?;
        stop_rx.set_nonblocking(true)?;
        stop_tx.set_nonblocking(true)?;

        let (tx, rx) = sync_channel(RECORDER_QUEUE);
        // A hex dump needs the bytes in memory; a capture takes them from the tee pipe when its
        // records can be written in place (a regular file), else needs them in memory too.
        let needs_bytes = config.print.as_ref().is_some_and(|p| p.style.hex)
            || capture.as_ref().is_some_and(|w| !w.get_ref().in_place());
        let tee_cap = match config.snaplen {
            0 => u64::MAX,
            n => u64::from(n).saturating_sub(vfu_codec::capture::pdu_tags_len(
                vfu_codec::capture::DISSECTOR_VFIO_USER,
            ) as u64),
        };
        let splice_off = std::env::var_os("VFU_PROXY_SPLICE").is_some_and(|v| v == "0");
        let splice = config.splice && !needs_bytes && !splice_off;
        let ctx = Arc::new(Ctx {
            server: config.connect.clone(),
            splice,
            tee: splice && capture.is_some(),
            tee_cap,
            connect_timeout: config.connect_timeout,
            spin: config.spin,
            spinning: AtomicUsize::new(0),
            max_spinning: std::thread::available_parallelism().map_or(0, |n| n.get() - 1),
            pool: pool::Pool::new(),
            stopping: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            registry: Mutex::new(Registry {
                next_id: 0,
                sockets: HashMap::new(),
                tx: Some(tx),
            }),
        });
        let stats = Arc::new(Mutex::new(Summary::default()));

        let (printq, printer) = match config.print {
            Some(p) => {
                let q = Arc::new(print::Queue::new());
                let wants_messages = p.messages || p.validate.is_some();
                let q2 = Arc::clone(&q);
                let h = std::thread::Builder::new()
                    .name("vfu-proxy-print".into())
                    .spawn(move || print::run(&q2, p))?;
                (Some((q, wants_messages)), Some(h))
            }
            None => (None, None),
        };
        let recorder = {
            let ctx = Arc::clone(&ctx);
            let stats = Arc::clone(&stats);
            std::thread::Builder::new()
                .name("vfu-proxy-record".into())
                .spawn(move || record::run(&ctx.pool, &rx, capture, printq, &stats))?
        };
        let acceptor = {
            let ctx = Arc::clone(&ctx);
            let listen = config.listen.clone();
            std::thread::Builder::new()
                .name("vfu-proxy-accept".into())
                .spawn(move || accept_loop(&ctx, listener, stop_rx, &listen, listen_id))?
        };
        Ok(ProxyHandle {
            ctx,
            stats,
            stop_tx,
            acceptor: Some(acceptor),
            recorder: Some(recorder),
            printer,
            pending,
        })
    }
}

/// A running proxy. Dropping it stops it.
pub struct ProxyHandle {
    ctx: Arc<Ctx>,
    stats: Arc<Mutex<Summary>>,
    stop_tx: UnixStream,
    acceptor: Option<JoinHandle<()>>,
    recorder: Option<JoinHandle<io::Result<Summary>>>,
    printer: Option<JoinHandle<()>>,
    /// The capture's temporary file, renamed onto its path once the recorder has written it.
    pending: Option<AtomicFile>,
}

impl ProxyHandle {
    /// Asks the proxy to stop: every connection is closed, the capture flushed. Returns at once; see
    /// [`ProxyHandle::wait`].
    pub fn stop(&self) {
        let _ = (&self.stop_tx).write(&[1]);
    }

    /// A socket whose writing one byte stops the proxy, as [`stop`](Self::stop) does (for a signal
    /// handler: it is non-blocking).
    pub fn stopper(&self) -> io::Result<UnixStream> {
        self.stop_tx.try_clone()
    }

    /// Client connections being served now.
    pub fn active_connections(&self) -> usize {
        self.ctx.active.load(Ordering::SeqCst)
    }

    /// The counts so far (updated by the recorder after each batch of messages).
    pub fn stats(&self) -> Summary {
        self.stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits until the proxy has stopped (after [`stop`](Self::stop), or a signal in
    /// [`crate::cmd::proxy::run`]) and everything is flushed; returns the final counts, or the error
    /// that ended the capture.
    pub fn wait(mut self) -> io::Result<Summary> {
        self.join()
    }

    /// [`stop`](Self::stop), then [`wait`](Self::wait).
    pub fn shutdown(self) -> io::Result<Summary> {
        self.stop();
        self.wait()
    }

    fn join(&mut self) -> io::Result<Summary> {
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
        let summary = match self.recorder.take() {
            Some(h) => h
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the recorder thread panicked"))),
            None => Ok(self.stats()),
        };
        if let Some(h) = self.printer.take() {
            let _ = h.join();
        }
        // The recorder has flushed and closed the capture: it appears at its path now, or (when
        // writing it failed) not at all.
        match (summary, self.pending.take()) {
            (Ok(s), Some(pending)) => pending.commit().map(|()| s),
            (summary, _) => summary,
        }
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        if self.acceptor.is_some() {
            self.stop();
            let _ = self.join();
        }
    }
}

fn accept_loop(
    ctx: &Arc<Ctx>,
    listener: OwnedFd,
    stop: UnixStream,
    listen: &Path,
    listen_id: Option<(u64, u64)>,
) {
    use rustix::event::{PollFd, PollFlags};
    let mut conns: Vec<JoinHandle<()>> = Vec::new();
    let mut reported_accept_error = false;
    loop {
        let mut fds = [
            PollFd::new(&listener, PollFlags::IN),
            PollFd::new(&stop, PollFlags::IN),
        ];
        match rustix::event::poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
        if !fds[1].revents().is_empty() {
            break;
        }
        if fds[0].revents().is_empty() {
            continue;
        }
        let client = match rustix::net::accept_with(&listener, rustix::net::SocketFlags::CLOEXEC) {
            Ok(c) => c,
            Err(
                rustix::io::Errno::AGAIN | rustix::io::Errno::INTR | rustix::io::Errno::CONNABORTED,
            ) => continue,
            Err(e) => {
                // Out of descriptors or memory: keep serving the connections we have and try again.
                if !reported_accept_error {
                    reported_accept_error = true;
                    note_global(ctx, format!("accept: {e}; retrying"));
                }
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        reported_accept_error = false;
        let Some((conn, tx)) = ctx.open(None) else {
            break;
        };
        ctx.active.fetch_add(1, Ordering::SeqCst);
        let c = Arc::clone(ctx);
        let spawned = std::thread::Builder::new()
            .name(format!("vfu-proxy-c{conn}"))
            .stack_size(256 << 10)
            .spawn(move || conn::connection(&c, conn, client, tx));
        match spawned {
            Ok(h) => conns.push(h),
            Err(e) => {
                ctx.active.fetch_sub(1, Ordering::SeqCst);
                note_global(
                    ctx,
                    format!("c{conn}: cannot start a thread ({e}); connection closed"),
                );
            }
        }
        conns.retain(|h| !h.is_finished());
    }
    ctx.shutdown_all();
    for h in conns {
        let _ = h.join();
    }
    drop(listener);
    if let Ok(m) = std::fs::metadata(listen)
        && Some((m.dev(), m.ino())) == listen_id
    {
        let _ = std::fs::remove_file(listen);
    }
    // The last sender: the recorder drains what is left and ends.
    ctx.registry().tx = None;
    let mut b = [0u8; 16];
    let _ = (&stop).read(&mut b);
}

fn note_global(ctx: &Ctx, text: String) {
    let tx = ctx.registry().tx.clone();
    if let Some(tx) = tx {
        let _ = tx.send(RecEvent::Note {
            conn: u32::MAX,
            kind: NoteKind::Info,
            text,
        });
    }
}
