//! The system calls the tracer decodes, by number on this machine's architecture, the seccomp filter
//! that stops a launched program at exactly those, and the user-space layouts it reads
//! (`struct msghdr`, `struct mmsghdr`, `struct iovec`, `struct cmsghdr`) on 64-bit Linux.

/// What a traced system call does, for the tracer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Call {
    /// `read(fd, buf, count)`.
    Read,
    /// `write(fd, buf, count)`.
    Write,
    /// `readv(fd, iov, iovcnt)`.
    Readv,
    /// `writev(fd, iov, iovcnt)`.
    Writev,
    /// `recvfrom(fd, buf, len, flags, addr, addrlen)` (also `recv`).
    Recvfrom,
    /// `sendto(fd, buf, len, flags, addr, addrlen)` (also `send`).
    Sendto,
    /// `recvmsg(fd, msg, flags)`.
    Recvmsg,
    /// `sendmsg(fd, msg, flags)`.
    Sendmsg,
    /// `recvmmsg(fd, msgvec, vlen, flags, timeout)`.
    Recvmmsg,
    /// `sendmmsg(fd, msgvec, vlen, flags)`.
    Sendmmsg,
    /// `ioctl(fd, request, arg)`.
    Ioctl,
    /// `close(fd)`: forget what the descriptor was.
    Close,
    /// `close_range(first, last, flags)`.
    CloseRange,
    /// `dup2(old, new)` (not on arm64) and `dup3(old, new, flags)`: `new` is replaced.
    Dup2,
}

#[cfg(target_arch = "x86_64")]
mod nr {
    pub(super) const AUDIT_ARCH: u32 = 0xc000_003e; // AUDIT_ARCH_X86_64
    pub(super) const TABLE: &[(u32, super::Call)] = {
        use super::Call::*;
        &[
            (0, Read),
            (1, Write),
            (3, Close),
            (16, Ioctl),
            (19, Readv),
            (20, Writev),
            (33, Dup2),
            (44, Sendto),
            (45, Recvfrom),
            (46, Sendmsg),
            (47, Recvmsg),
            (292, Dup2),
            (299, Recvmmsg),
            (307, Sendmmsg),
            (436, CloseRange),
        ]
    };
}

#[cfg(target_arch = "aarch64")]
mod nr {
    pub(super) const AUDIT_ARCH: u32 = 0xc000_00b7; // AUDIT_ARCH_AARCH64
    pub(super) const TABLE: &[(u32, super::Call)] = {
        use super::Call::*;
        &[
            (24, Dup2),
            (29, Ioctl),
            (57, Close),
            (63, Read),
            (64, Write),
            (65, Readv),
            (66, Writev),
            (206, Sendto),
            (207, Recvfrom),
            (211, Sendmsg),
            (212, Recvmsg),
            (243, Recvmmsg),
            (269, Sendmmsg),
            (436, CloseRange),
        ]
    };
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("vfu-dump trace knows the system call numbers of x86_64 and aarch64 only");

/// The audit architecture of this machine's native system calls; calls of another (a 32-bit
/// program's) are not decoded.
pub(crate) const AUDIT_ARCH: u32 = nr::AUDIT_ARCH;

/// What system call `nr` of the native architecture is, when the tracer decodes it.
pub(crate) fn call(arch: u32, nr: u64) -> Option<Call> {
    if arch != AUDIT_ARCH {
        return None;
    }
    nr::TABLE
        .iter()
        .find(|(n, _)| u64::from(*n) == nr)
        .map(|&(_, c)| c)
}

// BPF (classic) as seccomp uses it: <linux/filter.h>, <linux/seccomp.h>.
const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD (0) | BPF_W (0) | BPF_ABS (0x20)
const BPF_JEQ_K: u16 = 0x05 | 0x10; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_TRACE: u32 = 0x7ff0_0000;
/// Offsets in `struct seccomp_data`: `nr` then `arch`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The seccomp filter a launched program gets: every system call of [`call`]'s table returns
/// `SECCOMP_RET_TRACE` (a stop for the tracer), everything else, and every call of another
/// architecture, runs without stopping.
pub(crate) fn filter() -> Vec<libc::sock_filter> {
    let n = nr::TABLE.len();
    let mut p = Vec::with_capacity(n + 5);
    p.push(insn(BPF_LD_W_ABS, 0, 0, DATA_ARCH));
    // Another architecture: jump over the number tests and the load to ALLOW.
    p.push(insn(BPF_JEQ_K, 0, (n + 1) as u8, AUDIT_ARCH));
    p.push(insn(BPF_LD_W_ABS, 0, 0, DATA_NR));
    for (i, (nr, _)) in nr::TABLE.iter().enumerate() {
        // Equal: jump to TRACE, which follows ALLOW.
        p.push(insn(BPF_JEQ_K, (n - i) as u8, 0, *nr));
    }
    p.push(insn(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW));
    p.push(insn(BPF_RET_K, 0, 0, SECCOMP_RET_TRACE));
    p
}

/// `struct iovec` and `struct msghdr`/`mmsghdr` on LP64 Linux.
pub(crate) const IOVEC_SIZE: usize = 16;
pub(crate) const MSGHDR_SIZE: usize = 56;
pub(crate) const MMSGHDR_SIZE: usize = 64;
pub(crate) const MSG_IOV: usize = 16;
pub(crate) const MSG_IOVLEN: usize = 24;
pub(crate) const MSG_CONTROL: usize = 32;
pub(crate) const MSG_CONTROLLEN: usize = 40;
pub(crate) const MSG_FLAGS: usize = 48;
/// `mmsghdr.msg_len`.
pub(crate) const MMSG_LEN: usize = 56;
/// `struct cmsghdr`: `cmsg_len` (size_t), `cmsg_level`, `cmsg_type`, then the data, 8-aligned.
pub(crate) const CMSG_HDR: usize = 16;
/// `IOV_MAX`: the kernel refuses more iovecs, so no more are read.
pub(crate) const IOV_MAX: usize = 1024;
/// `MSG_PEEK`: the bytes stay queued (they will be read again).
pub(crate) const MSG_PEEK: u64 = 2;
/// `MSG_CTRUNC` in `msg_flags`: the control buffer was too small, descriptors were lost.
pub(crate) const MSG_CTRUNC: u32 = 8;

/// The `u64` at `at` of `b` (native endian), 0 past the end.
pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_ne_bytes)
}

/// The `u32` at `at` of `b` (native endian), 0 past the end.
pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_ne_bytes)
}

/// The descriptors of every `SCM_RIGHTS` message in a control buffer, in order; a malformed buffer
/// gives the descriptors of the well-formed messages before it.
pub(crate) fn scm_rights(control: &[u8]) -> Vec<i32> {
    let mut fds = Vec::new();
    let mut at = 0usize;
    while at + CMSG_HDR <= control.len() {
        let len = u64_at(control, at) as usize;
        if len < CMSG_HDR || len > control.len() - at {
            break;
        }
        let level = u32_at(control, at + 8) as i32;
        let ty = u32_at(control, at + 12) as i32;
        if level == libc::SOL_SOCKET && ty == libc::SCM_RIGHTS {
            let data = &control[at + CMSG_HDR..at + len];
            fds.extend(
                data.chunks_exact(4)
                    .map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]])),
            );
        }
        at += (len + 7) & !7;
    }
    fds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_traced_call_is_in_the_filter_and_jumps_land() {
        let p = filter();
        let n = nr::TABLE.len();
        assert_eq!(p.len(), n + 5);
        // Run the program as the kernel would, for a few inputs.
        let run = |arch: u32, nr: u32| -> u32 {
            let mut pc = 0usize;
            let mut acc = 0u32;
            loop {
                let i = p[pc];
                match i.code {
                    BPF_LD_W_ABS => acc = if i.k == DATA_ARCH { arch } else { nr },
                    BPF_JEQ_K => {
                        pc += usize::from(if acc == i.k { i.jt } else { i.jf });
                    }
                    BPF_RET_K => return i.k,
                    other => panic!("unexpected opcode {other:#x}"),
                }
                pc += 1;
            }
        };
        for (nr, c) in nr::TABLE {
            assert_eq!(run(AUDIT_ARCH, *nr), SECCOMP_RET_TRACE, "{c:?}");
            assert_eq!(call(AUDIT_ARCH, u64::from(*nr)), Some(*c));
            assert_eq!(run(0x4000_0003, *nr), SECCOMP_RET_ALLOW);
        }
        assert_eq!(run(AUDIT_ARCH, 9999), SECCOMP_RET_ALLOW);
        assert_eq!(call(AUDIT_ARCH, 9999), None);
        assert_eq!(call(0x4000_0003, 0), None);
    }

    #[test]
    fn the_numbers_are_libcs() {
        use Call::*;
        let want: &[(i64, Call)] = &[
            (libc::SYS_read, Read),
            (libc::SYS_write, Write),
            (libc::SYS_readv, Readv),
            (libc::SYS_writev, Writev),
            (libc::SYS_recvfrom, Recvfrom),
            (libc::SYS_sendto, Sendto),
            (libc::SYS_recvmsg, Recvmsg),
            (libc::SYS_sendmsg, Sendmsg),
            (libc::SYS_recvmmsg, Recvmmsg),
            (libc::SYS_sendmmsg, Sendmmsg),
            (libc::SYS_ioctl, Ioctl),
            (libc::SYS_close, Close),
            (libc::SYS_close_range, CloseRange),
            (libc::SYS_dup3, Dup2),
        ];
        for &(n, c) in want {
            assert_eq!(call(AUDIT_ARCH, n as u64), Some(c), "{c:?}");
        }
        #[cfg(target_arch = "x86_64")]
        assert_eq!(call(AUDIT_ARCH, libc::SYS_dup2 as u64), Some(Dup2));
        assert_eq!(
            nr::TABLE.len(),
            want.len() + usize::from(cfg!(target_arch = "x86_64"))
        );
    }

    #[test]
    fn scm_rights_in_a_control_buffer() {
        let mut c = Vec::new();
        // SCM_RIGHTS with two fds (len 24, padded to 24), then SCM_CREDENTIALS (len 28 -> 32),
        // then SCM_RIGHTS with one fd, then a header claiming more than is there.
        c.extend_from_slice(&24u64.to_ne_bytes());
        c.extend_from_slice(&1i32.to_ne_bytes());
        c.extend_from_slice(&1i32.to_ne_bytes());
        c.extend_from_slice(&7i32.to_ne_bytes());
        c.extend_from_slice(&8i32.to_ne_bytes());
        c.extend_from_slice(&28u64.to_ne_bytes());
        c.extend_from_slice(&1i32.to_ne_bytes());
        c.extend_from_slice(&2i32.to_ne_bytes());
        c.extend_from_slice(&[0; 16]);
        c.extend_from_slice(&20u64.to_ne_bytes());
        c.extend_from_slice(&1i32.to_ne_bytes());
        c.extend_from_slice(&1i32.to_ne_bytes());
        c.extend_from_slice(&9i32.to_ne_bytes());
        c.extend_from_slice(&[0; 4]);
        c.extend_from_slice(&400u64.to_ne_bytes());
        c.extend_from_slice(&[0; 8]);
        assert_eq!(scm_rights(&c), [7, 8, 9]);
        assert_eq!(scm_rights(&c[..10]), Vec::<i32>::new());
        assert_eq!(u64_at(&c, c.len()), 0);
    }
}
