//! The splice path: the opaque data of a transfer too large to be sent whole moves from the source
//! socket into a pipe and from the pipe into the destination with `splice(2)`, never copied through
//! the proxy (see "Bulk data" in the module documentation of [`super`]).

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::pipe::{SpliceFlags, splice};

/// The least opaque data in a message for the splice path to take it (below this, `recvmsg` and
/// `sendmsg` are as cheap). Once a message qualifies, all of its opaque data that the first read did
/// not take is spliced, down to its last byte.
pub(super) const SPLICE_MIN: u64 = 64 << 10;

/// The pipe size asked for on the splice path (the kernel allows 1 MiB unless
/// `fs.pipe-max-size` says otherwise).
const SPLICE_PIPE: usize = 1 << 20;

/// Whether a direction splices.
pub(super) enum Splice {
    /// Not allowed here, or not possible (no pipe, or no `scm_fds:` in fdinfo).
    Off,
    /// Allowed; tried at the first large transfer.
    Untried,
    Ready(Splicer),
}

/// The splice path of one direction: a pipe, and the source socket's fdinfo file to learn whether any
/// descriptor waits in its receive queue.
pub(super) struct Splicer {
    pipe_r: OwnedFd,
    pipe_w: OwnedFd,
    pipe_size: usize,
    fdinfo: std::fs::File,
}

impl Splicer {
    /// `None` when a pipe cannot be made or the kernel does not report `scm_fds:` (then the
    /// direction always reads and writes).
    pub(super) fn new(src: BorrowedFd<'_>) -> Option<Splicer> {
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

impl Splicer {
    /// Moves up to `want` bytes that are already queued on `src` (waiting for some when none are),
    /// and that carry no descriptor, to `dst`, telling `record` of each span before it goes on.
    /// `None` when nothing may be moved (descriptors queued, or the kernel cannot say); else the
    /// bytes moved and the error that ended the writing, if one did (the destination is gone).
    pub(super) fn move_queued(
        &self,
        src: &OwnedFd,
        dst: &OwnedFd,
        want: u64,
        mut record: impl FnMut(u64),
    ) -> Option<(u64, Option<io::Error>)> {
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
        let mut moved = 0u64;
        let mut failed = None;
        while moved < n && failed.is_none() {
            let chunk = (n - moved).min(self.pipe_size as u64) as usize;
            let k = match splice(src, None, &self.pipe_w, None, chunk, SpliceFlags::MOVE) {
                Ok(0) => break,
                Ok(k) => k,
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => break,
            };
            record(k as u64);
            moved += k as u64;
            let mut out = 0;
            while out < k {
                match splice(&self.pipe_r, None, dst, None, k - out, SpliceFlags::MOVE) {
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
                    match rustix::io::read(&self.pipe_r, &mut sink[..left.min(4096)]) {
                        Ok(0) | Err(_) => break,
                        Ok(j) => left -= j,
                    }
                }
            }
        }
        Some((moved, failed))
    }
}
