//! Socket plumbing: the listen socket (stale file replaced, mode set and listening before its path
//! appears; whether a socket file is live asked of the kernel, not by connecting), the connection
//! to the server (retried while it is not listening yet), `recvmsg`/`sendmsg` with
//! SCM_RIGHTS.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
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
/// left by a process that died); a live socket or any other kind of file is an error. Whether a
/// socket listens is asked of the kernel ([`listening_on`]), never found out by connecting: a
/// running proxy would accept that connection and open one to its server, and a server that serves
/// one client would serve the phantom and be gone.
///
/// The socket is bound under a temporary name in the same directory, its mode set, made to listen,
/// and only then renamed onto `path`: the path appears when it accepts connections, with its final
/// mode, so a client that waits for the path and connects at once is never refused. (When the
/// temporary name would be too long for a socket address, the socket is bound at `path` itself and
/// made to listen right after its mode is set: a client may then be refused in between.)
pub(crate) fn listen(path: &Path, mode: u32) -> io::Result<OwnedFd> {
    let stale = match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a socket; not replacing it",
                    path.display()
                ),
            ));
        }
        Ok(_) => match listening_on(path) {
            Ok(false) => true,
            Ok(true) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "{}: another process is listening on this socket",
                        path.display()
                    ),
                ));
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!(
                        "{}: a socket file exists and the kernel cannot say whether anyone listens on it ({e}); remove it if it is stale",
                        path.display()
                    ),
                ));
            }
        },
        Err(_) => false,
    };
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
    let set_mode = |p: &Path| rustix::fs::chmod(p, rustix::fs::Mode::from_raw_mode(mode));
    let temp = temp_name(path);
    match temp
        .as_ref()
        .and_then(|t| Some((t, SocketAddrUnix::new(t.as_path()).ok()?)))
    {
        Some((temp, taddr)) => {
            let _ = std::fs::remove_file(temp);
            rustix::net::bind(&fd, &taddr)?;
            let ready = set_mode(temp)
                .map_err(io::Error::from)
                .and_then(|()| Ok(rustix::net::listen(&fd, 128)?))
                .and_then(|()| std::fs::rename(temp, path));
            if let Err(e) = ready {
                let _ = std::fs::remove_file(temp);
                return Err(e);
            }
        }
        None => {
            if stale {
                std::fs::remove_file(path)?;
            }
            rustix::net::bind(&fd, &addr)?;
            if let Err(e) = set_mode(path) {
                let _ = std::fs::remove_file(path);
                return Err(e.into());
            }
            rustix::net::listen(&fd, 128)?;
        }
    }
    Ok(fd)
}

/// The temporary name the listen socket is bound under before it is renamed onto `path`: a hidden
/// file in the same directory (a rename never crosses file systems), named after the process.
fn temp_name(path: &Path) -> Option<std::path::PathBuf> {
    use std::sync::atomic::AtomicU32;
    static N: AtomicU32 = AtomicU32::new(0);
    let name = path.file_name()?.to_string_lossy();
    let n = N.fetch_add(1, Ordering::Relaxed);
    let temp = format!(".{name}.{}.{n}.tmp", std::process::id());
    Some(path.with_file_name(temp))
}

/// Whether a socket is listening on the socket file at `path`, asked of the kernel without
/// connecting: NETLINK_SOCK_DIAG (what `ss -xl` uses) lists every listening UNIX socket with the
/// device and inode of the file it is bound to, which stay the same when that file is renamed.
/// An error when the kernel cannot be asked (built without `CONFIG_UNIX_DIAG`).
pub(crate) fn listening_on(path: &Path) -> io::Result<bool> {
    use rustix::net::netlink;
    let st = rustix::fs::stat(path)?;
    // The kernel reports the device as its own dev_t (major << 20 | minor) and the inode in 32 bits.
    let want_dev =
        (u64::from(rustix::fs::major(st.st_dev)) << 20) | u64::from(rustix::fs::minor(st.st_dev));
    let want_ino = st.st_ino as u32;
    let nl = rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        Some(netlink::SOCK_DIAG),
    )?;
    // struct nlmsghdr, then struct unix_diag_req (linux/sock_diag.h, linux/unix_diag.h).
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const NLM_F_REQUEST_DUMP: u16 = 0x1 | 0x300;
    const TCP_LISTEN: u32 = 10;
    const UDIAG_SHOW_VFS: u32 = 0x2;
    const NLMSG_ERROR: u16 = 2;
    const NLMSG_DONE: u16 = 3;
    const UNIX_DIAG_VFS: u16 = 1;
    let mut req = [0u8; 40];
    req[0..4].copy_from_slice(&40u32.to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req[6..8].copy_from_slice(&NLM_F_REQUEST_DUMP.to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    req[16] = 1; // AF_UNIX
    req[20..24].copy_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
    req[28..32].copy_from_slice(&UDIAG_SHOW_VFS.to_ne_bytes());
    req[32..40].fill(0xff); // no cookie
    rustix::net::sendto(
        &nl,
        &req,
        SendFlags::empty(),
        &netlink::SocketAddrNetlink::new(0, 0),
    )?;
    let mut buf = vec![0u8; 32 << 10];
    let u16_at = |b: &[u8], i: usize| {
        b.get(i..i + 2)
            .map_or(0, |x| u16::from_ne_bytes([x[0], x[1]]))
    };
    let u32_at = |b: &[u8], i: usize| {
        b.get(i..i + 4)
            .map_or(0, |x| u32::from_ne_bytes([x[0], x[1], x[2], x[3]]))
    };
    let mut found = false;
    loop {
        let (n, _) = rustix::net::recv(&nl, &mut buf[..], RecvFlags::empty())?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        let mut pos = 0;
        while pos + 16 <= n {
            let len = u32_at(&buf, pos) as usize;
            let ty = u16_at(&buf, pos + 4);
            if len < 16 || pos + len > n {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a malformed sock_diag answer",
                ));
            }
            match ty {
                NLMSG_DONE => return Ok(found),
                NLMSG_ERROR => {
                    let errno = u32_at(&buf, pos + 16) as i32;
                    return Err(io::Error::from_raw_os_error(errno.saturating_neg()));
                }
                _ => {}
            }
            // struct unix_diag_msg (16 bytes), then attributes (struct rtattr, 4-byte aligned).
            let msg = &buf[pos + 16..pos + len];
            if msg.get(2).copied() == Some(TCP_LISTEN as u8) {
                let mut a = 16;
                while a + 4 <= msg.len() {
                    let alen = usize::from(u16_at(msg, a));
                    if alen < 4 || a + alen > msg.len() {
                        break;
                    }
                    if u16_at(msg, a + 2) == UNIX_DIAG_VFS && alen >= 12 {
                        let ino = u32_at(msg, a + 4);
                        let dev = u64::from(u32_at(msg, a + 8));
                        found |= ino == want_ino && dev == want_dev;
                    }
                    a += (alen + 3) & !3;
                }
            }
            pos += (len + 3) & !3;
        }
    }
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
