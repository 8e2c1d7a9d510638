//! What a UNIX socket is, by inode, from the kernel's `sock_diag` netlink interface (what `ss -x`
//! shows): its type, its bound name and the inode of its peer. This is how the tracer finds that two
//! descriptors in two processes are the two ends of one connection, and which end is the server's
//! (an accepted socket carries the listening socket's path; a connecting client's has no name).

use std::io;
use std::os::fd::OwnedFd;

use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketType};

/// `SOCK_DIAG_BY_FAMILY` (`<linux/sock_diag.h>`).
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// `UDIAG_SHOW_NAME | UDIAG_SHOW_PEER` (`<linux/unix_diag.h>`).
const UDIAG_SHOW: u32 = 0x1 | 0x4;
const UNIX_DIAG_NAME: u16 = 0;
const UNIX_DIAG_PEER: u16 = 2;
/// `SOCK_STREAM`.
pub(crate) const SOCK_STREAM: u8 = 1;

/// A UNIX socket as `sock_diag` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UnixSock {
    /// `SOCK_STREAM` 1, `SOCK_DGRAM` 2, `SOCK_SEQPACKET` 5.
    pub(crate) sock_type: u8,
    /// The bound path (`@name` for an abstract one), if any.
    pub(crate) name: Option<String>,
    /// The peer's inode, 0 when not connected (or the peer is gone).
    pub(crate) peer: u32,
}

/// A `NETLINK_SOCK_DIAG` socket.
pub(crate) struct Diag {
    fd: OwnedFd,
    seq: u32,
}

impl Diag {
    pub(crate) fn new() -> io::Result<Self> {
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            rustix::net::SocketFlags::CLOEXEC,
            Some(rustix::net::netlink::SOCK_DIAG),
        )?;
        Ok(Diag { fd, seq: 0 })
    }

    /// The UNIX socket with this inode, `None` when there is none (not a UNIX socket, or closed).
    pub(crate) fn unix(&mut self, inode: u32) -> io::Result<Option<UnixSock>> {
        self.seq = self.seq.wrapping_add(1);
        let mut req = Vec::with_capacity(40);
        req.extend_from_slice(&40u32.to_ne_bytes()); // nlmsg_len
        req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        req.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
        req.extend_from_slice(&self.seq.to_ne_bytes());
        req.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid
        // struct unix_diag_req
        req.push(libc::AF_UNIX as u8);
        req.push(0); // sdiag_protocol
        req.extend_from_slice(&0u16.to_ne_bytes());
        req.extend_from_slice(&u32::MAX.to_ne_bytes()); // udiag_states: all
        req.extend_from_slice(&inode.to_ne_bytes());
        req.extend_from_slice(&UDIAG_SHOW.to_ne_bytes());
        req.extend_from_slice(&u32::MAX.to_ne_bytes()); // cookie: INET_DIAG_NOCOOKIE
        req.extend_from_slice(&u32::MAX.to_ne_bytes());
        rustix::net::send(&self.fd, &req, SendFlags::empty())?;
        let mut buf = vec![0u8; 8192];
        loop {
            let (n, _) = rustix::net::recv(&self.fd, &mut buf[..], RecvFlags::empty())?;
            let n = n.min(buf.len());
            match parse_reply(&buf[..n], self.seq) {
                Reply::Sock(s) => return Ok(Some(s)),
                Reply::None => return Ok(None),
                Reply::Other => continue,
            }
        }
    }
}

enum Reply {
    Sock(UnixSock),
    None,
    /// A message of another request (an earlier one that timed out): read on.
    Other,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |s| u16::from_ne_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

/// Parses the kernel's answer: one `unix_diag_msg` with attributes, or an error (ENOENT: no such
/// socket).
fn parse_reply(b: &[u8], seq: u32) -> Reply {
    if b.len() < 16 {
        return Reply::None;
    }
    let len = (u32_at(b, 0) as usize).min(b.len());
    let ty = u16_at(b, 4);
    if u32_at(b, 8) != seq {
        return Reply::Other;
    }
    match ty {
        NLMSG_ERROR | NLMSG_DONE => return Reply::None,
        SOCK_DIAG_BY_FAMILY => {}
        _ => return Reply::None,
    }
    // struct unix_diag_msg: family, type, state, pad, ino u32, cookie u32[2] (16 bytes).
    let msg = &b[16..len];
    if msg.len() < 16 {
        return Reply::None;
    }
    let mut s = UnixSock {
        sock_type: msg[1],
        name: None,
        peer: 0,
    };
    let mut at = 16usize;
    while at + 4 <= msg.len() {
        let alen = u16_at(msg, at) as usize;
        let aty = u16_at(msg, at + 2);
        if alen < 4 || at + alen > msg.len() {
            break;
        }
        let val = &msg[at + 4..at + alen];
        match aty {
            UNIX_DIAG_NAME if !val.is_empty() => {
                s.name = Some(if val[0] == 0 {
                    format!("@{}", String::from_utf8_lossy(&val[1..]))
                } else {
                    let end = val.iter().position(|&c| c == 0).unwrap_or(val.len());
                    String::from_utf8_lossy(&val[..end]).into_owned()
                });
            }
            UNIX_DIAG_PEER => s.peer = u32_at(val, 0),
            _ => {}
        }
        at += (alen + 3) & !3;
    }
    Reply::Sock(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::net::{UnixListener, UnixStream};

    fn inode(s: &impl std::os::fd::AsFd) -> u32 {
        let path = format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&s.as_fd())
        );
        std::fs::metadata(path).unwrap().ino() as u32
    }

    #[test]
    fn finds_both_ends_names_and_peers() {
        let dir = std::env::temp_dir().join(format!("vfu-diag-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let l = UnixListener::bind(&path).unwrap();
        let c = UnixStream::connect(&path).unwrap();
        let (a, _) = l.accept().unwrap();
        let mut d = Diag::new().unwrap();
        let client = d.unix(inode(&c)).unwrap().unwrap();
        let server = d.unix(inode(&a)).unwrap().unwrap();
        assert_eq!(client.sock_type, SOCK_STREAM);
        assert_eq!(client.name, None);
        assert_eq!(client.peer, inode(&a));
        assert_eq!(server.name.as_deref(), Some(path.to_str().unwrap()));
        assert_eq!(server.peer, inode(&c));
        let (p, q) = UnixStream::pair().unwrap();
        let ps = d.unix(inode(&p)).unwrap().unwrap();
        assert_eq!((ps.name, ps.peer), (None, inode(&q)));
        // A pipe's inode is no socket.
        let (r, _w) = rustix::pipe::pipe().unwrap();
        assert_eq!(d.unix(inode(&r)).unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn garbage_replies_are_not_sockets() {
        assert!(matches!(parse_reply(&[], 1), Reply::None));
        assert!(matches!(parse_reply(&[0xff; 15], 1), Reply::None));
        let mut b = vec![0u8; 40];
        b[0..4].copy_from_slice(&40u32.to_ne_bytes());
        b[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        b[8..12].copy_from_slice(&7u32.to_ne_bytes());
        assert!(matches!(parse_reply(&b, 8), Reply::Other));
        // An attribute claiming more than there is ends the walk.
        b[32..34].copy_from_slice(&400u16.to_ne_bytes());
        assert!(matches!(
            parse_reply(&b, 7),
            Reply::Sock(UnixSock { peer: 0, .. })
        ));
    }
}
