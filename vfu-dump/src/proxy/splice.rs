//! The splice path: the opaque data of a transfer too large to be sent whole moves from the source
//! socket into a pipe and from the pipe into the destination with `splice(2)`, never copied through
//! the proxy (see "Bulk data" in the module documentation of [`super`]). With a capture, `tee(2)`
//! duplicates the pipe's pages into a tee pipe, from which the recorder splices them into the
//! capture file (see "Bulk data with a capture"). There are two tee pipes, taken in turn: the
//! recorder's splice into the file holds its pipe's lock for as long as the file takes the bytes,
//! and a `tee` into that pipe meanwhile would wait for the lock (the kernel spinning on it).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use rustix::pipe::{SpliceFlags, splice, tee};

/// The least opaque data in a message for the splice path to take it (below this, `recvmsg` and
/// `sendmsg` are as cheap). Once a message qualifies, all of its opaque data that the first read did
/// not take is spliced, down to its last byte.
pub(super) const SPLICE_MIN: u64 = 64 << 10;

/// The pipe size asked for on the splice path, for both pipes (the kernel allows 1 MiB unless
/// `fs.pipe-max-size` says otherwise).
const SPLICE_PIPE: usize = 1 << 20;

/// How many tee pipes a direction takes in turn (see the module documentation).
const TEE_PIPES: usize = 2;

/// Whether a direction splices.
pub(super) enum Splice {
    /// Not allowed here, or not possible (no pipe, or no `scm_fds:` in fdinfo).
    Off,
    /// Allowed; tried at the first large transfer.
    Untried,
    Ready(Splicer),
}

/// The splice path of one direction: a pipe, the tee pipes when there is a capture, and the source
/// socket's fdinfo file to learn whether any descriptor waits in its receive queue.
pub(super) struct Splicer {
    pipe_r: OwnedFd,
    pipe_w: OwnedFd,
    pipe_size: usize,
    /// The tee pipes (none without a capture): read end (shared with the recorder, which empties
    /// it) and write end of each.
    tee: Vec<(Arc<OwnedFd>, OwnedFd)>,
    /// The tee pipe the next span goes to.
    turn: std::cell::Cell<usize>,
    fdinfo: std::fs::File,
}

/// What [`Splicer::move_queued`] did.
pub(super) struct Moved {
    /// Bytes taken from the source (all of them recorded, and forwarded unless `failed`).
    pub(super) moved: u64,
    /// The error that ended the writing: the destination is gone.
    pub(super) failed: Option<io::Error>,
    /// `tee` failed: the bytes it could not duplicate were read out of the pipe and recorded as
    /// read; the direction must read from now on.
    pub(super) tee_failed: bool,
}

/// Makes a pipe of (about) [`SPLICE_PIPE`] bytes; returns its ends and its size.
fn pipe() -> Option<(OwnedFd, OwnedFd, usize)> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).ok()?;
    let size = rustix::pipe::fcntl_setpipe_size(&w, SPLICE_PIPE)
        .or_else(|_| rustix::pipe::fcntl_getpipe_size(&w))
        .ok()?;
    Some((r, w, size))
}

impl Splicer {
    /// `None` when a pipe cannot be made or the kernel does not report `scm_fds:` (then the
    /// direction always reads and writes). `tee`: the recorder wants the bytes (a capture).
    pub(super) fn new(src: BorrowedFd<'_>, tee: bool) -> Option<Splicer> {
        use std::os::fd::AsRawFd;
        let (pipe_r, pipe_w, pipe_size) = pipe()?;
        let mut pipes = Vec::new();
        if tee {
            for _ in 0..TEE_PIPES {
                let (r, w, _) = pipe()?;
                pipes.push((Arc::new(r), w));
            }
        }
        let fdinfo = std::fs::File::open(format!("/proc/self/fdinfo/{}", src.as_raw_fd())).ok()?;
        let s = Splicer {
            pipe_r,
            pipe_w,
            pipe_size,
            tee: pipes,
            turn: std::cell::Cell::new(0),
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

impl Splicer {
    /// Moves up to `want` bytes that are already queued on `src` (waiting for some when none are),
    /// and that carry no descriptor, to `dst`. Each span is recorded before it goes on: `record(k,
    /// tee)` once its `k` bytes are in the pipe (and, with a capture, duplicated into the tee pipe
    /// `tee`, whose read end the recorder empties; only the first `tee_want` bytes are, the rest
    /// are recorded with no tee pipe).
    /// Should `tee` fail, what it could not duplicate is read out of the pipe, given to `read` and
    /// sent on from there. `None` when nothing may be moved (descriptors queued, or the kernel
    /// cannot say).
    pub(super) fn move_queued(
        &self,
        src: &OwnedFd,
        dst: &OwnedFd,
        want: u64,
        mut tee_want: u64,
        mut record: impl FnMut(u64, Option<&Arc<OwnedFd>>),
        mut read: impl FnMut(Arc<Vec<u8>>),
    ) -> Option<Moved> {
        // Queued bytes first, then no descriptor anywhere in the queue: then those bytes carry none.
        // Inside a large transfer, wait for data here rather than in `recvmsg`, which would copy it.
        let mut queued = rustix::io::ioctl_fionread(src).unwrap_or(0);
        if queued == 0 {
            use rustix::event::{PollFd, PollFlags, poll};
            let mut p = [PollFd::new(src, PollFlags::IN)];
            if poll(&mut p, None).is_err() {
                return None;
            }
            queued = rustix::io::ioctl_fionread(src).unwrap_or(0);
        }
        let n = queued.min(want);
        if n == 0 || self.fds_queued() != Some(0) {
            return None;
        }
        let mut done = Moved {
            moved: 0,
            failed: None,
            tee_failed: false,
        };
        while done.moved < n && done.failed.is_none() && !done.tee_failed {
            let chunk = (n - done.moved).min(self.pipe_size as u64) as usize;
            let k = match splice(src, None, &self.pipe_w, None, chunk, SpliceFlags::MOVE) {
                Ok(0) => break,
                Ok(k) => k,
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => break,
            };
            done.moved += k as u64;
            // The `k` bytes in the pipe: recorded span by span (a `tee` may duplicate only part of
            // them when the tee pipe is full, and always duplicates from the pipe's head), each span
            // then sent on, or dropped once the destination is gone.
            let mut left = k;
            while left > 0 {
                let turn = self.turn.get();
                let tee_pipe = self.tee.get(turn).filter(|_| tee_want > 0);
                let span = match tee_pipe {
                    None => left,
                    Some((_, tee_w)) => {
                        let t = left.min(usize::try_from(tee_want).unwrap_or(usize::MAX));
                        match tee(&self.pipe_r, tee_w, t, SpliceFlags::empty()) {
                            Ok(t) if t > 0 => t,
                            Err(rustix::io::Errno::INTR) => continue,
                            _ => {
                                // Read what could not be duplicated and hand it over as read bytes.
                                done.tee_failed = true;
                                let bytes = Arc::new(read_pipe(&self.pipe_r, left));
                                read(Arc::clone(&bytes));
                                if done.failed.is_none()
                                    && let Err(e) = super::sock::send_all(dst.as_fd(), &bytes, &[])
                                {
                                    done.failed = Some(e);
                                }
                                break;
                            }
                        }
                    }
                };
                let teed = tee_pipe.map(|(r, _)| r);
                if teed.is_some() {
                    self.turn.set((turn + 1) % self.tee.len());
                    tee_want -= span as u64;
                }
                record(span as u64, teed);
                let sent = if done.failed.is_none() {
                    let (sent, failed) = self.to_destination(dst, span);
                    done.failed = failed;
                    sent
                } else {
                    0
                };
                if sent < span {
                    // The destination is gone: those bytes are recorded and cannot be delivered.
                    drain(&self.pipe_r, span - sent);
                }
                left -= span;
            }
        }
        Some(done)
    }

    /// Splices `k` bytes from the pipe's head into `dst`; returns how many went, and the error that
    /// stopped it, if one did.
    fn to_destination(&self, dst: &OwnedFd, k: usize) -> (usize, Option<io::Error>) {
        let mut out = 0;
        while out < k {
            match splice(&self.pipe_r, None, dst, None, k - out, SpliceFlags::MOVE) {
                Ok(0) => return (out, Some(io::Error::from(io::ErrorKind::WriteZero))),
                Ok(j) => out += j,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return (out, Some(e.into())),
            }
        }
        (out, None)
    }
}

/// Reads `k` bytes from a pipe that holds them.
pub(super) fn read_pipe(pipe: &OwnedFd, k: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    read_pipe_into(pipe, k, &mut bytes);
    bytes
}

/// Reads `k` bytes from a pipe into `buf`'s end.
pub(super) fn read_pipe_into(pipe: &OwnedFd, k: usize, buf: &mut Vec<u8>) {
    let from = buf.len();
    buf.resize(from + k, 0);
    let mut got = 0;
    while got < k {
        match rustix::io::read(pipe.as_fd(), &mut buf[from + got..]) {
            Ok(0) => break,
            Ok(j) => got += j,
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => break,
        }
    }
    buf.truncate(from + got);
}

/// Takes `k` bytes out of a pipe that holds them, for nothing.
pub(super) fn drain(pipe: &OwnedFd, k: usize) {
    const SINK: usize = 16 << 10;
    let mut sink = [0u8; SINK];
    let mut left = k;
    while left > 0 {
        match rustix::io::read(pipe.as_fd(), &mut sink[..left.min(SINK)]) {
            Ok(0) => break,
            Ok(j) => left -= j,
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => break,
        }
    }
}
