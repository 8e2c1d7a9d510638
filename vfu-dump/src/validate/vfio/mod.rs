//! vfio-user checks: one [`Conn`] per connection, fed every message of it in order.
//!
//! A command is checked when it is seen and remembered (with the few fields its reply needs) until
//! its reply comes; the reply is checked against it. What a command changes takes effect when it is
//! seen, in the order the commands were sent, and is undone when its reply is an error ([`state`]).
//!
//! This file holds a connection's state and where every message enters (framing);
//! [`commands`] and [`replies`] are the paths a command and a reply take, and the checks themselves
//! are by what they are about:
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

mod commands;
mod dma;
mod irqs;
mod migration;
mod regions;
mod replies;
mod session;
mod state;

use vfu_codec::header::MessageType;
use vfu_codec::vfio::migration::Support;
use vfu_codec::{Command, Direction, HEADER_SIZE, Header, decode};

use super::caps::Caps;
use super::finding::Sink;
use super::pending::Pending;
use super::rules::Rule;
use super::types::{Event, Profile};

use state::{Journal, Overlap, Tracked, Window};

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
/// How many recent unsolicited replies are remembered, to tell libvfio-user's refusal of one.
const RECENT_STRAY: usize = 16;

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

/// An error reply that matched no command.
#[derive(Clone, Copy, Debug)]
struct Orphan {
    index: u64,
    id: u16,
    cmd: Command,
    /// The side its command would have come from.
    from: Direction,
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
    /// The client's VERSION was cut before its capabilities (a capture's snap length): what it
    /// offered is not known, so the reply is not held to it.
    client_unknown: bool,
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
    /// Error replies that matched no command, until the connection's next message.
    orphans: Vec<Orphan>,
    /// Recent replies that matched no command: the side that sent each, and its msg_id.
    stray: [Option<(Direction, u16)>; RECENT_STRAY],
    stray_at: usize,
    no_reply: [Option<(Direction, u16, Command)>; RECENT_NO_REPLY],
    no_reply_at: usize,
}

/// Whether every structured part of a cut message lies within its first `captured` bytes, so that
/// the zeros after them stand only for opaque data (or a decode error lies before them, and is the
/// message's own).
fn structure_captured(ev: &Event<'_>, captured: usize) -> bool {
    use vfu_codec::{DataKind, Part};
    match decode(ev.bytes, ev.direction) {
        Err(e) => e.offset < captured,
        Ok(m) => {
            let mut inside = true;
            m.for_each_part(|part| {
                let end = match part {
                    Part::Struct { offset, bytes, .. } => offset + bytes.len(),
                    Part::Data {
                        kind: DataKind::Data | DataKind::Bitmap | DataKind::Raw | DataKind::Trailing,
                        ..
                    } => 0,
                    Part::Data { offset, bytes, .. } => offset + bytes.len(),
                };
                inside &= end <= captured;
            });
            inside
        }
    }
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

impl Conn {
    pub(crate) fn new() -> Self {
        Conn {
            seen: false,
            nego: Nego::Start,
            not_first_reported: false,
            twin_conn: false,
            twin_active: false,
            client: Caps::default(),
            client_unknown: false,
            server: Caps::default(),
            device: None,
            regions: Vec::new(),
            irqs: Vec::new(),
            now: Tracked::new(),
            journal: Journal::new(),
            support: None,
            pending: Pending::new(),
            orphans: Vec::new(),
            stray: [None; RECENT_STRAY],
            stray_at: 0,
            no_reply: [None; RECENT_NO_REPLY],
            no_reply_at: 0,
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Entry points
    // ---------------------------------------------------------------------------------------------

    pub(crate) fn check(&mut self, p: Profile, ev: &Event<'_>, sink: &mut Sink<'_>) {
        if !self.orphans.is_empty() {
            self.orphans(Some(ev), sink);
        }
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
            // A command whose msg_size is below the header still has an id: libvfio-user reads its
            // 16 bytes and answers it under that id.
            if let Some(h) = Header::peek(bytes).filter(|h| {
                h.msg_size.get() < HEADER_SIZE as u32
                    && h.message_type() == Some(MessageType::Command)
            }) {
                self.expect_reply(p, h, ev, true, Ctx::None, sink);
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

    /// A message the capture cut after `captured` bytes (see [`crate::validate::Validator::check_cut`]).
    pub(crate) fn check_cut(
        &mut self,
        p: Profile,
        ev: &Event<'_>,
        captured: usize,
        sink: &mut Sink<'_>,
    ) {
        if ev.truncated || (ev.bytes.len() > captured && structure_captured(ev, captured)) {
            self.check(p, ev, sink);
            return;
        }
        if !self.orphans.is_empty() {
            self.orphans(Some(ev), sink);
        }
        let Some(h) = Header::peek(ev.bytes).filter(|h| h.message_type().is_some()) else {
            return;
        };
        self.size_limit(p, h, ev, sink);
        self.header(h, ev, sink);
        if !h.is_reply() {
            let mut ctx = Ctx::None;
            if h.cmd() == Command::VERSION && ev.direction == Direction::ClientToServer {
                // Negotiation is under way, the version numbers known; what was offered is not.
                if let (Some(major), Some(minor)) = (
                    le_u16(&ev.bytes[..captured.min(ev.bytes.len())], 16),
                    le_u16(&ev.bytes[..captured.min(ev.bytes.len())], 18),
                ) {
                    ctx = Ctx::Version {
                        major,
                        minor,
                        msg_size: h.msg_size.get(),
                    };
                }
                if self.nego != Nego::Done {
                    self.nego = Nego::Requested;
                    self.client = Caps::default();
                    self.client_unknown = true;
                }
            }
            self.expect_reply(p, h, ev, false, ctx, sink);
            return;
        }
        let (from, id) = (ev.direction.reverse(), h.msg_id.get());
        match self.pending.take(|r| r.dir == from && r.id == id) {
            Some(req) => {
                let status = if h.is_error() {
                    state::Status::Refused
                } else {
                    state::Status::Accepted
                };
                if req.cmd == Command::VERSION {
                    self.nego = if h.is_error() {
                        Nego::Start
                    } else {
                        Nego::Done
                    };
                }
                self.settle(p, req.seq, status, None);
            }
            None => sink.emit(
                Rule::ReplyUnexpected,
                0,
                format_args!(
                    "{} reply with msg_id {id}, which no outstanding command from the {} has",
                    h.cmd(),
                    side(from)
                ),
            ),
        }
    }

    pub(crate) fn finish(&mut self, sink: &mut Sink<'_>) {
        self.orphans(None, sink);
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
}
