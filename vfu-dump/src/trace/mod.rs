//! `vfu-dump trace`: the vfio-user and VDUSE traffic of running processes, seen with ptrace rather
//! than through a proxy, so that nothing about the session has to change (no new socket path, no
//! restart), and VDUSE, which has no socket, can be recorded at all.
//!
//! ```text
//!  QEMU ──sendmsg/recvmsg──▶ socket ◀──recvmsg/sendmsg── device       daemon ──read/write/ioctl──▶ /dev/vduse/*
//!    ▲                                                     ▲             ▲
//!    └──────────── ptrace stops at these calls ────────────┴─────────────┘   (vfu-dump trace)
//! ```
//!
//! [`run`] starts a program or attaches to processes and reports [`Event`]s to a [`Sink`]:
//! connections opened (with their capture names), whole messages (with their direction, time,
//! bytes and what each descriptor that came with them is), VDUSE ioctls (as the ioctl records of
//! the capture format, [`crate::capture::ioctl`]), notes and closes. What to do with them (print as
//! `read` does, write a capture) is the caller's.
//!
//! # Mechanism
//!
//! - **ptrace.** Every thread is seized (`PTRACE_SEIZE`) with `TRACECLONE`, `TRACEFORK`,
//!   `TRACEVFORK` and `TRACEEXEC`, so threads and children are followed as they appear. Where a
//!   thread is in a system call comes from `PTRACE_GET_SYSCALL_INFO` (entry, exit, seccomp), and the
//!   bytes a call moved are read with `process_vm_readv` at its exit, bounded by its return value.
//!   The tracer only reads: no call, argument or result is ever changed, and every signal a tracee
//!   stops for is delivered to it.
//! - **Launch mode** (`trace -- CMD ARGS…`): the child installs a seccomp filter before it executes
//!   the program (as `strace --seccomp-bpf` does) that stops it only at the calls the tracer decodes
//!   (`abi.rs`: `read`, `write`, `readv`, `writev`, `recvfrom`, `sendto`, `recvmsg`, `sendmsg`,
//!   `recvmmsg`, `sendmmsg`, `ioctl`, and `close`, `close_range`, `dup2`, `dup3`, which keep the
//!   descriptor cache exact); every other call runs without a stop. A call on a descriptor that is
//!   not a UNIX stream socket or a VDUSE node costs one stop at its entry and none at its exit.
//! - **Attach mode** (`trace -p PID,…`): a filter cannot be added to a running process, so every
//!   system call stops at its entry and exit (`PTRACE_SYSCALL`), and those not of interest are let
//!   go at once.
//! - **Descriptors** are identified from `/proc/PID/fd` and UNIX sockets through `sock_diag`
//!   (`fds.rs`, `diag.rs`); the bytes of each socket pair are reassembled per direction into whole
//!   messages (`stream.rs`); VDUSE is decoded in `vduse.rs`.
//! - **Stopping.** On SIGINT or SIGTERM, or when the sink fails, attached processes are detached
//!   (each at its next stop, after the call it was in is recorded) and run on as before. A launched
//!   program keeps a pass-through tracer until it exits, because its seccomp filter makes a traced
//!   call fail with `ENOSYS` once no tracer is attached; a second signal detaches it anyway. A
//!   tracee that dies, is killed mid-call or executes another program is followed through it: its
//!   unfinished call is dropped, an exec forgets the process's descriptors, an exit ends its sockets
//!   (a partial message becomes a truncated record).
//!
//! All `unsafe` code is in `sys.rs`, one reason per block.

mod abi;
mod calls;
mod diag;
mod engine;
mod fds;
mod mem;
mod stream;
mod sys;
mod vduse;

mod event;

use std::io;

pub use event::{Event, Sink, Summary, Target};

/// Traces `target` until every tracee has exited or was detached (after SIGINT or SIGTERM, or a
/// failure of `sink`), reporting to `sink` as it goes.
///
/// Installs handlers for SIGINT and SIGTERM in this process (they only note the signal).
pub fn run(target: &Target, sink: &mut dyn Sink) -> io::Result<Summary> {
    engine::Tracer::start(target, sink)?.run()
}
