//! What each traced process's descriptors are, from `/proc/PID/fd` and `sock_diag`, cached per
//! descriptor table.
//!
//! The cache is exact because every way a descriptor number can change meaning passes through the
//! tracer: a number is reused only after `close`, `close_range`, `dup2`/`dup3` onto it (all traced,
//! see [`super::abi::Call`]) or an `execve` closing its close-on-exec descriptors (the exec event
//! drops the process's table). New descriptors (`socket`, `accept`, `open`, received `SCM_RIGHTS`)
//! take numbers that are free, so nothing cached is stale. Threads share their process's table.

use std::collections::HashMap;

use super::diag::{Diag, SOCK_STREAM};
use super::sys::Tid;

/// What a descriptor is, as far as the tracer cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FdKind {
    /// A connected UNIX stream socket: its inode, its peer's (0 unknown) and its bound name.
    UnixStream {
        inode: u32,
        peer: u32,
        name: Option<String>,
        peer_name: Option<String>,
    },
    /// `/dev/vduse/control`.
    VduseControl,
    /// `/dev/vduse/NAME`: the device's name.
    VduseDev(String),
    /// Anything else: not followed.
    Other,
}

/// The descriptor tables of the traced processes.
pub(crate) struct FdTables {
    diag: Option<Diag>,
    tables: HashMap<i32, HashMap<i32, FdKind>, foldhash::fast::RandomState>,
}

/// What `/proc/TID/fd/FD` links to, or why it cannot be read.
pub(crate) fn describe(tid: Tid, fd: i32) -> String {
    match std::fs::read_link(format!("/proc/{tid}/fd/{fd}")) {
        Ok(p) => p.to_string_lossy().into_owned(),
        Err(e) => format!("fd {fd} (unreadable: {e})"),
    }
}

/// The path of the socket `fd` of process `pid` is connected to, from `getpeername` on a copy of
/// the descriptor (`pidfd_getfd`). `sock_diag` cannot give it when the peer is a connection the
/// server has not accepted yet (it has no inode then), which is when a client sends its first
/// message.
fn peer_path(pid: i32, fd: i32) -> Option<String> {
    use rustix::net::SocketAddrUnix;
    use rustix::process::{Pid, PidfdFlags, PidfdGetfdFlags, pidfd_getfd, pidfd_open};
    let pidfd = pidfd_open(Pid::from_raw(pid)?, PidfdFlags::empty()).ok()?;
    let copy = pidfd_getfd(&pidfd, fd, PidfdGetfdFlags::empty()).ok()?;
    let addr = rustix::net::getpeername(&copy).ok()??;
    let unix = SocketAddrUnix::try_from(addr).ok()?;
    if let Some(p) = unix.path_bytes() {
        return Some(String::from_utf8_lossy(p).into_owned());
    }
    unix.abstract_name()
        .map(|n| format!("@{}", String::from_utf8_lossy(n)))
}

/// The inode in a `socket:[N]` link.
fn socket_inode(link: &str) -> Option<u32> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

impl FdTables {
    pub(crate) fn new() -> Self {
        FdTables {
            diag: Diag::new().ok(),
            tables: HashMap::default(),
        }
    }

    /// What descriptor `fd` of process `tgid` (seen from its thread `tid`) is.
    pub(crate) fn kind(&mut self, tgid: i32, tid: Tid, fd: i32) -> &FdKind {
        let diag = &mut self.diag;
        self.tables
            .entry(tgid)
            .or_default()
            .entry(fd)
            .or_insert_with(|| {
                let mut k = classify(diag, &describe(tid, fd));
                if let FdKind::UnixStream {
                    name: None,
                    peer_name: peer_name @ None,
                    ..
                } = &mut k
                {
                    *peer_name = peer_path(tgid, fd);
                }
                k
            })
    }

    /// Forgets descriptor `fd` of `tgid` (closed or replaced).
    pub(crate) fn forget(&mut self, tgid: i32, fd: i32) {
        if let Some(t) = self.tables.get_mut(&tgid) {
            t.remove(&fd);
        }
    }

    /// Forgets descriptors `first..=last` of `tgid`.
    pub(crate) fn forget_range(&mut self, tgid: i32, first: u32, last: u32) {
        if let Some(t) = self.tables.get_mut(&tgid) {
            t.retain(|&fd, _| !(first..=last).contains(&(fd as u32)));
        }
    }

    /// Forgets the whole table of `tgid` (exec, exit); returns what it held.
    pub(crate) fn forget_process(&mut self, tgid: i32) -> Vec<FdKind> {
        self.tables
            .remove(&tgid)
            .map(|t| t.into_values().collect())
            .unwrap_or_default()
    }
}

/// The directory of the VDUSE nodes: `/dev/vduse`, or `VFU_TRACE_VDUSE_DIR` (for tests on machines
/// without VDUSE, which stand files in for the nodes).
fn vduse_dir() -> &'static str {
    static DIR: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        std::env::var("VFU_TRACE_VDUSE_DIR")
            .map(|d| d.trim_end_matches('/').to_owned())
            .unwrap_or_else(|_| "/dev/vduse".to_owned())
    })
}

/// Classifies a `/proc/PID/fd` link.
fn classify(diag: &mut Option<Diag>, link: &str) -> FdKind {
    if let Some(name) = link
        .strip_prefix(vduse_dir())
        .and_then(|r| r.strip_prefix('/'))
        .filter(|n| !n.is_empty() && !n.contains('/'))
    {
        return if name == "control" {
            FdKind::VduseControl
        } else {
            FdKind::VduseDev(name.to_owned())
        };
    }
    let Some(inode) = socket_inode(link) else {
        return FdKind::Other;
    };
    let Some(d) = diag.as_mut() else {
        return FdKind::Other;
    };
    match d.unix(inode) {
        Ok(Some(s)) if s.sock_type == SOCK_STREAM => {
            let peer_name = if s.peer != 0 {
                d.unix(s.peer).ok().flatten().and_then(|p| p.name)
            } else {
                None
            };
            FdKind::UnixStream {
                inode,
                peer: s.peer,
                name: s.name,
                peer_name,
            }
        }
        _ => FdKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn classifies_our_own_descriptors() {
        let me = std::process::id() as i32;
        let mut t = FdTables::new();
        let (a, b) = UnixStream::pair().unwrap();
        let FdKind::UnixStream { inode, peer, .. } = t.kind(me, me, a.as_raw_fd()).clone() else {
            panic!("not a stream socket");
        };
        let FdKind::UnixStream {
            inode: bi,
            peer: bp,
            ..
        } = t.kind(me, me, b.as_raw_fd()).clone()
        else {
            panic!("not a stream socket");
        };
        assert_eq!((inode, peer), (bp, bi));
        let f = std::fs::File::open("/proc/self/status").unwrap();
        assert_eq!(t.kind(me, me, f.as_raw_fd()), &FdKind::Other);
        assert_eq!(t.kind(me, me, 99_999), &FdKind::Other);
        assert!(describe(me, 99_999).contains("unreadable"));
        let m = rustix::fs::memfd_create("guest-ram", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        assert!(describe(me, m.as_raw_fd()).starts_with("/memfd:guest-ram"));
        t.forget(me, a.as_raw_fd());
        t.forget_range(me, 0, u32::MAX);
        assert!(t.forget_process(me).is_empty());
        assert_eq!(
            classify(&mut None, "/dev/vduse/vduse-blk0"),
            FdKind::VduseDev("vduse-blk0".into())
        );
        assert_eq!(
            classify(&mut None, "/dev/vduse/control"),
            FdKind::VduseControl
        );
        assert_eq!(socket_inode("socket:[123]"), Some(123));
        assert_eq!(socket_inode("pipe:[123]"), None);
    }
}
