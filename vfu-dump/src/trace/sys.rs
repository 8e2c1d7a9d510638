//! Every `unsafe` block of `vfu-dump trace`, each with its reason; the rest of the tracer is safe code
//! over these few functions and `nix`'s safe ptrace and `process_vm_readv` wrappers.
//!
//! Where `nix` is not used, the reason is one of two:
//! - `nix::sys::wait::waitpid` and `nix::sys::ptrace::{cont, syscall, detach}` carry signals as
//!   `nix::sys::signal::Signal`, which has no real-time signals: a tracee stopped by `SIGRTMIN+n` (glibc
//!   uses two of them itself) would make `waitpid` fail and could not be resumed with its signal. The
//!   raw status and signal numbers are kept here instead.
//! - `PTRACE_LISTEN`, `PR_SET_NO_NEW_PRIVS` and `seccomp(2)` have no wrapper in `nix` or `rustix`.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

use nix::unistd::Pid;

/// A thread id (the pid of a single-threaded process).
pub(crate) type Tid = i32;

/// What `waitpid` reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// The thread exited with this code.
    Exited(i32),
    /// A signal ended it.
    Killed(i32),
    /// A ptrace-stop: `WSTOPSIG` and the event in bits 16-23 (0 for a plain signal-delivery stop).
    Stopped { sig: i32, event: i32 },
}

/// Waits for any tracee (`__WALL`: threads too). `Interrupted` when a signal arrived first (the stop
/// handlers are installed without `SA_RESTART`, see [`install_stop_handlers`]), `ECHILD` (as
/// `io::ErrorKind::Other` with raw os error) when nothing is traced any more.
pub(crate) fn wait_any() -> io::Result<(Tid, Status)> {
    wait(-1, 0).map(|r| r.unwrap_or((0, Status::Exited(0))))
}

/// The same without waiting: `None` when no tracee has anything to report now.
pub(crate) fn poll_any() -> io::Result<Option<(Tid, Status)>> {
    wait(-1, libc::WNOHANG)
}

fn wait(pid: i32, flags: i32) -> io::Result<Option<(Tid, Status)>> {
    let mut status = 0i32;
    // SAFETY: `status` is a valid, writable c_int for the duration of the call; waitpid writes
    // nothing else.
    let r = unsafe { libc::waitpid(pid, &mut status, flags | libc::__WALL) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    if r == 0 {
        return Ok(None);
    }
    let s = if libc::WIFEXITED(status) {
        Status::Exited(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Status::Killed(libc::WTERMSIG(status))
    } else {
        Status::Stopped {
            sig: libc::WSTOPSIG(status),
            event: (status >> 16) & 0xff,
        }
    };
    Ok(Some((r, s)))
}

/// How to let a stopped tracee go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resume {
    /// `PTRACE_CONT`: run until the next seccomp stop, signal or event.
    Cont,
    /// `PTRACE_SYSCALL`: also stop at the next system call entry or exit.
    Syscall,
    /// `PTRACE_LISTEN`: stay in the group-stop, but report the next event (job control).
    Listen,
    /// `PTRACE_DETACH`: no longer traced.
    Detach,
}

/// Resumes `tid` the given way, delivering signal `sig` (0: none).
pub(crate) fn resume(tid: Tid, how: Resume, sig: i32) -> io::Result<()> {
    let req = match how {
        Resume::Cont => libc::PTRACE_CONT,
        Resume::Syscall => libc::PTRACE_SYSCALL,
        Resume::Listen => libc::PTRACE_LISTEN,
        Resume::Detach => libc::PTRACE_DETACH,
    };
    let data = if how == Resume::Listen {
        0
    } else {
        sig as usize
    };
    // SAFETY: these four requests take no pointer: `addr` is ignored and `data` is a signal number
    // passed by value, so no memory of ours is read or written.
    let r = unsafe {
        libc::ptrace(
            req,
            tid,
            std::ptr::null_mut::<libc::c_void>(),
            data as *mut libc::c_void,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Where a stopped thread is in a system call, from `PTRACE_GET_SYSCALL_INFO`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SyscallStop {
    /// Not in a system call stop.
    None,
    /// At its entry (syscall-enter-stop), or at a seccomp stop (`PTRACE_EVENT_SECCOMP`): the call has
    /// not run yet.
    Entry { nr: u64, args: [u64; 6] },
    /// At its exit: the return value, and whether it is an error (`-errno`).
    Exit { rval: i64, is_error: bool },
}

/// The system call `tid` is stopped in, and the audit architecture of that call (`AUDIT_ARCH_*`).
pub(crate) fn syscall_info(tid: Tid) -> io::Result<(u32, SyscallStop)> {
    let info = nix::sys::ptrace::syscall_info(Pid::from_raw(tid)).map_err(io::Error::from)?;
    let stop = match info.op {
        libc::PTRACE_SYSCALL_INFO_ENTRY => {
            // SAFETY: the kernel filled the `entry` member: `op` says so.
            let e = unsafe { info.u.entry };
            SyscallStop::Entry {
                nr: e.nr,
                args: e.args,
            }
        }
        libc::PTRACE_SYSCALL_INFO_SECCOMP => {
            // SAFETY: the kernel filled the `seccomp` member: `op` says so.
            let e = unsafe { info.u.seccomp };
            SyscallStop::Entry {
                nr: e.nr,
                args: e.args,
            }
        }
        libc::PTRACE_SYSCALL_INFO_EXIT => {
            // SAFETY: the kernel filled the `exit` member: `op` says so.
            let e = unsafe { info.u.exit };
            SyscallStop::Exit {
                rval: e.sval,
                is_error: e.is_error != 0,
            }
        }
        _ => SyscallStop::None,
    };
    Ok((info.arch, stop))
}

/// How many times SIGINT or SIGTERM arrived; counted by the handler.
static STOPS: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_stop_signal(_sig: libc::c_int) {
    STOPS.fetch_add(1, Ordering::SeqCst);
}

/// Installs handlers for SIGINT and SIGTERM that only count the signal ([`stop_count`]), without
/// `SA_RESTART`, so that a tracer waiting in `waitpid` is woken by them.
pub(crate) fn install_stop_handlers() -> io::Result<()> {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(on_stop_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only adds to an atomic, which is async-signal-safe; no handler this
        // replaces is relied on (the tracer's own signal handling is these two).
        unsafe { sigaction(sig, &action) }.map_err(io::Error::from)?;
    }
    Ok(())
}

/// How many SIGINT and SIGTERM have arrived since the process started.
pub(crate) fn stop_count() -> u32 {
    STOPS.load(Ordering::SeqCst)
}

/// A program started stopped, ready to be seized.
pub(crate) struct Child {
    /// Its pid.
    pub(crate) pid: Tid,
    /// Read end of a close-on-exec pipe: at its end without a byte when the program was executed;
    /// otherwise a byte (`b'E'` exec failed, `b'S'` the seccomp filter could not be installed) and
    /// the errno, native-endian.
    pub(crate) status: OwnedFd,
}

/// Forks; the child sets `PR_SET_NO_NEW_PRIVS` (when `no_new_privs`), stops itself with SIGSTOP
/// (for the tracer to seize it), installs `filter` as its seccomp filter when not empty, and executes
/// `path` with `argv` and the current environment. Returns once the child has stopped.
pub(crate) fn spawn_stopped(
    path: &CStr,
    argv: &[CString],
    filter: &[libc::sock_filter],
    no_new_privs: bool,
) -> io::Result<Child> {
    let (status_rx, status_tx) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    // Everything the child uses is prepared before the fork: after it, the child may only make
    // async-signal-safe calls (no allocation).
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut(),
    };
    let tx = status_tx.as_raw_fd();
    // SAFETY: the child runs only async-signal-safe system calls (prctl, signal, getpid, kill,
    // syscall, execv, write, _exit) on memory prepared above and never returns into Rust code; the parent
    // goes on as usual.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: see the fork above; `prog`, `ptrs` and `path` outlive these calls, which read
        // them only.
        unsafe {
            if no_new_privs && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                child_fail(tx, b'S');
            }
            // This process ignores SIGPIPE (Rust's runtime does); an ignored signal stays ignored
            // across exec, and the program must not start with it ignored.
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::kill(libc::getpid(), libc::SIGSTOP);
            if !filter.is_empty()
                && libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    0,
                    &prog as *const libc::sock_fprog,
                ) != 0
            {
                child_fail(tx, b'S');
            }
            libc::execv(path.as_ptr(), ptrs.as_ptr());
            child_fail(tx, b'E')
        }
    }
    drop(status_tx);
    // The child stops itself; wait for that stop (it is our child, not yet traced).
    loop {
        let mut st = 0i32;
        // SAFETY: `st` is a valid, writable c_int for the call.
        let r = unsafe { libc::waitpid(pid, &mut st, libc::WUNTRACED) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if libc::WIFSTOPPED(st) {
            break;
        }
        // It exited before stopping: only the no-new-privs failure does that.
        return Err(read_failure(&status_rx)
            .unwrap_or_else(|| io::Error::other("the program exited before it could be traced")));
    }
    Ok(Child {
        pid,
        status: status_rx,
    })
}

/// In the forked child: reports `what` and errno on the status pipe and exits with 127.
///
/// # Safety
/// Only in the child of [`spawn_stopped`], after the fork: it makes async-signal-safe calls only.
unsafe fn child_fail(tx: libc::c_int, what: u8) -> ! {
    // SAFETY: errno is thread-local and readable; `msg` is a valid buffer for the write; `_exit`
    // does not return.
    unsafe {
        let e = *libc::__errno_location();
        let mut msg = [0u8; 5];
        msg[0] = what;
        msg[1..].copy_from_slice(&e.to_ne_bytes());
        libc::write(tx, msg.as_ptr().cast(), msg.len());
        libc::_exit(127)
    }
}

/// What the status pipe of a [`Child`] says went wrong, if anything (call once the child is gone).
pub(crate) fn read_failure(status: &OwnedFd) -> Option<io::Error> {
    let mut msg = [0u8; 5];
    let n = rustix::io::read(status, &mut msg).ok()?;
    if n < 5 {
        return None;
    }
    let errno = i32::from_ne_bytes([msg[1], msg[2], msg[3], msg[4]]);
    let what = if msg[0] == b'S' {
        "cannot install the seccomp filter"
    } else {
        "cannot execute the program"
    };
    Some(io::Error::new(
        io::Error::from_raw_os_error(errno).kind(),
        format!("{what}: {}", io::Error::from_raw_os_error(errno)),
    ))
}
