//! The live socket: connecting (retried while the peer is not listening yet), listening, sending a
//! message with descriptors, and receiving whole messages with the descriptors that came with them.
//!
//! The proxy has equivalents in `proxy/sock.rs`; its module is private to the proxy, so the replay
//! keeps these few calls of its own.

use std::collections::VecDeque;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SocketAddrUnix,
    SocketFlags, SocketType,
};
use vfu_codec::frame::{Frame, frame};

use crate::capture::MAX_RECORD_LEN;

/// The kernel's limit on descriptors in one SCM_RIGHTS message (`SCM_MAX_FD`).
pub(crate) const MAX_FDS: usize = 253;

const CMSG_SPACE: usize = rustix::cmsg_space!(ScmRights(MAX_FDS));

fn socket() -> io::Result<OwnedFd> {
    Ok(rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

fn unix_addr(path: &Path) -> io::Result<SocketAddrUnix> {
    SocketAddrUnix::new(path).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not usable as a socket path ({e}); the limit is 107 bytes"),
        )
    })
}

/// Connects to `path`, retrying every 10 ms for at most `timeout` while nobody listens there yet.
pub(crate) fn connect(path: &Path, timeout: Duration) -> io::Result<OwnedFd> {
    let addr = unix_addr(path)?;
    let start = Instant::now();
    loop {
        let fd = socket()?;
        match rustix::net::connect(&fd, &addr) {
            Ok(()) => return Ok(fd),
            Err(Errno::INTR) => {}
            Err(e @ (Errno::NOENT | Errno::CONNREFUSED | Errno::AGAIN)) => {
                if start.elapsed() >= timeout {
                    return Err(e.into());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Listens on `path` (mode 0600). A stale socket file nobody listens on is replaced; a live socket
/// or any other file is an error.
pub(crate) fn listen(path: &Path) -> io::Result<OwnedFd> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "exists and is not a socket; not replacing it",
            ));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "another process is listening on this socket",
            ));
        }
        std::fs::remove_file(path)?;
    }
    let addr = unix_addr(path)?;
    let fd = socket()?;
    rustix::net::bind(&fd, &addr)?;
    rustix::fs::chmod(path, rustix::fs::Mode::from_raw_mode(0o600))?;
    rustix::net::listen(&fd, 1)?;
    Ok(fd)
}

/// Accepts one connection.
pub(crate) fn accept(listener: &OwnedFd) -> io::Result<OwnedFd> {
    loop {
        match rustix::net::accept_with(listener, SocketFlags::CLOEXEC) {
            Ok(fd) => return Ok(fd),
            Err(Errno::INTR | Errno::CONNABORTED) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

// Sending (descriptors on the first byte, no SIGPIPE) and shutdown are the proxy's.
pub(crate) use crate::proxy::sock::{send_all as send, shutdown};

/// Receives on a thread of its own, so that the peer is never blocked writing to the replay while
/// the replay is blocked writing to it (a large DMA_WRITE against a large REGION_WRITE).
pub(crate) struct Reader {
    rx: Receiver<io::Result<Incoming>>,
    thread: Option<JoinHandle<()>>,
    done: bool,
}

impl Reader {
    /// Starts receiving on a duplicate of `fd`.
    pub(crate) fn start(fd: &OwnedFd) -> io::Result<Reader> {
        let mut wire = Wire::new(fd.try_clone()?);
        let (tx, rx) = sync_channel(64);
        let thread = std::thread::Builder::new()
            .name("vfu-replay-recv".into())
            .spawn(move || {
                loop {
                    let r = wire.recv();
                    let last = !matches!(r, Ok(Incoming::Message(..)));
                    if tx.send(r).is_err() || last {
                        break;
                    }
                }
            })?;
        Ok(Reader {
            rx,
            thread: Some(thread),
            done: false,
        })
    }

    /// The next message, waiting at most `timeout` (`None`: for ever). After the end of the stream
    /// or an error, every call returns `Eof`.
    pub(crate) fn next(&mut self, timeout: Option<Duration>) -> io::Result<Incoming> {
        if self.done {
            return Ok(Incoming::Eof { partial: 0 });
        }
        let r = match timeout {
            Some(t) => match self.rx.recv_timeout(t) {
                Ok(r) => r,
                Err(RecvTimeoutError::Timeout) => return Ok(Incoming::Timeout),
                Err(RecvTimeoutError::Disconnected) => Ok(Incoming::Eof { partial: 0 }),
            },
            None => self.rx.recv().unwrap_or(Ok(Incoming::Eof { partial: 0 })),
        };
        if !matches!(r, Ok(Incoming::Message(..))) {
            self.done = true;
        }
        r
    }

    /// Waits for the receiving thread; the socket must have been shut down (or the peer gone).
    pub(crate) fn join(mut self) {
        drop(std::mem::replace(&mut self.rx, sync_channel(1).1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What [`Reader::next`] got.
pub(crate) enum Incoming {
    /// One whole message (or, for a header whose `msg_size` is below 16, its 16 bytes) and the
    /// descriptors that came with it.
    Message(Vec<u8>, Vec<OwnedFd>),
    /// The peer closed its end; `partial` bytes of an unfinished message were left.
    Eof {
        /// Bytes of a message the peer never finished.
        partial: usize,
    },
    /// Nothing whole arrived in time.
    Timeout,
}

/// Descriptors that came with a read whose bytes ended at stream offset `end`.
struct FdMark {
    end: u64,
    fds: Vec<OwnedFd>,
}

/// One connected socket, with a receive buffer that frames the stream into messages.
struct Wire {
    fd: OwnedFd,
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    base: u64,
    marks: VecDeque<FdMark>,
    eof: bool,
}

impl Wire {
    fn new(fd: OwnedFd) -> Self {
        Wire {
            fd,
            buf: Vec::with_capacity(1 << 16),
            base: 0,
            marks: VecDeque::new(),
            eof: false,
        }
    }

    /// The next whole message (blocking), or the end of the stream.
    fn recv(&mut self) -> io::Result<Incoming> {
        loop {
            if let Some(m) = self.take()? {
                return Ok(m);
            }
            if self.eof {
                let partial = self.buf.len();
                self.buf.clear();
                return Ok(Incoming::Eof { partial });
            }
            self.fill()?;
        }
    }

    fn fill(&mut self) -> io::Result<()> {
        let at = self.base + self.buf.len() as u64;
        let old = self.buf.len();
        self.buf.resize(old + (1 << 16), 0);
        let mut space = [MaybeUninit::<u8>::uninit(); CMSG_SPACE];
        let mut fds = Vec::new();
        let n = loop {
            let mut ctl = RecvAncillaryBuffer::new(&mut space);
            match rustix::net::recvmsg(
                &self.fd,
                &mut [io::IoSliceMut::new(&mut self.buf[old..])],
                &mut ctl,
                RecvFlags::CMSG_CLOEXEC,
            ) {
                Ok(m) => {
                    for msg in ctl.drain() {
                        if let RecvAncillaryMessage::ScmRights(it) = msg {
                            fds.extend(it);
                        }
                    }
                    break m.bytes;
                }
                Err(Errno::INTR) => {}
                Err(Errno::CONNRESET) => break 0,
                Err(e) => {
                    self.buf.truncate(old);
                    return Err(e.into());
                }
            }
        };
        self.buf.truncate(old + n);
        if n == 0 {
            self.eof = true;
        }
        if !fds.is_empty() {
            self.marks.push_back(FdMark {
                end: at + n as u64,
                fds,
            });
        }
        Ok(())
    }

    /// Frames the next message out of the buffer, with the descriptors of every read whose last
    /// byte lies in it.
    ///
    /// A stream socket's `recvmsg` returns descriptors with the data of the `sendmsg` that carried
    /// them, but may glue the data of earlier `sendmsg`s (without descriptors) in front of it, and
    /// stops right after a `sendmsg` with descriptors (Linux `unix_stream_read_generic`): the
    /// descriptors belong to the data at the end of the read. Senders send one message per
    /// `sendmsg` with its descriptors, so they belong to the message holding the read's last byte.
    fn take(&mut self) -> io::Result<Option<Incoming>> {
        let len = match frame(&self.buf) {
            Frame::Complete { message, .. } => message.len(),
            Frame::BadSize { header, .. } => header.len(),
            Frame::Incomplete { needed } => {
                let want = self.buf.len() + needed;
                if want > MAX_RECORD_LEN {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "the peer announced a message of {} bytes (msg_size), more than the {MAX_RECORD_LEN} a replay reads",
                            vfu_codec::frame::msg_size(&self.buf).unwrap_or(0)
                        ),
                    ));
                }
                return Ok(None);
            }
        };
        let start = self.base;
        let end = start + len as u64;
        let mut fds = Vec::new();
        while let Some(m) = self.marks.front() {
            // The read's last byte is at m.end - 1.
            let stale = m.end <= start;
            let mine = !stale && m.end <= end;
            if !(stale || mine) {
                break;
            }
            if let Some(m) = self.marks.pop_front()
                && mine
            {
                fds.extend(m.fds);
            }
        }
        let data = self.buf[..len].to_vec();
        self.buf.drain(..len);
        self.base += len as u64;
        Ok(Some(Incoming::Message(data, fds)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    fn msg(cmd: u8, payload: usize) -> Vec<u8> {
        let mut m = vec![0u8; 16 + payload];
        m[2] = cmd;
        m[4..8].copy_from_slice(&((16 + payload) as u32).to_le_bytes());
        m
    }

    fn next_msg(r: &mut Reader) -> (Vec<u8>, Vec<OwnedFd>) {
        match r.next(Some(Duration::from_secs(5))).unwrap() {
            Incoming::Message(d, f) => (d, f),
            _ => panic!("no message"),
        }
    }

    #[test]
    fn reader_frames_messages_and_keeps_their_descriptors() {
        let (a, b) = UnixStream::pair().unwrap();
        let b = OwnedFd::from(b);
        let mut r = Reader::start(&b).unwrap();
        let evt = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC).unwrap();
        send(a.as_fd(), &msg(1, 4), &[]).unwrap();
        send(a.as_fd(), &msg(2, 100_000), &[evt.as_fd()]).unwrap();
        let (m1, f1) = next_msg(&mut r);
        assert_eq!((m1.len(), f1.len()), (20, 0));
        let (m2, f2) = next_msg(&mut r);
        assert_eq!((m2.len(), m2[2], f2.len()), (100_016, 2, 1));
        // A header whose msg_size is below 16 comes out as its 16 bytes.
        let mut bad = msg(3, 0);
        bad[4] = 3;
        send(a.as_fd(), &bad, &[]).unwrap();
        assert_eq!(next_msg(&mut r).0, bad);
        drop(a);
        assert!(matches!(
            r.next(Some(Duration::from_secs(5))).unwrap(),
            Incoming::Eof { partial: 0 }
        ));
        r.join();
    }

    #[test]
    fn descriptors_go_to_the_message_holding_the_last_byte_of_their_read() {
        let (_a, b) = UnixStream::pair().unwrap();
        let mut w = Wire::new(OwnedFd::from(b));
        // One read held the last 4 bytes of a 20-byte message and all of the next, which came
        // with a descriptor; the read before held the first 16 bytes.
        w.buf = [msg(1, 4), msg(2, 0)].concat();
        let evt = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC).unwrap();
        w.marks.push_back(FdMark {
            end: 36,
            fds: vec![evt],
        });
        let Some(Incoming::Message(m, f)) = w.take().unwrap() else {
            panic!()
        };
        assert_eq!((m.len(), f.len()), (20, 0));
        let Some(Incoming::Message(m, f)) = w.take().unwrap() else {
            panic!()
        };
        assert_eq!((m[2], f.len()), (2, 1));
        // A read inside one long message gives its descriptors to that message.
        w.buf = msg(3, 40);
        let evt = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC).unwrap();
        w.marks.push_back(FdMark {
            end: w.base + 30,
            fds: vec![evt],
        });
        let Some(Incoming::Message(_, f)) = w.take().unwrap() else {
            panic!()
        };
        assert_eq!(f.len(), 1);
    }
}
