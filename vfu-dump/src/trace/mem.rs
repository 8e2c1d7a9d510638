//! Reading a stopped tracee's memory with `process_vm_readv(2)`: buffers, iovec arrays, `msghdr`s and
//! their control data. Every length that comes from the tracee is bounded before anything is
//! allocated for it: by the system call's return value (bytes really transferred) or by a fixed cap.

use std::io::{self, IoSliceMut};

use nix::sys::uio::{RemoteIoVec, process_vm_readv};
use nix::unistd::Pid;

use super::abi::{
    self, IOV_MAX, IOVEC_SIZE, MSG_CONTROL, MSG_CONTROLLEN, MSG_FLAGS, MSG_IOV, MSG_IOVLEN,
    MSGHDR_SIZE,
};
use super::sys::Tid;

/// The most control data read from one message: room for the kernel's limit of 253 descriptors
/// (`SCM_MAX_FD`) and some other control messages.
const MAX_CONTROL: usize = 4096;

/// Reads `buf.len()` bytes at `addr` of `tid`'s memory; an error when fewer could be read.
pub(crate) fn read_exact(tid: Tid, addr: u64, buf: &mut [u8]) -> io::Result<()> {
    if buf.is_empty() {
        return Ok(());
    }
    let remote = [RemoteIoVec {
        base: addr as usize,
        len: buf.len(),
    }];
    let n = process_vm_readv(Pid::from_raw(tid), &mut [IoSliceMut::new(buf)], &remote)
        .map_err(io::Error::from)?;
    if n == remote[0].len {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("only {n} of {} bytes at {addr:#x} readable", remote[0].len),
        ))
    }
}

/// Appends `len` bytes at `addr` to `out`.
pub(crate) fn read_append(tid: Tid, addr: u64, len: usize, out: &mut Vec<u8>) -> io::Result<()> {
    let at = out.len();
    out.resize(at + len, 0);
    let r = read_exact(tid, addr, &mut out[at..]);
    if r.is_err() {
        out.truncate(at);
    }
    r
}

/// The `(base, len)` pairs of an iovec array of `count` entries at `addr` (at most [`IOV_MAX`]).
pub(crate) fn iovecs(tid: Tid, addr: u64, count: u64) -> io::Result<Vec<(u64, u64)>> {
    let count = (count as usize).min(IOV_MAX);
    let mut raw = vec![0u8; count * IOVEC_SIZE];
    read_exact(tid, addr, &mut raw)?;
    Ok(raw
        .chunks_exact(IOVEC_SIZE)
        .map(|c| (abi::u64_at(c, 0), abi::u64_at(c, 8)))
        .collect())
}

/// Appends the first `total` bytes the iovecs describe to `out` (what a vectored call with that
/// return value transferred).
pub(crate) fn gather(
    tid: Tid,
    iovs: &[(u64, u64)],
    total: u64,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let mut left = total;
    for &(base, len) in iovs {
        if left == 0 {
            break;
        }
        let take = len.min(left);
        read_append(tid, base, take as usize, out)?;
        left -= take;
    }
    if left > 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the iovecs hold {} bytes fewer than the call transferred",
                left
            ),
        ));
    }
    Ok(())
}

/// A `struct msghdr` read from the tracee.
#[derive(Clone, Debug, Default)]
pub(crate) struct MsgHdr {
    pub(crate) iovs: Vec<(u64, u64)>,
    /// The control data (`msg_controllen` bytes, at most 4 KiB).
    pub(crate) control: Vec<u8>,
    pub(crate) flags: u32,
}

/// Reads the `msghdr` at `addr`, its iovecs and its control data.
pub(crate) fn msghdr(tid: Tid, addr: u64) -> io::Result<MsgHdr> {
    let mut raw = [0u8; MSGHDR_SIZE];
    read_exact(tid, addr, &mut raw)?;
    msghdr_from(tid, &raw)
}

/// The same, from the `msghdr` bytes already read (of an `mmsghdr`).
pub(crate) fn msghdr_from(tid: Tid, raw: &[u8]) -> io::Result<MsgHdr> {
    let iov = abi::u64_at(raw, MSG_IOV);
    let iovlen = abi::u64_at(raw, MSG_IOVLEN);
    let control = abi::u64_at(raw, MSG_CONTROL);
    let controllen = (abi::u64_at(raw, MSG_CONTROLLEN) as usize).min(MAX_CONTROL);
    let mut h = MsgHdr {
        iovs: if iovlen == 0 {
            Vec::new()
        } else {
            iovecs(tid, iov, iovlen)?
        },
        control: Vec::new(),
        flags: abi::u32_at(raw, MSG_FLAGS),
    };
    if control != 0 && controllen > 0 {
        read_append(tid, control, controllen, &mut h.control)?;
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_memory() {
        let me = std::process::id() as Tid;
        let data = *b"hello, tracee";
        let mut buf = [0u8; 13];
        read_exact(me, data.as_ptr() as u64, &mut buf).unwrap();
        assert_eq!(buf, data);
        let a = *b"abc";
        let b = *b"defgh";
        let iovs = [(a.as_ptr() as u64, 3), (b.as_ptr() as u64, 5)];
        let mut out = Vec::new();
        gather(me, &iovs, 6, &mut out).unwrap();
        assert_eq!(out, b"abcdef");
        assert!(gather(me, &iovs, 9, &mut out).is_err());
        // An unmapped address is an error, never a panic.
        let mut one = [0u8; 1];
        assert!(read_exact(me, 8, &mut one).is_err());
    }
}
