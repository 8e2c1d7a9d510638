//! Playing the client side of a captured connection against a live server (`--connect`).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use vfu_codec::vfio::DmaAccess;
use vfu_codec::{Body, Command, Direction, Header, decode, encode_to_vec};

use super::compare::{Side as Msg, Skip};
use super::error::{ReplayError, gone};
use super::fds::make_fds;
use super::memory::{EIO, Memory};
use super::options::{Options, Timing};
use super::plan::{Fds, Plan, Role, Waiting, describe};
use super::report::{Divergence, Output, Report, What};
use super::wire::{self, Incoming, Reader};

/// EINVAL, for a server request the replay cannot serve as asked.
const EINVAL: u32 = 22;
/// ENOSYS, the QEMU client's answer to a server request it does not know.
const ENOSYS: u32 = 38;

/// How long the replay keeps reading after its last message, for messages the capture does not
/// have, unless the server closes the connection first.
const SETTLE: Duration = Duration::from_millis(500);

/// Plays the client messages of `plan` to the server listening at `server`, answers its requests,
/// and compares what it sends with the capture.
pub fn play(
    plan: &Plan,
    server: &Path,
    options: &Options,
    out: &mut Output<'_>,
) -> Result<Report, ReplayError> {
    let fd = wire::connect(server, options.timeout)
        .map_err(|e| ReplayError::Socket(format!("connecting to {}", server.display()), e))?;
    let reader =
        Reader::start(&fd).map_err(|e| ReplayError::Socket("starting the receiver".into(), e))?;
    out.set_conn(plan.conn);
    let mut c = Client {
        plan,
        options,
        fd,
        reader: Some(reader),
        out,
        mem: Memory::default(),
        pending: Waiting::default(),
        replied: vec![false; plan.steps.len()],
        server_cmds: plan
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s.role, Role::ServerCommand { .. }))
            .map(|(i, _)| i)
            .collect(),
        server_seen: 0,
        report: Report::default(),
        stopped: false,
        start: Instant::now(),
    };
    let result = c.run();
    wire::shutdown(c.fd.as_fd(), rustix::net::Shutdown::Both);
    if let Some(r) = c.reader.take() {
        r.join();
    }
    result?;
    Ok(c.report)
}

struct Client<'p, 'o, 'w> {
    plan: &'p Plan,
    options: &'p Options,
    fd: OwnedFd,
    reader: Option<Reader>,
    out: &'o mut Output<'w>,
    mem: Memory,
    /// Commands sent and not answered yet: id → positions, oldest first.
    pending: Waiting,
    /// By position: the command got its live reply.
    replied: Vec<bool>,
    /// Positions of the captured server commands, in order.
    server_cmds: Vec<usize>,
    /// How many server commands arrived live.
    server_seen: usize,
    report: Report,
    stopped: bool,
    start: Instant,
}

/// What [`Client::wait`] waits for.
#[derive(Clone, Copy)]
enum Until {
    Reply(usize),
    ServerCommand(usize),
}

impl Client<'_, '_, '_> {
    fn run(&mut self) -> Result<(), ReplayError> {
        let plan = self.plan;
        for (pos, step) in plan.steps.iter().enumerate() {
            match step.role {
                Role::ClientCommand { .. } => self.send_command(pos)?,
                Role::ServerReply { request } => self.wait(Until::Reply(request), pos)?,
                Role::ServerCommand { .. } => {
                    let k = self.server_cmds.iter().position(|&p| p == pos).unwrap_or(0);
                    self.wait(Until::ServerCommand(k), pos)?;
                }
                Role::ClientReply { .. } => {}
            }
            if self.stopped {
                return Ok(());
            }
        }
        self.report.completed = true;
        if !self.plan.cut {
            // Messages the capture does not have: read until the server closes, for a moment.
            wire::shutdown(self.fd.as_fd(), rustix::net::Shutdown::Write);
            let end = Instant::now() + SETTLE;
            loop {
                let left = end.saturating_duration_since(Instant::now());
                match self.next(Some(left))? {
                    Incoming::Message(data, fds) => self.incoming(data, fds)?,
                    Incoming::Eof { .. } | Incoming::Timeout => break,
                }
            }
        }
        Ok(())
    }

    /// The next live message; a stream that cannot be read any further (a `msg_size` beyond what
    /// a replay reads, a socket error) is a divergence, then the end.
    fn next(&mut self, timeout: Option<Duration>) -> Result<Incoming, ReplayError> {
        let Some(r) = self.reader.as_mut() else {
            return Ok(Incoming::Eof { partial: 0 });
        };
        match r.next(timeout) {
            Ok(m) => Ok(m),
            Err(e) => {
                self.diverge(Divergence {
                    index: None,
                    replay_index: None,
                    message: "the server's stream".into(),
                    what: What::Unexpected(format!("cannot be read any further: {e}")),
                })?;
                Ok(Incoming::Eof { partial: 0 })
            }
        }
    }

    fn diverge(&mut self, d: Divergence) -> Result<(), ReplayError> {
        self.out.divergence(&d)?;
        self.report.divergences.push(d);
        Ok(())
    }

    fn done(&self, until: Until) -> bool {
        match until {
            Until::Reply(p) => self.replied[p],
            Until::ServerCommand(k) => self.server_seen > k,
        }
    }

    /// Receives (and handles) live messages until `until` holds; `pos` is the captured message
    /// awaited, named if it never comes.
    fn wait(&mut self, until: Until, pos: usize) -> Result<(), ReplayError> {
        while !self.done(until) {
            let why = match self.next(Some(self.options.timeout))? {
                Incoming::Message(data, fds) => {
                    self.incoming(data, fds)?;
                    continue;
                }
                Incoming::Timeout => format!(
                    "nothing within {:?} (the original server sent it)",
                    self.options.timeout
                ),
                Incoming::Eof { partial: 0 } => {
                    "the server closed the connection before sending it".to_owned()
                }
                Incoming::Eof { partial } => format!(
                    "the server closed the connection before sending it ({partial} bytes of an unfinished message were left)"
                ),
            };
            let step = &self.plan.steps[pos];
            let d = Divergence {
                index: Some(step.record.index),
                replay_index: None,
                message: step.describe(),
                what: What::Missing(why),
            };
            self.diverge(d)?;
            self.out.note("replay stopped")?;
            self.stopped = true;
            return Ok(());
        }
        Ok(())
    }

    fn send_command(&mut self, pos: usize) -> Result<(), ReplayError> {
        let step = &self.plan.steps[pos];
        if self.options.timing == Timing::Original {
            let first = self.plan.steps[0].record.ts_ns;
            let at = Duration::from_nanos(step.record.ts_ns.saturating_sub(first));
            let left = (self.start + at).saturating_duration_since(Instant::now());
            if !left.is_zero() {
                std::thread::sleep(left);
            }
        }
        let data = &step.record.data;
        let h = step.header();
        let fds = make_fds(step.fds).map_err(|e| {
            ReplayError::Socket(format!("making descriptors for #{}", step.record.index), e)
        })?;
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
        if let Err(e) = wire::send(self.fd.as_fd(), data, &borrowed) {
            if gone(&e) {
                let d = Divergence {
                    index: Some(step.record.index),
                    replay_index: None,
                    message: step.describe(),
                    what: What::Missing(
                        "the server closed the connection before the replay could send it".into(),
                    ),
                };
                self.diverge(d)?;
                self.out.note("replay stopped")?;
                self.stopped = true;
                return Ok(());
            }
            return Err(ReplayError::Socket(
                format!("sending #{}", step.record.index),
                e,
            ));
        }
        self.report.sent += 1;
        self.out
            .message(Direction::ClientToServer, data, fds.len() as u32)?;
        // The client's memory follows its DMA_MAP and DMA_UNMAP.
        if let Ok(m) = decode(data, Direction::ClientToServer) {
            match m.body {
                Body::DmaMap(map) => {
                    let backing = match (step.fds, fds.into_iter().next()) {
                        (Fds::Memfd { .. }, Some(fd)) => Some((fd, map.offset.get())),
                        _ => None,
                    };
                    self.mem
                        .map(map.address.get(), map.size.get(), map.flags.get(), backing);
                }
                Body::DmaUnmap { unmap, .. } if h.no_reply() => {
                    self.mem
                        .unmap(unmap.address.get(), unmap.size.get(), unmap.flags.get());
                }
                _ => {}
            }
        }
        if !h.no_reply() {
            self.pending.push(h.msg_id.get(), pos);
        }
        Ok(())
    }

    /// Handles one live message from the server.
    fn incoming(&mut self, data: Vec<u8>, fds: Vec<OwnedFd>) -> Result<(), ReplayError> {
        let nfds = fds.len() as u32;
        drop(fds);
        let seq = self.out.message(Direction::ServerToClient, &data, nfds)?;
        self.report.received += 1;
        let live = Msg {
            bytes: &data,
            fds: nfds,
        };
        let Some(h) = Header::peek(&data).filter(|h| h.message_type().is_some()) else {
            return self.diverge(Divergence {
                index: None,
                replay_index: Some(seq),
                message: describe(&data),
                what: What::Unexpected("neither a command nor a reply".into()),
            });
        };
        if h.is_reply() {
            let (id, cmd) = (h.msg_id.get(), h.cmd());
            let steps = &self.plan.steps;
            let request = self.pending.take(steps, id, cmd);
            let Some(request) = request else {
                return self.diverge(Divergence {
                    index: None,
                    replay_index: Some(seq),
                    message: describe(&data),
                    what: What::Unexpected(format!(
                        "no {cmd} command with id {id} is waiting for a reply"
                    )),
                });
            };
            self.replied[request] = true;
            self.reply_effects(request, h);
            let Role::ClientCommand { reply } = steps[request].role else {
                return Ok(());
            };
            match reply {
                Some(j) => {
                    let c = &steps[j].record;
                    if let Some(d) = Divergence::of_fields(c, live, Skip::default(), seq) {
                        self.diverge(d)?;
                    }
                }
                None if !self.plan.cut => {
                    let i = steps[request].record.index;
                    self.diverge(Divergence {
                        index: None,
                        replay_index: Some(seq),
                        message: describe(&data),
                        what: What::Unexpected(format!(
                            "the capture has no reply to #{i} (the original server never answered it)"
                        )),
                    })?;
                }
                None => {}
            }
            return Ok(());
        }
        // A server command.
        let k = self.server_seen;
        self.server_seen += 1;
        let captured = self.server_cmds.get(k).copied();
        match captured {
            Some(p) => {
                let c = &self.plan.steps[p].record;
                // DMA_WRITE data may come from client memory the server read through a mapping,
                // which the replay cannot reproduce: then only its length is compared.
                let skip = Skip {
                    data: h.cmd() == Command::DMA_WRITE && self.mem.ever_fd_backed(),
                };
                if let Some(d) = Divergence::of_fields(c, live, skip, seq) {
                    self.diverge(d)?;
                }
            }
            None if !self.plan.cut => {
                self.diverge(Divergence {
                    index: None,
                    replay_index: Some(seq),
                    message: describe(&data),
                    what: What::Unexpected(format!(
                        "the original server sent {} request{}, this is request {}",
                        self.server_cmds.len(),
                        if self.server_cmds.len() == 1 { "" } else { "s" },
                        k + 1
                    )),
                })?;
            }
            None => {}
        }
        if !h.no_reply() {
            let answer = self.answer(h, &data, captured);
            match wire::send(self.fd.as_fd(), &answer, &[]) {
                Ok(()) => {
                    self.report.sent += 1;
                    self.out.message(Direction::ClientToServer, &answer, 0)?;
                }
                Err(e) if gone(&e) => {}
                Err(e) => return Err(ReplayError::Socket("answering the server".into(), e)),
            }
        }
        Ok(())
    }

    /// What a live reply to the command at `request` does to the client's memory: a failed DMA_MAP
    /// maps nothing, a DMA_UNMAP unmaps when answered.
    fn reply_effects(&mut self, request: usize, h: &Header) {
        let Ok(m) = decode(
            &self.plan.steps[request].record.data,
            Direction::ClientToServer,
        ) else {
            return;
        };
        match m.body {
            Body::DmaMap(map) if h.is_error() => {
                self.mem.unmap(map.address.get(), map.size.get(), 0);
            }
            Body::DmaUnmap { unmap, .. } if !h.is_error() => {
                self.mem
                    .unmap(unmap.address.get(), unmap.size.get(), unmap.flags.get());
            }
            _ => {}
        }
    }

    /// The replay's answer to a server command: DMA_READ and DMA_WRITE from and to its memory.
    fn answer(&mut self, h: &Header, data: &[u8], captured: Option<usize>) -> Vec<u8> {
        let id = h.msg_id.get();
        let cmd = h.cmd();
        let error = |e: u32| encode_to_vec(&Header::error_reply(id, cmd, e), &Body::Empty);
        let reply = match decode(data, Direction::ServerToClient) {
            Ok(m) if cmd == Command::DMA_READ || cmd == Command::DMA_WRITE => {
                let Body::DmaRw { access, data } = m.body else {
                    return error(EINVAL).unwrap_or_default();
                };
                let (address, count) = (access.address.get(), access.count.get());
                if count > self.plan.client_max_xfer {
                    error(EINVAL)
                } else if cmd == Command::DMA_READ {
                    self.seed(address, count, captured);
                    match self.mem.read(address, count) {
                        Ok(bytes) => encode_to_vec(
                            &Header::reply(id, cmd),
                            &Body::DmaRw {
                                access: &DmaAccess::new(address, count),
                                data: &bytes,
                            },
                        ),
                        Err(e) => error(e),
                    }
                } else if data.len() as u64 != count {
                    error(EINVAL)
                } else {
                    match self.mem.write(address, data, true) {
                        Ok(()) => encode_to_vec(
                            &Header::reply(id, cmd),
                            &Body::DmaRw {
                                access: &DmaAccess::new(address, count),
                                data: &[],
                            },
                        ),
                        Err(e) => error(e),
                    }
                }
            }
            Ok(_) => error(ENOSYS),
            Err(_) => error(EINVAL),
        };
        reply.unwrap_or_else(|_| {
            encode_to_vec(&Header::error_reply(id, cmd, EIO), &Body::Empty).unwrap_or_default()
        })
    }

    /// Before answering a DMA_READ, puts into memory what the original client answered the same
    /// captured request with, so that the server reads what it read originally.
    fn seed(&mut self, address: u64, count: u64, captured: Option<usize>) {
        let steps = &self.plan.steps;
        let Some(p) = captured else { return };
        let Role::ServerCommand { reply: Some(j) } = steps[p].role else {
            return;
        };
        let (Ok(req), Ok(rep)) = (
            decode(&steps[p].record.data, Direction::ServerToClient),
            decode(&steps[j].record.data, Direction::ClientToServer),
        ) else {
            return;
        };
        if let (Body::DmaRw { access: a, .. }, Body::DmaRw { access: b, data }) =
            (req.body, rep.body)
            && req.command() == Command::DMA_READ
            && (a.address.get(), a.count.get()) == (address, count)
            && (b.address.get(), b.count.get()) == (address, count)
            && data.len() as u64 == count
        {
            self.mem.seed(address, data);
        }
    }
}
