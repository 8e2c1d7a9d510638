//! vfio-user checks: one [`Conn`] per connection, fed every message of it in order.
//!
//! A command is checked when it is seen and remembered (with the few fields its reply needs) until
//! its reply comes; the reply is checked against it. What a command changes takes effect when it is
//! seen, in the order the commands were sent, and is undone when its reply is an error ([`state`]).
//!
//! This file holds a connection's state and the path every message takes (framing, then the
//! command or reply dispatch); the checks themselves are by what they are about:
//!
//! | file | what |
//! |---|---|
//! | [`session`] | header flags, VERSION negotiation and the negotiated limits |
//! | [`dma`] | DMA_MAP, DMA_UNMAP and the server's DMA_READ/WRITE against the live windows |
//! | [`regions`] | DEVICE_GET_INFO, region info, IO_FDS, REGION_READ/WRITE and REGION_WRITE_MULTI |
//! | [`irqs`] | DEVICE_GET_IRQ_INFO and DEVICE_SET_IRQS |
//! | [`migration`] | DEVICE_FEATURE (migration and dirty-page logging), MIG_DATA_READ/WRITE, DEVICE_RESET |
//!
//! Each of them adds methods to [`Conn`] and imports only from this file and [`state`], which holds
//! the state commands change and imports from neither.

mod dma;
mod irqs;
mod migration;
mod regions;
mod session;
mod state;

use vfu_codec::vfio::device::VFIO_IRQ_SET_DATA_BOOL;
use vfu_codec::vfio::migration::Support;
use vfu_codec::{Body, Command, Direction, HEADER_SIZE, Header, Message, decode};

use super::caps::{Caps, JSON_AT};
use super::pending::Pending;
use super::{Event, MAX_PENDING, Profile, Rule, Sink};

use state::{Journal, Op, Outcome, Overlap, Status, Tracked, Window};

const MIB: u64 = 1 << 20;
/// libvfio-user's largest incoming message: a REGION_WRITE of 1 MiB (`SERVER_MAX_MSG_SIZE`).
const LVU_MAX_MSG_SIZE: u64 = MIB + 32;
/// libvfio-user's largest DMA window on x86_64 (`MAX_DMA_SIZE`).
const LVU_MAX_DMA_SIZE: u64 = 8 << 40;
/// PCI devices have at least this many regions (BAR0-5, ROM, CONFIG, VGA).
const PCI_MIN_REGIONS: u32 = 9;
/// PCI devices have exactly this many IRQ indices (INTX, MSI, MSIX, ERR, REQ).
const PCI_NUM_IRQS: u32 = 5;
const IRQ_ERR: u32 = 3;
const IRQ_REQ: u32 = 4;
const EEXIST: u32 = 17;
const EINVAL: u32 = 22;
/// How many recent NO_REPLY commands are remembered, to tell a reply to one from a stray reply.
const RECENT_NO_REPLY: usize = 64;

/// Where version negotiation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Nego {
    /// No VERSION yet (or the last one failed).
    Start,
    /// The client sent VERSION; no reply yet.
    Requested,
    /// The server accepted a VERSION.
    Done,
}

#[derive(Clone, Copy, Debug)]
struct DeviceSeen {
    flags: u32,
    num_regions: u32,
    num_irqs: u32,
}

#[derive(Clone, Copy, Debug)]
struct Region {
    index: u32,
    size: u64,
    flags: u32,
}

/// What a reply is checked against: the fields of its command that matter.
#[derive(Clone, Copy, Debug)]
enum Ctx {
    None,
    Version {
        major: u16,
        minor: u16,
        msg_size: u32,
    },
    DmaMap {
        w: Window,
        overlap: Overlap,
    },
    DmaUnmap {
        argsz: u32,
        flags: u32,
        addr: u64,
        size: u64,
    },
    /// DEVICE_GET_INFO, GET_REGION_INFO, GET_REGION_IO_FDS, GET_IRQ_INFO.
    Info {
        argsz: u32,
        index: u32,
    },
    RegionRw {
        offset: u64,
        region: u32,
        count: u32,
    },
    DmaRw {
        addr: u64,
        count: u64,
    },
    WriteMulti {
        wr_cnt: u64,
    },
    Feature(FeatureReq),
    MigData {
        argsz: u32,
        size: u32,
    },
}

/// What a DEVICE_FEATURE reply is checked against.
#[derive(Clone, Copy, Debug)]
struct FeatureReq {
    argsz: u32,
    flags: u32,
    /// The request's payload length (a SET or PROBE reply repeats the request).
    payload: u32,
    /// MIG_DEVICE_STATE SET: the state asked for.
    state: Option<u32>,
    /// DMA_LOGGING_START SET: the page size asked for.
    start: Option<u64>,
    /// DMA_LOGGING_REPORT: iova, length, page_size.
    report: Option<(u64, u64, u64)>,
}

/// A command waiting for its reply.
#[derive(Clone, Copy, Debug)]
struct Req {
    dir: Direction,
    id: u16,
    cmd: Command,
    index: u64,
    /// Whether the command itself raised a finding (then an error reply is the expected answer).
    flagged: bool,
    ctx: Ctx,
    /// Its entry in the journal, if it changes the state.
    seq: Option<u64>,
}

/// The state of one vfio-user connection.
#[derive(Debug)]
pub(crate) struct Conn {
    seen: bool,
    nego: Nego,
    not_first_reported: bool,
    /// This connection is a twin socket: it started with a server DMA command, not VERSION.
    twin_conn: bool,
    /// Twin-socket mode was negotiated on this (main) connection.
    twin_active: bool,
    client: Caps,
    server: Caps,
    device: Option<DeviceSeen>,
    regions: Vec<Region>,
    irqs: Vec<(u32, u32)>,
    /// The state commands change, as it stands after every command seen (answered or not).
    now: Tracked,
    /// The commands behind `now` that are not yet settled.
    journal: Journal,
    support: Option<Support>,
    pending: Pending<Req>,
    no_reply: [Option<(Direction, u16, Command)>; RECENT_NO_REPLY],
    no_reply_at: usize,
}

fn is_known(cmd: Command) -> bool {
    matches!(cmd.0, 1..=13 | 15..=18)
}

fn expected_direction(cmd: Command) -> Direction {
    if cmd == Command::DMA_READ || cmd == Command::DMA_WRITE {
        Direction::ServerToClient
    } else {
        Direction::ClientToServer
    }
}

fn side(dir: Direction) -> &'static str {
    match dir {
        Direction::ClientToServer => "client",
        Direction::ServerToClient => "server",
    }
}

fn errno_label(e: u32) -> String {
    match vfu_codec::errno::name(e) {
        Some(n) => format!("{n} ({e})"),
        None => format!("errno {e}"),
    }
}

fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|s| u16::from_le_bytes([s[0], s[1]]))
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8).map(|s| {
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        u64::from_le_bytes(a)
    })
}

/// Whether a request's `extra` last bytes are zeros that pad its payload to exactly its `argsz`, for the
/// commands whose `argsz` is the reply buffer offered.
fn zero_padded_to_argsz(cmd: Command, bytes: &[u8], extra: usize) -> bool {
    let argsz_is_buffer = matches!(
        cmd,
        Command::DMA_UNMAP
            | Command::DEVICE_GET_INFO
            | Command::DEVICE_GET_REGION_INFO
            | Command::DEVICE_GET_REGION_IO_FDS
            | Command::DEVICE_GET_IRQ_INFO
    );
    let payload = bytes.len() - HEADER_SIZE;
    argsz_is_buffer
        && le_u32(bytes, HEADER_SIZE).is_some_and(|a| a as usize == payload)
        && bytes[bytes.len() - extra..].iter().all(|&b| b == 0)
}

impl Conn {
    pub(crate) fn new() -> Self {
        Conn {
            seen: false,
            nego: Nego::Start,
            not_first_reported: false,
            twin_conn: false,
            twin_active: false,
            client: Caps::default(),
            server: Caps::default(),
            device: None,
            regions: Vec::new(),
            irqs: Vec::new(),
            now: Tracked::new(),
            journal: Journal::new(),
            support: None,
            pending: Pending::new(),
            no_reply: [None; RECENT_NO_REPLY],
            no_reply_at: 0,
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Entry points
    // ---------------------------------------------------------------------------------------------

    pub(crate) fn check(&mut self, p: Profile, ev: &Event<'_>, sink: &mut Sink<'_>) {
        let start = sink.len();
        if ev.truncated {
            self.truncated(p, ev, sink);
            return;
        }
        let bytes = ev.bytes;
        let framed = Header::peek(bytes)
            .filter(|h| h.msg_size.get() as usize == bytes.len() && h.message_type().is_some());
        let Some(h) = framed else {
            // Not even a well-framed header: the decoder says why.
            if let Err(e) = decode(bytes, ev.direction) {
                sink.decode(&e);
            }
            return;
        };
        self.size_limit(p, h, ev, sink);
        self.header(h, ev, sink);
        if h.is_reply() {
            self.reply(p, h, ev, sink);
        } else {
            self.command(p, h, ev, sink, start);
        }
        let max = match ev.direction {
            Direction::ClientToServer => self.server_max_fds(p),
            Direction::ServerToClient => self.client_max_fds(),
        };
        if u64::from(ev.fds) > max {
            sink.emit(
                Rule::FdsOverMax,
                0,
                format_args!(
                    "the message carries {} file descriptors, more than the {}'s max_msg_fds of {max}",
                    ev.fds,
                    side(ev.direction.reverse())
                ),
            );
        }
    }

    pub(crate) fn finish(&mut self, sink: &mut Sink<'_>) {
        for r in self.pending.drain() {
            sink.emit_at(
                Rule::RequestUnanswered,
                r.index,
                0,
                format_args!(
                    "{} from the {} (msg_id {}) got no reply before the capture ended",
                    r.cmd,
                    side(r.dir),
                    r.id
                ),
            );
        }
    }

    fn truncated(&mut self, p: Profile, ev: &Event<'_>, sink: &mut Sink<'_>) {
        let len = ev.bytes.len();
        match Header::peek(ev.bytes) {
            Some(h) => {
                sink.emit(
                    Rule::TruncatedMessage,
                    len,
                    format_args!(
                        "the stream ended after {len} bytes of a {} whose msg_size is {}",
                        h.cmd(),
                        h.msg_size.get()
                    ),
                );
                self.size_limit(p, h, ev, sink);
            }
            None => sink.emit(
                Rule::TruncatedMessage,
                len,
                format_args!("the stream ended after {len} bytes, inside a message header"),
            ),
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Commands
    // ---------------------------------------------------------------------------------------------

    fn command(
        &mut self,
        p: Profile,
        h: &Header,
        ev: &Event<'_>,
        sink: &mut Sink<'_>,
        start: usize,
    ) {
        let cmd = h.cmd();
        let ctx = match decode(ev.bytes, ev.direction) {
            Ok(m) => self.command_body(p, &m, ev, sink),
            Err(e) => {
                sink.decode(&e);
                if cmd == Command::VERSION && ev.direction == Direction::ClientToServer {
                    // The JSON may be what failed: the version numbers can still be read.
                    if let Some(major) = le_u16(ev.bytes, 16).filter(|&m| m != 0)
                        && e.offset >= JSON_AT
                    {
                        sink.emit(
                            Rule::VersionMajor,
                            16,
                            format_args!(
                                "the client proposes major version {major}; only 0 exists"
                            ),
                        );
                    }
                    if self.nego != Nego::Done {
                        self.nego = Nego::Requested;
                        self.client = Caps::default();
                    }
                }
                if cmd == Command::DMA_UNMAP
                    && let Some(flags) = le_u32(ev.bytes, 20)
                {
                    // GET_DIRTY_BITMAP makes the body longer: bad flags often show as a short body.
                    Self::unmap_flags(p, flags, sink);
                }
                Ctx::None
            }
        };
        let op = Self::op(cmd, &ctx);
        if h.no_reply() {
            // No answer will come: the command stands as sent.
            if let Some(op) = op {
                self.record(p, op, Status::Accepted);
            }
            self.no_reply[self.no_reply_at] = Some((ev.direction, h.msg_id.get(), cmd));
            self.no_reply_at = (self.no_reply_at + 1) % RECENT_NO_REPLY;
            return;
        }
        let req = Req {
            dir: ev.direction,
            id: h.msg_id.get(),
            cmd,
            index: ev.index,
            flagged: sink.len() > start,
            ctx,
            seq: op.map(|op| self.record(p, op, Status::Pending)),
        };
        let Some(dropped) = self.pending.push(req) else {
            return;
        };
        // Its reply can no longer be matched: it stands as sent.
        self.settle(p, dropped.seq, Status::Accepted, None);
        if !self.pending.overflowed {
            self.pending.overflowed = true;
            sink.emit(
                Rule::PendingOverflow,
                0,
                format_args!(
                    "more than {MAX_PENDING} commands are waiting for replies; the oldest are no longer tracked"
                ),
            );
        }
    }

    /// What a command does to the state, from what its reply is checked against.
    fn op(cmd: Command, ctx: &Ctx) -> Option<Op> {
        match *ctx {
            Ctx::DmaMap { w, .. } => Some(Op::Map(w)),
            Ctx::DmaUnmap {
                flags, addr, size, ..
            } => Some(Self::unmap_op(flags, addr, size)),
            Ctx::Feature(f) => Self::feature_op(&f),
            _ if cmd == Command::DEVICE_RESET => Some(Op::Reset),
            _ => None,
        }
    }

    /// Applies a command's `op` to the state and journals it.
    fn record(&mut self, p: Profile, op: Op, status: Status) -> u64 {
        let support = self.support();
        self.journal.record(&mut self.now, op, status, p, support)
    }

    /// The command journalled as `seq` was answered (`seen`: what its reply reports).
    fn settle(&mut self, p: Profile, seq: Option<u64>, status: Status, seen: Option<Op>) {
        if let Some(seq) = seq {
            let support = self.support();
            self.journal
                .settle(&mut self.now, seq, status, seen, p, support);
        }
    }

    fn command_body(
        &mut self,
        p: Profile,
        m: &Message<'_>,
        ev: &Event<'_>,
        sink: &mut Sink<'_>,
    ) -> Ctx {
        let cmd = m.command();
        let mut fds_checked = false;
        let mut extra = m.trailing.len();
        let ctx = match m.body {
            Body::Version(v) if ev.direction == Direction::ClientToServer => {
                self.req_version(p, v, ev, sink)
            }
            Body::DmaMap(d) => {
                fds_checked = true;
                self.req_dma_map(p, d, ev, sink)
            }
            Body::DmaUnmap { unmap, bitmap, .. } => self.req_dma_unmap(p, unmap, bitmap, sink),
            Body::DeviceInfo(i) => self.req_device_info(i, sink),
            Body::RegionInfo { info, caps } => {
                extra = caps.len();
                self.req_region_info(p, info, sink)
            }
            Body::RegionIoFds { head, .. } => self.req_io_fds(p, head, sink),
            Body::IrqInfo(i) => self.req_irq_info(i, sink),
            Body::SetIrqs { set, .. } => {
                fds_checked = true;
                if set.flags.get() & VFIO_IRQ_SET_DATA_BOOL != 0 {
                    extra = 0; // reported as set-irqs-bool-payload
                }
                self.req_set_irqs(set, m.trailing.len(), ev, sink)
            }
            Body::RegionRw { access, .. } => self.req_region_rw(p, cmd, access, sink),
            Body::DmaRw { access, .. } => self.req_dma_rw(cmd, access, sink),
            Body::WriteMulti { head, entries } => self.req_write_multi(p, head, entries, sink),
            Body::DeviceFeature { head, data } => self.req_feature(p, head, data, ev, sink),
            Body::MigData { head, .. } => self.req_mig_data(p, cmd, head, sink),
            _ => Ctx::None,
        };
        if extra > 0 && p == Profile::LibvfioUser && zero_padded_to_argsz(cmd, ev.bytes, extra) {
            // The libvfio-user client sends info requests as big as the reply buffer they offer.
            extra = 0;
        }
        if extra > 0 {
            let len = ev.bytes.len();
            sink.emit(
                Rule::PayloadLength,
                len - extra,
                format_args!(
                    "the {cmd} command has {extra} byte(s) after its layout, which ends at payload byte {}",
                    len - extra - HEADER_SIZE
                ),
            );
        }
        if !fds_checked && ev.fds > 0 {
            sink.emit(
                Rule::FdsUnexpected,
                0,
                format_args!(
                    "the {cmd} command carries {} file descriptor(s); it takes none",
                    ev.fds
                ),
            );
        }
        ctx
    }

    // ---------------------------------------------------------------------------------------------
    // Replies
    // ---------------------------------------------------------------------------------------------

    fn reply(&mut self, p: Profile, h: &Header, ev: &Event<'_>, sink: &mut Sink<'_>) {
        let cmd = h.cmd();
        let id = h.msg_id.get();
        let from = ev.direction.reverse();
        let Some(req) = self.pending.take(|r| r.dir == from && r.id == id) else {
            let to_no_reply = self
                .no_reply
                .iter()
                .flatten()
                .any(|&(d, i, _)| d == from && i == id);
            if to_no_reply {
                sink.emit(
                    Rule::ReplyToNoReply,
                    0,
                    format_args!("{cmd} reply to msg_id {id}, a command sent with NO_REPLY"),
                );
            } else {
                sink.emit(
                    Rule::ReplyUnexpected,
                    0,
                    format_args!(
                        "{cmd} reply with msg_id {id}, which no outstanding command from the {} has",
                        side(from)
                    ),
                );
            }
            if let Err(e) = decode(ev.bytes, ev.direction) {
                sink.decode(&e);
            }
            return;
        };
        let status = if h.is_error() {
            Status::Refused
        } else {
            Status::Accepted
        };
        let seen = self.answer(p, h, &req, ev, sink);
        self.settle(p, req.seq, status, seen);
    }

    /// Checks a reply against the command `req` it answers; returns what it reports of the state.
    fn answer(
        &mut self,
        p: Profile,
        h: &Header,
        req: &Req,
        ev: &Event<'_>,
        sink: &mut Sink<'_>,
    ) -> Option<Op> {
        let cmd = h.cmd();
        let id = h.msg_id.get();
        if req.cmd != cmd {
            if p != Profile::Qemu {
                sink.emit(
                    Rule::ReplyCommandMismatch,
                    2,
                    format_args!(
                        "the reply to msg_id {id} says {cmd}; the command (message {}) was {}",
                        req.index, req.cmd
                    ),
                );
            }
            if let Err(e) = decode(ev.bytes, ev.direction) {
                sink.decode(&e);
            }
            return None;
        }
        if h.is_error() {
            self.error_reply(p, h, req, ev, sink);
            return None;
        }
        if p == Profile::Qemu
            && cmd == Command::DMA_READ
            && let Ctx::DmaRw { addr, count } = req.ctx
            && let Some(c) = le_u32(ev.bytes, 24)
            && u64::from(c) == count
            && ev.bytes.len() as u64 == 16 + 12 + count
        {
            // QEMU 10.1's DMA_READ reply: a u32 count, data from payload offset 12.
            if le_u64(ev.bytes, 16) != Some(addr) {
                sink.emit(
                    Rule::ReplyEchoMismatch,
                    16,
                    format_args!("the DMA_READ reply does not echo address {addr:#x}"),
                );
            }
            return None;
        }
        match decode(ev.bytes, ev.direction) {
            Ok(m) => self.reply_body(p, &m, req, ev, sink),
            Err(e) => {
                sink.decode(&e);
                if cmd == Command::VERSION {
                    // Carry on with the defaults rather than flag every later message.
                    self.nego = Nego::Done;
                    self.server = Caps::default();
                }
                None
            }
        }
    }

    fn error_reply(
        &mut self,
        p: Profile,
        h: &Header,
        req: &Req,
        ev: &Event<'_>,
        sink: &mut Sink<'_>,
    ) {
        let errno = h.error_no.get();
        let payload = ev.bytes.len() - HEADER_SIZE;
        if payload > 0 && p != Profile::LibvfioUser {
            sink.emit(
                Rule::ErrorReplyPayload,
                HEADER_SIZE,
                format_args!(
                    "the {} error reply carries {payload} payload bytes",
                    req.cmd
                ),
            );
        }
        if ev.fds > 0 {
            sink.emit(
                Rule::FdsUnexpected,
                0,
                format_args!("the {} error reply carries {} fd(s)", req.cmd, ev.fds),
            );
        }
        let mut expected = req.flagged || req.seq.is_some_and(|s| self.journal.moot(s));
        // A map that did not overlap when sent may meet a window that a refused unmap left live.
        let clash = match req.seq.and_then(|s| self.journal.outcome(s)) {
            Some(Outcome::Clash(o, _)) => o,
            _ => Overlap::None,
        };
        match req.ctx {
            Ctx::DmaMap { overlap, .. } if overlap != Overlap::None || clash != Overlap::None => {
                let overlap = if overlap == Overlap::None {
                    clash
                } else {
                    overlap
                };
                expected = true;
                let lvu_einval =
                    p == Profile::LibvfioUser && overlap == Overlap::Partial && errno == EINVAL;
                if errno != EEXIST && !lvu_einval {
                    sink.emit(
                        Rule::DmaMapOverlapReply,
                        12,
                        format_args!(
                            "the overlapping DMA_MAP (message {}) was refused with {}; the spec says EEXIST",
                            req.index,
                            errno_label(errno)
                        ),
                    );
                }
            }
            // A refused first VERSION may be retried; a refused repeat leaves the session as it was.
            Ctx::Version { .. } if self.nego == Nego::Requested => {
                self.nego = Nego::Start;
            }
            _ => {}
        }
        if !expected {
            sink.emit(
                Rule::RequestRejected,
                12,
                format_args!(
                    "the server refused {} (message {}) with {}",
                    req.cmd,
                    req.index,
                    errno_label(errno)
                ),
            );
        }
    }

    fn reply_body(
        &mut self,
        p: Profile,
        m: &Message<'_>,
        req: &Req,
        ev: &Event<'_>,
        sink: &mut Sink<'_>,
    ) -> Option<Op> {
        let cmd = req.cmd;
        let len = ev.bytes.len();
        let mut seen = None;
        let payload = len - HEADER_SIZE;
        let mut fds_checked = false;
        let mut extra = m.trailing.len();
        let mut asked: Option<u32> = None;
        match (req.ctx, m.body) {
            (
                Ctx::Version {
                    major,
                    minor,
                    msg_size,
                },
                Body::Version(v),
            ) => {
                fds_checked = true;
                self.reply_version(p, v, (major, minor, msg_size), ev, sink);
            }
            (Ctx::DmaMap { overlap, .. }, Body::Empty) => self.reply_dma_map(p, overlap, req, sink),
            (
                Ctx::DmaUnmap {
                    argsz,
                    flags,
                    addr,
                    size,
                },
                Body::DmaUnmap { unmap, .. },
            ) => {
                asked = Some(argsz);
                self.reply_dma_unmap(unmap, (flags, addr, size), payload - extra, cmd, sink);
            }
            (Ctx::Info { argsz, .. }, Body::DeviceInfo(i)) => {
                asked = Some(argsz);
                self.reply_device_info(i, payload - extra, cmd, sink);
            }
            (Ctx::Info { argsz, index }, Body::RegionInfo { info, caps }) => {
                asked = Some(argsz);
                fds_checked = true;
                extra = 0;
                self.reply_region_info(p, m, info, caps, argsz, index, ev, sink);
            }
            (Ctx::Info { argsz, index }, Body::RegionIoFds { head, entries }) => {
                asked = Some(argsz);
                fds_checked = true;
                self.reply_io_fds(p, head, entries, argsz, index, payload - extra, ev, sink);
            }
            (Ctx::Info { argsz, index }, Body::IrqInfo(i)) => {
                asked = Some(argsz);
                self.reply_irq_info(i, index, payload - extra, cmd, sink);
            }
            (
                Ctx::RegionRw {
                    offset,
                    region,
                    count,
                },
                Body::RegionRw { access, .. },
            ) => {
                Self::reply_region_rw(cmd, access, (offset, region, count), sink);
            }
            // libvfio-user answers a count-0 access with a bare header.
            (Ctx::RegionRw { count, .. }, Body::Empty)
                if !(p == Profile::LibvfioUser && count == 0) =>
            {
                Self::region_rw_header_only(cmd, count, sink);
            }
            (Ctx::DmaRw { addr, count }, Body::DmaRw { access, .. }) => {
                Self::reply_dma_rw(cmd, access, addr, count, sink);
            }
            // QEMU 10.1 answers DMA_WRITE with a bare header.
            (Ctx::DmaRw { .. }, Body::Empty)
                if !(p == Profile::Qemu && cmd == Command::DMA_WRITE) =>
            {
                Self::dma_rw_header_only(cmd, sink);
            }
            (Ctx::WriteMulti { wr_cnt }, Body::WriteMulti { head, .. }) => {
                Self::reply_write_multi(head, wr_cnt, sink);
            }
            (Ctx::Feature(req), Body::DeviceFeature { head, data }) => {
                asked = Some(req.argsz);
                seen = self.reply_feature(head, data, req, payload, sink);
            }
            (Ctx::MigData { argsz, size }, Body::MigData { head, data })
                if cmd == Command::MIG_DATA_READ =>
            {
                asked = Some(argsz);
                extra = Self::reply_mig_data_read(p, head, data, size, extra, sink);
            }
            (Ctx::MigData { .. }, Body::MigData { .. }) => {
                // MIG_DATA_WRITE: the current spec's reply has no payload (the pending one has 8 bytes).
                extra = payload;
            }
            _ => {}
        }
        if extra > 0 {
            sink.emit(
                Rule::PayloadLength,
                len - extra,
                format_args!(
                    "the {cmd} reply has {extra} byte(s) after its layout, which ends at payload byte {}",
                    payload - extra
                ),
            );
        }
        if let Some(a) = asked
            && payload > a as usize
            && !(p == Profile::LibvfioUser && cmd == Command::MIG_DATA_READ)
        {
            sink.emit(
                Rule::ReplyExceedsArgsz,
                HEADER_SIZE,
                format_args!(
                    "the {cmd} reply payload is {payload} bytes; the request's argsz offered {a}"
                ),
            );
        }
        if !fds_checked && ev.fds > 0 {
            sink.emit(
                Rule::FdsUnexpected,
                0,
                format_args!(
                    "the {cmd} reply carries {} file descriptor(s); it takes none",
                    ev.fds
                ),
            );
        }
        seen
    }

    /// A complete reply's argsz is its payload size.
    fn reply_argsz(&self, argsz: u32, payload: usize, cmd: Command, sink: &mut Sink<'_>) {
        if argsz as usize != payload {
            sink.emit(
                Rule::ArgszMismatch,
                16,
                format_args!("the {cmd} reply argsz is {argsz}; its payload is {payload} bytes"),
            );
        }
    }
}
