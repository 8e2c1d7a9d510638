//! Playing the server side of a captured connection for a live client (`--serve`).

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vfu_codec::{Body, Command, Direction, Header, encode_to_vec};

use super::compare::{Side as Msg, Skip};
use super::error::{ReplayError, gone};
use super::fds::make_fds;
use super::options::{Options, Timing};
use super::plan::{Plan, Role, Waiting, describe};
use super::report::{Divergence, Output, Report, What};
use super::wire::{self, Incoming, Reader};

/// EINVAL: the answer to a request the capture does not have (what libvfio-user answers to a
/// command it does not support).
const EINVAL: u32 = 22;

/// A listening socket for [`Serving::serve`]; the socket file is removed when it is dropped.
pub struct Serving {
    listener: OwnedFd,
    path: PathBuf,
    id: Option<(u64, u64)>,
}

impl Serving {
    /// Listens at `path` (a stale socket file is replaced).
    pub fn bind(path: &Path) -> Result<Serving, ReplayError> {
        let listener = wire::listen(path)
            .map_err(|e| ReplayError::Socket(format!("listening on {}", path.display()), e))?;
        let id = std::fs::metadata(path).map(|m| (m.dev(), m.ino())).ok();
        Ok(Serving {
            listener,
            path: path.to_path_buf(),
            id,
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for one client, answers its requests with the captured replies (matched by order and
    /// command), sends the captured server requests, and compares what the client sends with the
    /// capture. Returns when the client closes the connection (with `--until`, when every captured
    /// message up to it was played).
    pub fn serve(
        self,
        plan: &Plan,
        options: &Options,
        out: &mut Output<'_>,
    ) -> Result<Report, ReplayError> {
        let fd = wire::accept(&self.listener)
            .map_err(|e| ReplayError::Socket(format!("accepting on {}", self.path.display()), e))?;
        let reader = Reader::start(&fd)
            .map_err(|e| ReplayError::Socket("starting the receiver".into(), e))?;
        out.set_conn(plan.conn);
        let n = plan.steps.len();
        let mut by_cmd: HashMap<Command, VecDeque<usize>> = HashMap::new();
        for (i, s) in plan.steps.iter().enumerate() {
            if matches!(s.role, Role::ClientCommand { .. }) {
                by_cmd.entry(s.header().cmd()).or_default().push_back(i);
            }
        }
        let mut s = Server {
            plan,
            options,
            fd,
            reader: Some(reader),
            out,
            by_cmd,
            consumed: vec![false; n],
            sent: vec![false; n],
            answered: vec![false; n],
            pending: Waiting::default(),
            deferred: VecDeque::new(),
            cursor: 0,
            report: Report::default(),
            stopped: false,
        };
        let result = s.run();
        wire::shutdown(s.fd.as_fd(), rustix::net::Shutdown::Both);
        if let Some(r) = s.reader.take() {
            r.join();
        }
        result?;
        Ok(s.report)
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Ok(m) = std::fs::metadata(&self.path)
            && Some((m.dev(), m.ino())) == self.id
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A live message waiting to be handled: bytes, descriptors, number in the replay, arrival time.
type Received = (Vec<u8>, Vec<OwnedFd>, u64, Instant);

struct Server<'p, 'o, 'w> {
    plan: &'p Plan,
    options: &'p Options,
    fd: OwnedFd,
    reader: Option<Reader>,
    out: &'o mut Output<'w>,
    /// Captured client commands not received yet, by command, in order.
    by_cmd: HashMap<Command, VecDeque<usize>>,
    /// By position: the client command was received.
    consumed: Vec<bool>,
    /// By position: the server message was sent.
    sent: Vec<bool>,
    /// By position: the server command got the client's reply.
    answered: Vec<bool>,
    /// Server commands sent and not answered: id → positions.
    pending: Waiting,
    /// Client commands that arrived while a server command waited for its reply.
    deferred: VecDeque<Received>,
    /// Everything before this position has been played.
    cursor: usize,
    report: Report,
    stopped: bool,
}

impl Server<'_, '_, '_> {
    fn run(&mut self) -> Result<(), ReplayError> {
        self.advance()?;
        loop {
            if self.stopped || (self.plan.cut && self.cursor == self.plan.steps.len()) {
                break;
            }
            let m = match self.deferred.pop_front() {
                Some(m) => m,
                None => match self.receive(None)? {
                    Some(m) => m,
                    None => break,
                },
            };
            self.handle(m)?;
        }
        self.report.completed = self.cursor == self.plan.steps.len();
        for (pos, step) in self.plan.steps.iter().enumerate() {
            if matches!(step.role, Role::ClientCommand { .. }) && !self.consumed[pos] {
                let d = Divergence {
                    index: Some(step.record.index),
                    replay_index: None,
                    message: step.describe(),
                    what: What::Missing("the client did not send it".into()),
                };
                self.out.divergence(&d)?;
                self.report.divergences.push(d);
            }
        }
        Ok(())
    }

    fn diverge(&mut self, d: Divergence) -> Result<(), ReplayError> {
        self.out.divergence(&d)?;
        self.report.divergences.push(d);
        Ok(())
    }

    /// The next live message, printed and recorded as it arrives; `None` at the end of the stream
    /// (or on a timeout, when `timeout` is given).
    fn receive(&mut self, timeout: Option<Duration>) -> Result<Option<Received>, ReplayError> {
        let Some(r) = self.reader.as_mut() else {
            return Ok(None);
        };
        let next = match r.next(timeout) {
            Ok(m) => m,
            Err(e) => {
                self.diverge(Divergence {
                    index: None,
                    replay_index: None,
                    message: "the client's stream".into(),
                    what: What::Unexpected(format!("cannot be read any further: {e}")),
                })?;
                Incoming::Eof { partial: 0 }
            }
        };
        match next {
            Incoming::Message(data, fds) => {
                let seq = self
                    .out
                    .message(Direction::ClientToServer, &data, fds.len() as u32)?;
                self.report.received += 1;
                Ok(Some((data, fds, seq, Instant::now())))
            }
            Incoming::Eof { .. } | Incoming::Timeout => Ok(None),
        }
    }

    fn send(&mut self, pos: usize, data: &[u8], fds: &[OwnedFd]) -> Result<bool, ReplayError> {
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
        match wire::send(self.fd.as_fd(), data, &borrowed) {
            Ok(()) => {
                self.sent[pos] = true;
                self.report.sent += 1;
                self.out
                    .message(Direction::ServerToClient, data, fds.len() as u32)?;
                Ok(true)
            }
            Err(e) if gone(&e) => {
                self.out.note("the client closed the connection")?;
                self.stopped = true;
                Ok(false)
            }
            Err(e) => Err(ReplayError::Socket(
                format!("sending #{}", self.plan.steps[pos].record.index),
                e,
            )),
        }
    }

    /// Plays the captured server commands that come before the next client command the client has
    /// not sent yet.
    fn advance(&mut self) -> Result<(), ReplayError> {
        while self.cursor < self.plan.steps.len() && !self.stopped {
            let pos = self.cursor;
            match self.plan.steps[pos].role {
                Role::ClientCommand { .. } if !self.consumed[pos] => break,
                Role::ServerReply { .. } if !self.sent[pos] => break,
                Role::ServerCommand { .. } if !self.sent[pos] => self.send_command(pos)?,
                _ => {}
            }
            self.cursor += 1;
        }
        Ok(())
    }

    fn send_command(&mut self, pos: usize) -> Result<(), ReplayError> {
        let step = &self.plan.steps[pos];
        if self.options.timing == Timing::Original && pos > 0 {
            let gap = step
                .record
                .ts_ns
                .saturating_sub(self.plan.steps[pos - 1].record.ts_ns);
            std::thread::sleep(Duration::from_nanos(gap).min(self.options.timeout));
        }
        let h = step.header();
        let (id, no_reply) = (h.msg_id.get(), h.no_reply());
        let fds = make_fds(step.fds).map_err(|e| {
            ReplayError::Socket(format!("making descriptors for #{}", step.record.index), e)
        })?;
        if self.send(pos, &step.record.data, &fds)? && !no_reply {
            self.pending.push(id, pos);
        }
        Ok(())
    }

    /// Waits for the client's reply to the server command at `pos`, keeping client commands that
    /// arrive meanwhile for later.
    fn wait_reply(&mut self, pos: usize) -> Result<(), ReplayError> {
        while !self.answered[pos] && !self.stopped {
            match self.receive(Some(self.options.timeout))? {
                Some(m) if Header::peek(&m.0).is_some_and(|h| !h.is_reply()) => {
                    self.deferred.push_back(m);
                }
                Some(m) => self.handle(m)?,
                None => {
                    let step = &self.plan.steps[pos];
                    let why = format!(
                        "the client did not answer {} within {:?}, or closed the connection",
                        step.describe(),
                        self.options.timeout
                    );
                    let index = match step.role {
                        Role::ServerCommand { reply: Some(j) } => self.plan.steps[j].record.index,
                        _ => step.record.index,
                    };
                    self.diverge(Divergence {
                        index: Some(index),
                        replay_index: None,
                        message: step.describe(),
                        what: What::Missing(why),
                    })?;
                    self.out.note("replay stopped")?;
                    self.stopped = true;
                }
            }
        }
        Ok(())
    }

    fn handle(&mut self, (data, fds, seq, arrived): Received) -> Result<(), ReplayError> {
        let live = Msg {
            bytes: &data,
            fds: fds.len() as u32,
        };
        drop(fds);
        let Some(h) = Header::peek(&data).filter(|h| h.message_type().is_some()) else {
            return self.diverge(Divergence {
                index: None,
                replay_index: Some(seq),
                message: describe(&data),
                what: What::Unexpected("neither a command nor a reply".into()),
            });
        };
        let (id, cmd) = (h.msg_id.get(), h.cmd());
        let steps = &self.plan.steps;
        if h.is_reply() {
            let request = self.pending.take(steps, id, cmd);
            let Some(request) = request else {
                return self.diverge(Divergence {
                    index: None,
                    replay_index: Some(seq),
                    message: describe(&data),
                    what: What::Unexpected(format!(
                        "no {cmd} server command with id {id} is waiting for a reply"
                    )),
                });
            };
            self.answered[request] = true;
            if let Role::ServerCommand { reply: Some(j) } = steps[request].role {
                let c = &steps[j].record;
                // A DMA_READ reply carries the live client's memory, which is its own.
                let skip = Skip {
                    data: cmd == Command::DMA_READ,
                };
                if let Some(d) = Divergence::of_fields(c, live, skip, seq) {
                    self.diverge(d)?;
                }
            }
            return Ok(());
        }
        let Some(pos) = self.by_cmd.get_mut(&cmd).and_then(VecDeque::pop_front) else {
            let why = if steps
                .iter()
                .any(|s| matches!(s.role, Role::ClientCommand { .. }) && s.header().cmd() == cmd)
            {
                format!("the capture has no more {cmd} requests")
            } else {
                format!("the capture has no {cmd} request")
            };
            self.diverge(Divergence {
                index: None,
                replay_index: Some(seq),
                message: describe(&data),
                what: What::Unexpected(format!(
                    "{why}; answered {}",
                    super::memory::errno_text(EINVAL)
                )),
            })?;
            if !h.no_reply() {
                let reply = encode_to_vec(&Header::error_reply(id, cmd, EINVAL), &Body::Empty)
                    .unwrap_or_default();
                let borrowed: [BorrowedFd<'_>; 0] = [];
                match wire::send(self.fd.as_fd(), &reply, &borrowed) {
                    Ok(()) => {
                        self.report.sent += 1;
                        self.out.message(Direction::ServerToClient, &reply, 0)?;
                    }
                    Err(e) if gone(&e) => self.stopped = true,
                    Err(e) => return Err(ReplayError::Socket("answering the client".into(), e)),
                }
            }
            return Ok(());
        };
        self.consumed[pos] = true;
        let c = &steps[pos].record;
        if let Some(d) = Divergence::of_fields(c, live, Skip::default(), seq) {
            self.diverge(d)?;
        }
        match steps[pos].role {
            Role::ClientCommand { reply: Some(j) } => {
                // Server commands the original sent between this request and its reply (a device
                // doing DMA while it handles the request) go first, each awaited when the
                // original server had its reply before answering.
                for (k, step) in steps.iter().enumerate().take(j).skip(pos + 1) {
                    if let Role::ServerCommand { reply } = step.role
                        && !self.sent[k]
                    {
                        self.send_command(k)?;
                        if reply.is_some_and(|r| r < j) {
                            self.wait_reply(k)?;
                        }
                    }
                    if self.stopped {
                        return Ok(());
                    }
                }
                if self.options.timing == Timing::Original {
                    let gap = Duration::from_nanos(steps[j].record.ts_ns.saturating_sub(c.ts_ns))
                        .min(self.options.timeout);
                    let left = (arrived + gap).saturating_duration_since(Instant::now());
                    std::thread::sleep(left);
                }
                let mut reply = steps[j].record.data.clone();
                reply[..2].copy_from_slice(&id.to_le_bytes());
                let fds = make_fds(steps[j].fds).map_err(|e| {
                    ReplayError::Socket(
                        format!("making descriptors for #{}", steps[j].record.index),
                        e,
                    )
                })?;
                self.send(j, &reply, &fds)?;
            }
            Role::ClientCommand { reply: None } if !h.no_reply() => {
                self.out.note(&format!(
                    "the capture has no reply to #{}; none sent",
                    c.index
                ))?;
            }
            _ => {}
        }
        self.advance()
    }
}
