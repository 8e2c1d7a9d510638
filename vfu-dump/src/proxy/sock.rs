//! Socket plumbing: the listen socket (stale file replaced, mode set before anyone can connect), the
//! connection to the server (retried while it is not listening yet), `recvmsg`/`sendmsg` with
//! SCM_RIGHTS.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};

/// The kernel's limit on descriptors in one SCM_RIGHTS message (`SCM_MAX_FD`): a `sendmsg` with more
/// fails with EINVAL, so one `recvmsg` never returns more.
pub(crate) const MAX_FDS: usize = 253;

/// Control-message space for [`MAX_FDS`] descriptors.
pub(crate) const CMSG_SPACE: usize = rustix::cmsg_space!(ScmRights(MAX_FDS));

/// Creates the listen socket at `path` with permission bits `mode`.
///
/// An existing file at `path` is replaced only when it is a socket nobody listens on (a stale socket
/// left by a process that died); a live socket or any other kind of file is an error. The socket is
/// bound, its mode set, and only then does it listen, so no connection is accepted while it still has
/// the umask's mode (connecting to a bound socket that is not listening is refused).
pub(crate) fn listen(path: &Path, mode: u32) -> io::Result<OwnedFd> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a socket; not replacing it",
                    path.display()
                ),
            ));
        }
        match UnixStream::connect(path) {
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "{}: another process is listening on this socket",
                        path.display()
                    ),
                ));
            }
            Err(_) => std::fs::remove_file(path)?,
        }
    }
    let addr = SocketAddrUnix::new(path).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{}: not usable as a socket path ({e}); the limit is 107 bytes",
                path.display()
            ),
        )
    })?;
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    rustix::net::bind(&fd, &addr)?;
    if let Err(e) = rustix::fs::chmod(path, rustix::fs::Mode::from_raw_mode(mode)) {
        let _ = std::fs::remove_file(path);
        return Err(e.into());
    }
    rustix::net::listen(&fd, 128)?;
    Ok(fd)
}

/// Connects to the server at `path`, retrying every 10 ms while it does not exist or refuses (it is
/// not listening yet), for at most `timeout`, or until `stop` is set.
pub(crate) fn connect(path: &Path, timeout: Duration, stop: &AtomicBool) -> io::Result<OwnedFd> {
    let addr = SocketAddrUnix::new(path)?;
    let start = Instant::now();
    loop {
        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )?;
        match rustix::net::connect(&fd, &addr) {
            Ok(()) => return Ok(fd),
            Err(Errno::INTR) => continue,
            Err(e @ (Errno::NOENT | Errno::CONNREFUSED | Errno::AGAIN)) => {
                if start.elapsed() >= timeout || stop.load(Ordering::Relaxed) {
                    return Err(e.into());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// What one `recvmsg` brought.
pub(crate) struct Received {
    /// Bytes read; 0 at the end of the stream.
    pub(crate) len: usize,
    /// The kernel cut the control data short: descriptors were lost (closed by the kernel).
    pub(crate) ctrunc: bool,
}

/// Reads into `buf`, appending any descriptors that came with the bytes to `fds`. Retries EINTR;
/// a connection reset reads as the end of the stream.
pub(crate) fn recv(
    src: BorrowedFd<'_>,
    buf: &mut [u8],
    space: &mut [MaybeUninit<u8>; CMSG_SPACE],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<Received> {
    recv_with(src, buf, space, fds, RecvFlags::CMSG_CLOEXEC)
}

/// [`recv`] that does not wait: `Ok(None)` when nothing is queued.
pub(crate) fn try_recv(
    src: BorrowedFd<'_>,
    buf: &mut [u8],
    space: &mut [MaybeUninit<u8>; CMSG_SPACE],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<Option<Received>> {
    match recv_with(
        src,
        buf,
        space,
        fds,
        RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT,
    ) {
        Ok(r) => Ok(Some(r)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

fn recv_with(
    src: BorrowedFd<'_>,
    buf: &mut [u8],
    space: &mut [MaybeUninit<u8>; CMSG_SPACE],
    fds: &mut Vec<OwnedFd>,
    flags: RecvFlags,
) -> io::Result<Received> {
    loop {
        let mut ctl = RecvAncillaryBuffer::new(space);
        let r = rustix::net::recvmsg(src, &mut [io::IoSliceMut::new(buf)], &mut ctl, flags);
        match r {
            Ok(m) => {
                for msg in ctl.drain() {
                    if let RecvAncillaryMessage::ScmRights(it) = msg {
                        fds.extend(it);
                    }
                }
                return Ok(Received {
                    len: m.bytes,
                    ctrunc: m.flags.contains(ReturnFlags::CTRUNC),
                });
            }
            Err(Errno::INTR) => continue,
            Err(Errno::CONNRESET) => {
                return Ok(Received {
                    len: 0,
                    ctrunc: false,
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Sends all of `data`, with `fds` on the first `sendmsg` (the kernel attaches them to the first byte
/// of that send, as the original sender did). Retries EINTR and partial sends; never raises SIGPIPE.
pub(crate) fn send_all(dst: BorrowedFd<'_>, data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let mut off = 0;
    let mut with_fds = !fds.is_empty();
    let mut space = [MaybeUninit::<u8>::uninit(); CMSG_SPACE];
    while off < data.len() {
        let mut ctl = SendAncillaryBuffer::new(&mut space);
        if with_fds && !ctl.push(SendAncillaryMessage::ScmRights(fds)) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} descriptors do not fit one message", fds.len()),
            ));
        }
        match rustix::net::sendmsg(
            dst,
            &[io::IoSlice::new(&data[off..])],
            &mut ctl,
            SendFlags::NOSIGNAL,
        ) {
            Ok(n) => {
                off += n;
                with_fds = false;
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// `shutdown(2)`, ignoring "not connected" (the peer went first).
pub(crate) fn shutdown(fd: impl AsFd, how: rustix::net::Shutdown) {
    let _ = rustix::net::shutdown(fd, how);
}

/// Whether the peer of a connected socket has closed its end entirely (both directions), as opposed
/// to a half-close: poll reports POLLHUP only then.
pub(crate) fn peer_gone(fd: BorrowedFd<'_>) -> bool {
    use rustix::event::{PollFd, PollFlags};
    let mut p = [PollFd::new(&fd, PollFlags::OUT)];
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match rustix::event::poll(&mut p, Some(&zero)) {
        Ok(_) => p[0].revents().intersects(PollFlags::HUP | PollFlags::ERR),
        Err(_) => false,
    }
}
