//! The ptrace loop: one thread waits for every tracee's stops, decodes the system calls of interest at
//! their exit, and lets each tracee go on at once. It never changes a system call, its arguments or
//! its result, and it delivers every signal a tracee was stopped for.

use std::collections::HashMap;
use std::ffi::{CString, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::sys::ptrace::{self, Options};
use nix::unistd::Pid;

use super::abi::{self, Call};
use super::event::{Event, Ids, Sink, Summary, Target};
use super::fds::{FdKind, FdTables};
use super::stream::Streams;
use super::sys::{self, Resume, Status, SyscallStop, Tid};
use super::vduse::Devices;

const PTRACE_EVENT_FORK: i32 = 1;
const PTRACE_EVENT_VFORK: i32 = 2;
const PTRACE_EVENT_CLONE: i32 = 3;
const PTRACE_EVENT_EXEC: i32 = 4;
const PTRACE_EVENT_SECCOMP: i32 = 7;
const PTRACE_EVENT_STOP: i32 = 128;
/// `SIGTRAP | 0x80`: a syscall-stop (with `PTRACE_O_TRACESYSGOOD`).
const SYSCALL_STOP: i32 = libc::SIGTRAP | 0x80;

/// A system call stopped at its entry, to finish at its exit.
pub(super) struct Pending {
    pub(super) call: Call,
    pub(super) args: [u64; 6],
    pub(super) kind: FdKind,
    /// An ioctl's argument as it went in.
    pub(super) arg_in: Option<Vec<u8>>,
}

pub(super) struct Thread {
    tgid: i32,
    pending: Option<Pending>,
}

/// What the tracer is doing.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Phase {
    /// Recording.
    Tracing,
    /// Launch mode, after a stop request or a failure: the program's seccomp filter needs a tracer,
    /// so every stop is passed on and nothing is decoded until the program exits.
    PassThrough,
    /// Every thread was interrupted and is detached at its next stop.
    Detaching,
}

pub(crate) struct Tracer<'s> {
    pub(super) launch: bool,
    pub(super) threads: HashMap<Tid, Thread>,
    pub(super) fds: FdTables,
    pub(super) streams: Streams,
    pub(super) devices: Devices,
    pub(super) ids: Ids,
    pub(super) sink: &'s mut dyn Sink,
    pub(super) phase: Phase,
    /// The first error of the sink (the output), which stops the recording.
    pub(super) failure: Option<io::Error>,
    pub(super) stops_seen: u32,
    pub(super) root: Option<(Tid, rustix::fd::OwnedFd)>,
    /// The note to make when the launched program's exec is seen.
    pub(super) started: Option<String>,
    pub(super) summary: Summary,
    pub(super) buf: Vec<u8>,
    /// Whether a socket inode is held by a traced process (attach mode), by inode.
    pub(super) held: HashMap<u32, bool>,
}

pub(super) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn options(launch: bool) -> Options {
    let o = Options::PTRACE_O_TRACESYSGOOD
        | Options::PTRACE_O_TRACECLONE
        | Options::PTRACE_O_TRACEFORK
        | Options::PTRACE_O_TRACEVFORK
        | Options::PTRACE_O_TRACEEXEC;
    if launch {
        o | Options::PTRACE_O_TRACESECCOMP
    } else {
        o
    }
}

/// The thread group of `tid`, from `/proc/TID/status`.
fn tgid_of(tid: Tid) -> i32 {
    std::fs::read_to_string(format!("/proc/{tid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Tgid:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(tid)
}

/// The threads of process `pid`, from `/proc/PID/task`.
fn tasks(pid: i32) -> io::Result<Vec<Tid>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        if let Some(t) = e?.file_name().to_str().and_then(|s| s.parse().ok()) {
            v.push(t);
        }
    }
    v.sort_unstable();
    Ok(v)
}

/// Finds a program as `execvp` would: a name with a slash as it is, else along `PATH`.
fn find_program(prog: &OsString) -> io::Result<PathBuf> {
    let p = Path::new(prog);
    if prog.as_bytes().contains(&b'/') {
        return Ok(p.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    for dir in std::env::split_paths(&path) {
        let cand = dir.join(p);
        if let Ok(m) = std::fs::metadata(&cand)
            && m.is_file()
            && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
        {
            return Ok(cand);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: not found in PATH", p.display()),
    ))
}

fn cstring(s: &[u8]) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "argument holds a NUL"))
}

impl<'s> Tracer<'s> {
    /// Starts or attaches to the target; the tracees run once [`run`](Self::run) is called.
    pub(crate) fn start(target: &Target, sink: &'s mut dyn Sink) -> io::Result<Self> {
        sys::install_stop_handlers()?;
        let mut t = Tracer {
            launch: matches!(target, Target::Launch(_)),
            threads: HashMap::new(),
            fds: FdTables::new(),
            streams: Streams::new(matches!(target, Target::Launch(_))),
            devices: Devices::default(),
            ids: Ids::default(),
            sink,
            phase: Phase::Tracing,
            failure: None,
            stops_seen: 0,
            root: None,
            started: None,
            summary: Summary::default(),
            buf: Vec::with_capacity(64 << 10),
            held: HashMap::new(),
        };
        match target {
            Target::Launch(argv) => {
                let Some(prog) = argv.first() else {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "no program given",
                    ));
                };
                let path = find_program(prog)?;
                let cpath = cstring(path.as_os_str().as_bytes())?;
                let cargs = argv
                    .iter()
                    .map(|a| cstring(a.as_bytes()))
                    .collect::<io::Result<Vec<_>>>()?;
                let no_new_privs = !rustix::process::geteuid().is_root();
                let child = sys::spawn_stopped(&cpath, &cargs, &abi::filter(), no_new_privs)?;
                let pid = Pid::from_raw(child.pid);
                if let Err(e) = ptrace::seize(pid, options(true)) {
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                    return Err(io::Error::other(format!(
                        "PTRACE_SEIZE of the program: {e}"
                    )));
                }
                nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT)
                    .map_err(io::Error::from)?;
                t.threads.insert(
                    child.pid,
                    Thread {
                        tgid: child.pid,
                        pending: None,
                    },
                );
                t.root = Some((child.pid, child.status));
                t.started = Some(format!("started {} as pid {}", path.display(), child.pid));
            }
            Target::Attach(pids) => {
                for &pid in pids {
                    t.attach(pid)?;
                }
            }
        }
        Ok(t)
    }

    /// Seizes every thread of `pid` (listing again until no new thread appeared) and interrupts each,
    /// so that its next stop puts it under `PTRACE_SYSCALL`.
    fn attach(&mut self, pid: i32) -> io::Result<()> {
        let mut seized = 0;
        loop {
            let tids = tasks(pid).map_err(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    io::Error::new(e.kind(), format!("no process {pid}"))
                } else {
                    io::Error::new(e.kind(), format!("pid {pid}: {e}"))
                }
            })?;
            let mut new = false;
            for tid in tids {
                if self.threads.contains_key(&tid) {
                    continue;
                }
                let p = Pid::from_raw(tid);
                match ptrace::seize(p, options(false)) {
                    Ok(()) => {}
                    // The thread ended between the listing and the seize.
                    Err(nix::errno::Errno::ESRCH) if seized > 0 => continue,
                    Err(e) => {
                        return Err(io::Error::other(format!(
                            "cannot attach to pid {pid} (thread {tid}): {e}{}",
                            if e == nix::errno::Errno::EPERM {
                                " (another tracer, or /proc/sys/kernel/yama/ptrace_scope)"
                            } else {
                                ""
                            }
                        )));
                    }
                }
                let _ = ptrace::interrupt(p);
                self.threads.insert(
                    tid,
                    Thread {
                        tgid: pid,
                        pending: None,
                    },
                );
                seized += 1;
                new = true;
            }
            if !new {
                break;
            }
        }
        self.note(None, &format!("attached to pid {pid} ({seized} threads)"))
    }

    /// Whether socket `inode` is open in a traced process (found once, from `/proc/PID/fd`).
    pub(super) fn traced_socket(&mut self, inode: u32) -> bool {
        if inode == 0 {
            return false;
        }
        if let Some(&h) = self.held.get(&inode) {
            return h;
        }
        let link = format!("socket:[{inode}]");
        let mut tgids: Vec<i32> = self.threads.values().map(|t| t.tgid).collect();
        tgids.sort_unstable();
        tgids.dedup();
        let held = tgids.iter().any(|tgid| {
            std::fs::read_dir(format!("/proc/{tgid}/fd")).is_ok_and(|d| {
                d.flatten().any(|e| {
                    std::fs::read_link(e.path()).is_ok_and(|l| l.as_os_str() == link.as_str())
                })
            })
        });
        self.held.insert(inode, held);
        held
    }

    pub(super) fn note(&mut self, conn: Option<u32>, text: &str) -> io::Result<()> {
        self.sink.event(&Event::Note { conn, text })
    }

    /// Runs until every tracee has exited or been detached.
    pub(crate) fn run(mut self) -> io::Result<Summary> {
        while !self.threads.is_empty() {
            let stops = sys::stop_count();
            if stops > self.stops_seen {
                self.stops_seen = stops;
                self.stop_requested();
            }
            // Take what is ready; before sleeping, let the sink flush.
            let ready = match sys::poll_any() {
                Ok(Some(r)) => Ok(r),
                Ok(None) => {
                    if self.phase == Phase::Tracing
                        && let Err(e) = self.sink.idle()
                    {
                        self.fail(e);
                    }
                    sys::wait_any()
                }
                Err(e) => Err(e),
            };
            let (tid, status) = match ready {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::ECHILD) => break,
                Err(e) => {
                    // Not expected; leave the tracees running rather than hold them.
                    self.fail(e);
                    self.detach_all();
                    break;
                }
            };
            let r = catch_unwind(AssertUnwindSafe(|| self.on_status(tid, status)));
            if r.is_err() {
                self.fail(io::Error::other("internal error while decoding a stop"));
                // The thread whose stop panicked is still stopped: let it go.
                let _ = sys::resume(tid, self.resume_mode(false), 0);
            }
        }
        if self.phase == Phase::Tracing || self.failure.is_none() {
            let ts = now_ns();
            let r = self
                .streams
                .end_all(ts, self.sink)
                .and_then(|()| self.devices.end_all(self.sink));
            if let Err(e) = r {
                self.fail(e);
            }
        }
        match self.failure.take() {
            Some(e) => Err(e),
            None => Ok(self.summary),
        }
    }

    /// SIGINT or SIGTERM: attached processes are detached; a launched program keeps its tracer (as
    /// a pass-through) until it exits, unless asked a second time.
    fn stop_requested(&mut self) {
        if self.launch && self.phase == Phase::Tracing {
            self.phase = Phase::PassThrough;
            let _ = self.finish_recording();
            let _ = self.note(
                None,
                "stop requested: recording ended; the program keeps running with its system calls passed on until it exits (signal again to detach: its traced calls then fail with ENOSYS, as under strace --seccomp-bpf)",
            );
        } else if self.phase != Phase::Detaching {
            // The calls the threads are in are recorded as they are detached; the streams end
            // when the last one is (at the end of `run`).
            self.detach_all();
        }
    }

    /// Ends every stream now (partial messages become truncated records).
    fn finish_recording(&mut self) -> io::Result<()> {
        let ts = now_ns();
        self.streams.end_all(ts, self.sink)?;
        self.devices.end_all(self.sink)
    }

    /// The tracer's own failure: stop recording and let the tracees go on as before.
    pub(super) fn fail(&mut self, e: io::Error) {
        if self.failure.is_none() {
            self.failure = Some(e);
        }
        if self.phase == Phase::Tracing {
            if self.launch {
                self.phase = Phase::PassThrough;
            } else {
                self.detach_all();
            }
        }
    }

    /// Interrupts every thread; each is detached at its next stop.
    fn detach_all(&mut self) {
        self.phase = Phase::Detaching;
        let tids: Vec<Tid> = self.threads.keys().copied().collect();
        for tid in tids {
            if ptrace::interrupt(Pid::from_raw(tid)).is_err() {
                // Gone already (its exit is still to be reaped) or not ours any more.
                if !Path::new(&format!("/proc/{tid}")).exists() {
                    self.threads.remove(&tid);
                }
            }
        }
    }

    fn resume_mode(&self, pending: bool) -> Resume {
        match self.phase {
            Phase::Detaching => Resume::Detach,
            Phase::PassThrough => Resume::Cont,
            Phase::Tracing if !self.launch || pending => Resume::Syscall,
            Phase::Tracing => Resume::Cont,
        }
    }

    /// Resumes `tid`; one that vanished meanwhile (killed) is forgotten when its exit is reaped.
    fn resume(&mut self, tid: Tid, how: Resume, sig: i32) {
        // A thread that cannot be resumed was killed: its exit is still to be reaped. A detached
        // one (or one whose detach failed for that reason) is no longer ours.
        let _ = sys::resume(tid, how, sig);
        if how == Resume::Detach {
            self.threads.remove(&tid);
        }
    }

    fn on_status(&mut self, tid: Tid, status: Status) {
        match status {
            Status::Exited(_) | Status::Killed(_) => self.gone(tid, status),
            Status::Stopped { sig, event } => self.on_stop(tid, sig, event),
        }
    }

    /// A thread ended; when it was the last of its process, the process's sockets end too.
    fn gone(&mut self, tid: Tid, status: Status) {
        let Some(t) = self.threads.remove(&tid) else {
            return;
        };
        if let Some((root, pipe)) = &self.root
            && *root == tid
        {
            self.summary.exit = Some(match status {
                Status::Exited(c) => c,
                Status::Killed(s) => 128 + s,
                Status::Stopped { .. } => 0,
            });
            if let Some(e) = sys::read_failure(pipe) {
                self.fail(e);
            }
        }
        if self.phase == Phase::Detaching {
            return;
        }
        if self.threads.values().any(|o| o.tgid == t.tgid) {
            return;
        }
        let ts = now_ns();
        let mut followed = self.root.as_ref().is_some_and(|(r, _)| *r == tid);
        for kind in self.fds.forget_process(t.tgid) {
            followed |= kind != FdKind::Other;
            if let FdKind::UnixStream { inode, .. } = kind
                && self.phase == Phase::Tracing
                && let Err(e) = self.streams.end(inode, ts, self.sink)
            {
                self.fail(e);
            }
        }
        if !followed {
            return;
        }
        let how = match status {
            Status::Exited(c) => format!("exited with status {c}"),
            Status::Killed(s) => format!("was killed by signal {s}"),
            Status::Stopped { .. } => String::new(),
        };
        if self.phase == Phase::Tracing
            && let Err(e) = self.note(None, &format!("pid {} {how}", t.tgid))
        {
            self.fail(e);
        }
    }

    fn on_stop(&mut self, tid: Tid, sig: i32, event: i32) {
        // A new thread or child whose event in its parent has not been reaped yet.
        self.threads.entry(tid).or_insert_with(|| Thread {
            tgid: tgid_of(tid),
            pending: None,
        });
        if self.phase == Phase::Detaching {
            return self.detach_stop(tid, sig, event);
        }
        match (sig, event) {
            (_, PTRACE_EVENT_SECCOMP) | (SYSCALL_STOP, 0) => self.on_syscall_stop(tid),
            (_, PTRACE_EVENT_FORK | PTRACE_EVENT_VFORK | PTRACE_EVENT_CLONE) => {
                if let Ok(new) = ptrace::getevent(Pid::from_raw(tid)) {
                    let new = new as Tid;
                    self.threads.entry(new).or_insert_with(|| Thread {
                        tgid: if event == PTRACE_EVENT_CLONE {
                            tgid_of(new)
                        } else {
                            new
                        },
                        pending: None,
                    });
                }
                let how = self.resume_mode(false);
                self.resume(tid, how, 0);
            }
            (_, PTRACE_EVENT_EXEC) => {
                if let Some(n) = self.started.take()
                    && let Err(e) = self.note(None, &n)
                {
                    self.fail(e);
                }
                let tgid = self.threads.get(&tid).map_or(tid, |t| t.tgid);
                // The other threads of the process are gone; its close-on-exec descriptors too.
                self.threads.retain(|&t, th| th.tgid != tgid || t == tid);
                if let Some(th) = self.threads.get_mut(&tid) {
                    th.pending = None;
                }
                self.fds.forget_process(tgid);
                let how = self.resume_mode(false);
                self.resume(tid, how, 0);
            }
            (libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU, PTRACE_EVENT_STOP) => {
                // A group-stop (job control): stay stopped until SIGCONT, as without a tracer.
                self.resume(tid, Resume::Listen, 0);
            }
            (_, PTRACE_EVENT_STOP) | (_, 1..) => {
                let how = self.resume_mode(false);
                self.resume(tid, how, 0);
            }
            // A signal-delivery-stop: deliver it.
            (sig, _) => {
                let pending = self.threads.get(&tid).is_some_and(|t| t.pending.is_some());
                let how = self.resume_mode(pending);
                self.resume(tid, how, sig);
            }
        }
    }

    /// A stop while detaching: finish a system call whose entry was seen, then detach, delivering
    /// the signal of a signal-delivery-stop.
    fn detach_stop(&mut self, tid: Tid, sig: i32, event: i32) {
        let deliver = if event == 0 && sig != SYSCALL_STOP && sig != libc::SIGTRAP {
            sig
        } else {
            0
        };
        if sig == SYSCALL_STOP
            && let Ok((_, SyscallStop::Exit { rval, is_error })) = sys::syscall_info(tid)
            && self.failure.is_none()
        {
            let pending = self.threads.get_mut(&tid).and_then(|t| t.pending.take());
            if let Some(p) = pending {
                let tgid = self.threads.get(&tid).map_or(tid, |t| t.tgid);
                if let Err(e) = self.on_exit(tid, tgid, p, rval, is_error) {
                    self.failure = Some(e);
                }
            }
        }
        self.resume(tid, Resume::Detach, deliver);
    }

    fn on_syscall_stop(&mut self, tid: Tid) {
        let info = sys::syscall_info(tid);
        let tgid = self.threads.get(&tid).map_or(tid, |t| t.tgid);
        let mut pending = false;
        match info {
            Ok((arch, SyscallStop::Entry { nr, args })) if self.phase == Phase::Tracing => {
                if let Some(call) = abi::call(arch, nr) {
                    let p = self.on_entry(tid, tgid, call, args);
                    pending = p.is_some();
                    if let Some(t) = self.threads.get_mut(&tid) {
                        t.pending = p;
                    }
                }
            }
            Ok((_, SyscallStop::Exit { rval, is_error })) => {
                let p = self.threads.get_mut(&tid).and_then(|t| t.pending.take());
                if let Some(p) = p
                    && self.phase == Phase::Tracing
                    && let Err(e) = self.on_exit(tid, tgid, p, rval, is_error)
                {
                    self.fail(e);
                }
            }
            _ => {}
        }
        let how = self.resume_mode(pending);
        self.resume(tid, how, 0);
    }
}
