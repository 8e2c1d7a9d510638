//! What a traced call did: its entry (which calls are followed to their exit, an ioctl's argument as
//! it goes in) and its exit (the bytes it moved, read from the tracee, and the descriptors with them).

use std::io;

use super::abi::{self, Call, MMSG_LEN, MMSGHDR_SIZE, MSG_CTRUNC, MSG_PEEK};
use super::engine::{Pending, Tracer, now_ns};
use super::fds::{FdKind, describe};
use super::mem;
use super::stream::Chunk;
use super::sys::Tid;
use super::vduse;
use crate::capture::ioctl::IoctlRecord;
use vfu_codec::Direction;

impl Tracer<'_> {
    /// A traced call's entry: what to finish at its exit, if anything.
    pub(super) fn on_entry(
        &mut self,
        tid: Tid,
        tgid: i32,
        call: Call,
        args: [u64; 6],
    ) -> Option<Pending> {
        let fd = args[0] as i32;
        match call {
            Call::Close => {
                let kind = self.fds.kind(tgid, tid, fd).clone();
                self.fds.forget(tgid, fd);
                if let FdKind::UnixStream { inode, .. } = kind
                    && let Err(e) = self.streams.end(inode, now_ns(), self.sink)
                {
                    self.fail(e);
                }
                return None;
            }
            Call::CloseRange => {
                self.fds.forget_range(
                    tgid,
                    args[0] as u32,
                    args[1].min(u64::from(u32::MAX)) as u32,
                );
                return None;
            }
            Call::Dup2 => {
                self.fds.forget(tgid, args[1] as i32);
                return Some(Pending {
                    call,
                    args,
                    kind: FdKind::Other,
                    arg_in: None,
                });
            }
            _ => {}
        }
        let kind = self.fds.kind(tgid, tid, fd).clone();
        let wanted = match (&kind, call) {
            (FdKind::Other, _) => false,
            (FdKind::VduseControl, c) => c == Call::Ioctl,
            (FdKind::VduseDev(_), c) => matches!(
                c,
                Call::Ioctl | Call::Read | Call::Write | Call::Readv | Call::Writev
            ),
            (FdKind::UnixStream { inode, .. }, c) => {
                c != Call::Ioctl && !self.streams.ignored(*inode)
            }
        };
        if !wanted {
            return None;
        }
        let mut arg_in = None;
        if call == Call::Ioctl {
            let request = args[1] as u32;
            let (reads, _) = vduse::arg_dirs(request);
            if reads && args[2] != 0 {
                let fixed = vduse::arg_len(request, None);
                let mut a = vec![0u8; fixed];
                if mem::read_exact(tid, args[2], &mut a).is_ok() {
                    let whole = vduse::arg_len(request, Some(&a));
                    if whole > fixed {
                        let _ =
                            mem::read_append(tid, args[2] + fixed as u64, whole - fixed, &mut a);
                    }
                    arg_in = Some(a);
                }
            }
        }
        Some(Pending {
            call,
            args,
            kind,
            arg_in,
        })
    }

    /// A traced call's exit: read what it transferred and report it.
    pub(super) fn on_exit(
        &mut self,
        tid: Tid,
        tgid: i32,
        p: Pending,
        rval: i64,
        is_error: bool,
    ) -> io::Result<()> {
        let ts = now_ns();
        if p.call == Call::Dup2 {
            if !is_error {
                self.fds.forget(tgid, p.args[1] as i32);
            }
            return Ok(());
        }
        if p.call == Call::Ioctl {
            return self.ioctl_exit(tid, &p, rval, is_error, ts);
        }
        if is_error || rval < 0 {
            return Ok(());
        }
        let n = rval as u64;
        let a = p.args;
        let send = matches!(
            p.call,
            Call::Write | Call::Writev | Call::Sendto | Call::Sendmsg | Call::Sendmmsg
        );
        // MSG_PEEK leaves the bytes queued: they are recorded when really read. (The flags are
        // recvfrom's 4th argument, recvmsg's 3rd, recvmmsg's 4th.)
        let flags = match p.call {
            Call::Recvfrom | Call::Recvmmsg => a[3],
            Call::Recvmsg => a[2],
            _ => 0,
        };
        if flags & MSG_PEEK != 0 {
            return Ok(());
        }
        let mut buf = std::mem::take(&mut self.buf);
        let r = self.transfer(tid, &p, n, send, ts, &mut buf);
        buf.clear();
        if buf.capacity() > 4 << 20 {
            buf = Vec::with_capacity(64 << 10);
        }
        self.buf = buf;
        r
    }

    /// Reads the bytes (and descriptors) of a read/write-like call and hands them on.
    fn transfer(
        &mut self,
        tid: Tid,
        p: &Pending,
        n: u64,
        send: bool,
        ts: u64,
        buf: &mut Vec<u8>,
    ) -> io::Result<()> {
        let a = p.args;
        // (bytes of one message, descriptors) per message of the call.
        let mut pieces: Vec<(usize, Vec<i32>, bool)> = Vec::new();
        let read = match p.call {
            Call::Read | Call::Write | Call::Recvfrom | Call::Sendto => {
                pieces.push((n as usize, Vec::new(), false));
                mem::read_append(tid, a[1], n as usize, buf)
            }
            Call::Readv | Call::Writev => mem::iovecs(tid, a[1], a[2]).and_then(|iovs| {
                pieces.push((n as usize, Vec::new(), false));
                mem::gather(tid, &iovs, n, buf)
            }),
            Call::Recvmsg | Call::Sendmsg => mem::msghdr(tid, a[1]).and_then(|h| {
                pieces.push((
                    n as usize,
                    abi::scm_rights(&h.control),
                    !send && h.flags & MSG_CTRUNC != 0,
                ));
                mem::gather(tid, &h.iovs, n, buf)
            }),
            Call::Recvmmsg | Call::Sendmmsg => {
                let count = (n as usize).min(1024);
                let mut raw = vec![0u8; count * MMSGHDR_SIZE];
                mem::read_exact(tid, a[1], &mut raw).and_then(|()| {
                    for m in raw.chunks_exact(MMSGHDR_SIZE) {
                        let len = abi::u32_at(m, MMSG_LEN) as u64;
                        let h = mem::msghdr_from(tid, m)?;
                        let before = buf.len();
                        mem::gather(tid, &h.iovs, len, buf)?;
                        pieces.push((
                            buf.len() - before,
                            abi::scm_rights(&h.control),
                            !send && h.flags & MSG_CTRUNC != 0,
                        ));
                    }
                    Ok(())
                })
            }
            _ => Ok(()),
        };
        let fd = a[0] as i32;
        if let Err(e) = read {
            return self.note(
                None,
                &format!(
                    "pid {tid} fd {fd}: {n} bytes {} could not be read ({e}); that stream may resynchronise",
                    if send { "sent" } else { "received" }
                ),
            );
        }
        match &p.kind {
            FdKind::VduseDev(dev) => {
                let dev = dev.clone();
                let dir = if send {
                    Direction::ServerToClient
                } else {
                    Direction::ClientToServer
                };
                if !buf.is_empty() {
                    self.devices
                        .message(&dev, dir, ts, buf, &mut self.ids, self.sink)?;
                }
                Ok(())
            }
            FdKind::UnixStream {
                inode,
                peer,
                name,
                peer_name,
            } => {
                if n == 0 && !send {
                    // End of stream: the peer's direction is over.
                    if *peer != 0 {
                        return self.streams.end(*peer, ts, self.sink);
                    }
                    return Ok(());
                }
                let seen = format!("pid {} fd {fd}", tid);
                let mut at = 0usize;
                for (len, fds, ctrunc) in pieces {
                    let data = buf.get(at..at + len).unwrap_or(&[]);
                    at += len;
                    if ctrunc {
                        self.note(
                            None,
                            &format!("pid {tid} fd {fd}: descriptors were cut short (MSG_CTRUNC): the receiver lost some"),
                        )?;
                    }
                    let descs = fds.iter().map(|&f| describe(tid, f)).collect();
                    let receiver_traced = send && !self.launch && self.traced_socket(*peer);
                    self.streams.chunk(
                        Chunk {
                            inode: *inode,
                            peer: *peer,
                            name: name.as_deref(),
                            peer_name: peer_name.as_deref(),
                            send,
                            ts_ns: ts,
                            data,
                            fds: descs,
                            seen: &seen,
                            receiver_traced,
                        },
                        &mut self.ids,
                        self.sink,
                    )?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn ioctl_exit(
        &mut self,
        tid: Tid,
        p: &Pending,
        rval: i64,
        is_error: bool,
        ts: u64,
    ) -> io::Result<()> {
        let request = p.args[1] as u32;
        let (_, writes) = vduse::arg_dirs(request);
        // The return value, or -errno for an error: the same number either way.
        let result = rval as i32;
        let mut out = None;
        if writes && !is_error && p.args[2] != 0 {
            let len = vduse::arg_len(request, p.arg_in.as_deref());
            let mut a = vec![0u8; len];
            if mem::read_exact(tid, p.args[2], &mut a).is_ok() {
                out = Some(a);
            }
        }
        let rec = IoctlRecord {
            request,
            result,
            arg_in: p.arg_in.as_deref(),
            arg_out: out.as_deref(),
        };
        let mut fds = Vec::new();
        if let Some(fd) = vduse::fd_passed(request, p.arg_in.as_deref()) {
            fds.push(describe(tid, fd));
        }
        if vduse::returns_fd(request) && !is_error && rval >= 0 {
            fds.push(describe(tid, rval as i32));
        }
        let device = match &p.kind {
            FdKind::VduseDev(d) => Some(d.clone()),
            _ => None,
        };
        self.devices
            .ioctl(device.as_deref(), &rec, &fds, ts, &mut self.ids, self.sink)
    }
}
