//! vfio-user checks: one [`Conn`] per connection, fed every message of it in order.
//!
//! A command is checked when it is seen and remembered (with the few fields its reply needs) until
//! its reply comes; the reply is checked against it, and only a success reply changes the state.

use vfu_codec::header::VFIO_USER_F_RESERVED;
use vfu_codec::message::VersionBody;
use vfu_codec::vfio::caps::parse_capabilities;
use vfu_codec::vfio::device::{
    DeviceInfo, IoFdEntries, IrqInfo, IrqSet, RegionCap, RegionInfo, RegionIoFds,
    VFIO_DEVICE_FLAGS_PCI, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_ACTION_TYPE_MASK,
    VFIO_IRQ_SET_DATA_BOOL, VFIO_IRQ_SET_DATA_EVENTFD, VFIO_IRQ_SET_DATA_NONE,
    VFIO_IRQ_SET_DATA_TYPE_MASK, VFIO_REGION_INFO_FLAG_CAPS, VFIO_REGION_INFO_FLAG_MMAP,
    VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE,
};
use vfu_codec::vfio::dma::{
    DirtyBitmap, DmaMap, DmaUnmap, VFIO_DMA_UNMAP_FLAG_ALL, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
    VFIO_USER_F_DMA_REGION_FILE_IO, VFIO_USER_F_DMA_REGION_MMAP, VFIO_USER_F_DMA_REGION_READ,
    VFIO_USER_F_DMA_REGION_WRITE, dirty_bitmap_bytes,
};
use vfu_codec::vfio::feature::{
    DeviceFeature, MigData, VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
    VFIO_DEVICE_FEATURE_DMA_LOGGING_START, VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP,
    VFIO_DEVICE_FEATURE_GET, VFIO_DEVICE_FEATURE_MASK, VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
    VFIO_DEVICE_FEATURE_MIGRATION, VFIO_DEVICE_FEATURE_PROBE, VFIO_DEVICE_FEATURE_SET,
    VFIO_MIGRATION_P2P, VFIO_MIGRATION_PRE_COPY, VFIO_MIGRATION_STOP_COPY,
};
use vfu_codec::vfio::migration::{
    MigState, Support, allows_mig_data_read, allows_mig_data_write, transition,
};
use vfu_codec::vfio::rw::{DmaAccess, RegionAccess, RegionWriteEntry, RegionWriteMulti};
use vfu_codec::{Body, Command, Direction, FeatureData, HEADER_SIZE, Header, Message, decode};

use super::caps::{self, Caps, JSON_AT};
use super::pending::Pending;
use super::{Event, MAX_PENDING, Profile, Rule, Sink};

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

/// A live DMA window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Window {
    addr: u64,
    /// One past the last byte (saturated at `u64::MAX`).
    end: u64,
    offset: u64,
    /// READ and WRITE bits of DMA_MAP's flags.
    prot: u32,
    fd: bool,
    /// The DMA_MAP that created it.
    index: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Overlap {
    None,
    /// The same window again (libvfio-user treats it as a no-op).
    Exact,
    Partial,
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
    windows: Vec<Window>,
    mig: Option<MigState>,
    support: Option<Support>,
    logging: bool,
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

/// Checks one sparse mmap area of a region-info reply: inside the region, and its fd index (if any)
/// among the reply's fds.
fn sparse_area(
    n: usize,
    at: usize,
    (off, len, fd): (u64, u64, Option<u32>),
    size: u64,
    fds: u32,
    sink: &mut Sink<'_>,
) {
    if off.checked_add(len).is_none_or(|end| end > size) {
        sink.emit(
            Rule::RegionInfoCaps,
            at,
            format_args!(
                "sparse area {n} [{off:#x}, +{len:#x}) lies beyond the region's {size:#x} bytes"
            ),
        );
    }
    if let Some(f) = fd.filter(|&f| f >= fds) {
        sink.emit(
            Rule::RegionInfoCaps,
            at + 24,
            format_args!("sparse area {n} names fd_index {f}, but the reply carries {fds} fd(s)"),
        );
    }
}

/// Checks DMA_UNMAP's flags against what the profile accepts; returns whether they are accepted.
fn unmap_flags(p: Profile, flags: u32, sink: &mut Sink<'_>) -> bool {
    let accepted: &[u32] = match p {
        Profile::Spec => &[0],
        Profile::LibvfioUser => &[
            0,
            VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
            VFIO_DMA_UNMAP_FLAG_ALL,
        ],
        Profile::Qemu => &[0, VFIO_DMA_UNMAP_FLAG_ALL],
    };
    if accepted.contains(&flags) {
        return true;
    }
    let why = match p {
        Profile::Spec => "the spec defines no DMA_UNMAP flags",
        Profile::LibvfioUser => {
            "libvfio-user accepts only GET_DIRTY_BITMAP (1) or UNMAP_ALL (2), alone"
        }
        Profile::Qemu => "QEMU uses only UNMAP_ALL (2)",
    };
    sink.emit(
        Rule::FlagsReserved,
        20,
        format_args!("DMA_UNMAP flags are {flags:#x}; {why}"),
    );
    false
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

/// The feature's name (no allocation: called for every DEVICE_FEATURE).
fn feature_name(f: u16) -> &'static str {
    match f {
        VFIO_DEVICE_FEATURE_MIGRATION => "MIGRATION",
        VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE => "MIG_DEVICE_STATE",
        VFIO_DEVICE_FEATURE_DMA_LOGGING_START => "DMA_LOGGING_START",
        VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP => "DMA_LOGGING_STOP",
        VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT => "DMA_LOGGING_REPORT",
        _ => "(unknown feature)",
    }
}

fn ops_label(ops: u32) -> String {
    let mut s = String::new();
    for (bit, name) in [
        (VFIO_DEVICE_FEATURE_GET, "GET"),
        (VFIO_DEVICE_FEATURE_SET, "SET"),
        (VFIO_DEVICE_FEATURE_PROBE, "PROBE"),
    ] {
        if ops & bit != 0 {
            if !s.is_empty() {
                s.push('|');
            }
            s.push_str(name);
        }
    }
    if s.is_empty() { "none".into() } else { s }
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
            windows: Vec::new(),
            mig: Some(MigState::RUNNING),
            support: None,
            logging: false,
            pending: Pending::new(),
            no_reply: [None; RECENT_NO_REPLY],
            no_reply_at: 0,
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Negotiated limits
    // ---------------------------------------------------------------------------------------------

    /// The most fds the server takes in one message.
    fn server_max_fds(&self, p: Profile) -> u64 {
        let default = if p == Profile::Qemu { 8 } else { 1 };
        self.server.max_msg_fds.unwrap_or(default)
    }

    fn client_max_fds(&self) -> u64 {
        self.client.max_msg_fds.unwrap_or(1)
    }

    fn server_max_xfer(&self) -> u64 {
        self.server.max_data_xfer_size.unwrap_or(MIB)
    }

    fn client_max_xfer(&self) -> u64 {
        self.client.max_data_xfer_size.unwrap_or(MIB)
    }

    fn region(&self, index: u32) -> Option<&Region> {
        self.regions.iter().find(|r| r.index == index)
    }

    fn irq_count(&self, index: u32) -> Option<u32> {
        self.irqs.iter().find(|i| i.0 == index).map(|i| i.1)
    }

    fn num_irqs(&self) -> u32 {
        self.device.map_or(PCI_NUM_IRQS, |d| d.num_irqs)
    }

    fn is_pci(&self) -> bool {
        self.device
            .is_none_or(|d| d.flags & VFIO_DEVICE_FLAGS_PCI != 0)
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

    /// The receivers' message size limits of the implementation profiles.
    fn size_limit(&self, p: Profile, h: &Header, ev: &Event<'_>, sink: &mut Sink<'_>) {
        let size = u64::from(h.msg_size.get());
        match (p, ev.direction) {
            (Profile::LibvfioUser, Direction::ClientToServer) if size > LVU_MAX_MSG_SIZE => sink
                .emit(
                    Rule::MsgSizeOverLimit,
                    4,
                    format_args!(
                        "msg_size {size} exceeds the {LVU_MAX_MSG_SIZE} bytes libvfio-user receives"
                    ),
                ),
            (Profile::Qemu, Direction::ServerToClient)
                if !h.is_reply() && size > self.client_max_xfer() + 32 =>
            {
                sink.emit(
                    Rule::MsgSizeOverLimit,
                    4,
                    format_args!(
                        "msg_size {size} exceeds max_data_xfer_size + 32 = {}, which the QEMU client refuses",
                        self.client_max_xfer() + 32
                    ),
                )
            }
            _ => {}
        }
    }

    /// Header flags, negotiation order, command number and direction.
    fn header(&mut self, h: &Header, ev: &Event<'_>, sink: &mut Sink<'_>) {
        let flags = h.flags.get();
        let reply = h.is_reply();
        let cmd = h.cmd();
        let dir = ev.direction;
        if flags & VFIO_USER_F_RESERVED != 0 {
            sink.emit(
                Rule::HeaderFlagsReserved,
                8,
                format_args!(
                    "header flags {flags:#x} set the undefined bits {:#x}",
                    flags & VFIO_USER_F_RESERVED
                ),
            );
        }
        if reply && h.no_reply() {
            sink.emit(
                Rule::NoReplyOnReply,
                8,
                format_args!("the {cmd} reply has NO_REPLY set"),
            );
        }
        if !reply && h.is_error() {
            sink.emit(
                Rule::ErrorOnCommand,
                8,
                format_args!("the {cmd} command has ERROR set"),
            );
        }
        if !h.is_error() && h.error_no.get() != 0 {
            sink.emit(
                Rule::HeaderErrnoReserved,
                12,
                format_args!(
                    "error_no is {} on a {cmd} {} without ERROR",
                    h.error_no.get(),
                    if reply { "reply" } else { "command" }
                ),
            );
        }

        let version_req = !reply && cmd == Command::VERSION && dir == Direction::ClientToServer;
        let version_reply = reply && cmd == Command::VERSION && dir == Direction::ServerToClient;
        if !self.seen {
            self.seen = true;
            if !reply
                && dir == Direction::ServerToClient
                && (cmd == Command::DMA_READ || cmd == Command::DMA_WRITE)
            {
                // A twin socket carries only server DMA commands and their replies; VERSION went over
                // the main socket.
                self.twin_conn = true;
                self.nego = Nego::Done;
            }
        }
        match self.nego {
            Nego::Done if version_req => sink.emit(
                Rule::VersionRepeated,
                2,
                format_args!("VERSION sent again after negotiation completed"),
            ),
            Nego::Requested if version_req => sink.emit(
                Rule::VersionRepeated,
                2,
                format_args!("VERSION sent again while the first is unanswered"),
            ),
            Nego::Done => {}
            _ if version_req || version_reply || self.not_first_reported => {}
            _ => {
                self.not_first_reported = true;
                sink.emit(
                    Rule::VersionNotFirst,
                    2,
                    format_args!(
                        "{cmd} {} from the {} before version negotiation completed",
                        if reply { "reply" } else { "command" },
                        side(dir)
                    ),
                );
            }
        }

        if !reply {
            if !is_known(cmd) {
                let what = match cmd.0 {
                    14 => " (DIRTY_PAGES of the 2021 draft)",
                    19 => " (GET_PRECOPY_INFO, a pending extension)",
                    _ => "",
                };
                sink.emit(
                    Rule::UnknownCommand,
                    2,
                    format_args!("command {}{what} is not defined by the spec", cmd.0),
                );
            } else if expected_direction(cmd) != dir {
                sink.emit(
                    Rule::WrongDirection,
                    2,
                    format_args!(
                        "{cmd} sent by the {}; it is sent by the {}",
                        side(dir),
                        side(expected_direction(cmd))
                    ),
                );
            }
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
                    unmap_flags(p, flags, sink);
                }
                Ctx::None
            }
        };
        if h.no_reply() {
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
        };
        if self.pending.push(req).is_some() && !self.pending.overflowed {
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
                self.req_region_info(info, sink)
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
            Body::RegionRw { access, .. } => self.req_region_rw(cmd, access, sink),
            Body::DmaRw { access, .. } => self.req_dma_rw(cmd, access, sink),
            Body::WriteMulti { head, entries } => self.req_write_multi(head, entries, sink),
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

    fn req_version(
        &mut self,
        p: Profile,
        v: VersionBody<'_>,
        ev: &Event<'_>,
        sink: &mut Sink<'_>,
    ) -> Ctx {
        let major = v.version.major.get();
        let minor = v.version.minor.get();
        if major != 0 {
            sink.emit(
                Rule::VersionMajor,
                16,
                format_args!("the client proposes major version {major}; only 0 exists"),
            );
        }
        let mut offered = Caps::default();
        if let Some(json) = v.json
            && let Ok(c) = parse_capabilities(json)
        {
            caps::check(p, false, json, &c, sink);
            if p == Profile::Spec && c.migration.is_some() {
                sink.emit(
                    Rule::VersionLegacyMigration,
                    JSON_AT,
                    format_args!(
                        "the client offers the legacy migration capability, which the current spec does not define"
                    ),
                );
            }
            offered = Caps::from_parsed(&c);
        }
        if self.nego != Nego::Done {
            self.nego = Nego::Requested;
            self.client = offered;
        }
        Ctx::Version {
            major,
            minor,
            msg_size: ev.bytes.len() as u32,
        }
    }

    fn overlapping(&self, addr: u64, end: u64) -> Option<&Window> {
        let i = self.windows.partition_point(|w| w.end <= addr);
        self.windows.get(i).filter(|w| w.addr < end)
    }

    fn req_dma_map(&mut self, p: Profile, d: &DmaMap, ev: &Event<'_>, sink: &mut Sink<'_>) -> Ctx {
        let (argsz, flags) = (d.argsz.get(), d.flags.get());
        let (offset, addr, size) = (d.offset.get(), d.address.get(), d.size.get());
        if argsz != 32 {
            sink.emit(
                Rule::ArgszMismatch,
                16,
                format_args!("DMA_MAP argsz is {argsz}; it must be 32, the size of the request"),
            );
        }
        let rw = VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE;
        let modes = VFIO_USER_F_DMA_REGION_MMAP | VFIO_USER_F_DMA_REGION_FILE_IO;
        let allowed = if p == Profile::LibvfioUser {
            rw | modes
        } else {
            rw
        };
        if flags & !allowed != 0 {
            sink.emit(
                Rule::FlagsReserved,
                20,
                format_args!(
                    "DMA_MAP flags {flags:#x} set the undefined bits {:#x}",
                    flags & !allowed
                ),
            );
        } else if flags & modes == modes {
            sink.emit(
                Rule::FlagsReserved,
                20,
                format_args!("DMA_MAP flags {flags:#x} set both access modes MMAP and FILE_IO"),
            );
        }
        if ev.fds > 1 {
            sink.emit(
                Rule::FdsUnexpected,
                0,
                format_args!(
                    "DMA_MAP carries {} file descriptors; it takes at most one",
                    ev.fds
                ),
            );
        }
        if ev.fds == 0 {
            if offset != 0 {
                sink.emit(
                    Rule::RequestFieldNonzero,
                    24,
                    format_args!("DMA_MAP without an fd has offset {offset:#x}; it must be 0"),
                );
            }
            if p == Profile::LibvfioUser && flags & modes != 0 {
                sink.emit(
                    Rule::FdsMissing,
                    0,
                    format_args!(
                        "DMA_MAP asks for an fd access mode ({flags:#x}) but carries no fd"
                    ),
                );
            }
        }
        let end = addr.checked_add(size);
        if size == 0 {
            sink.emit(Rule::DmaMapRange, 40, format_args!("DMA_MAP size is 0"));
        } else if end.is_none() {
            sink.emit(
                Rule::DmaMapRange,
                40,
                format_args!(
                    "DMA_MAP at {addr:#x} of size {size:#x} wraps past the end of the address space"
                ),
            );
        }
        let pgsizes = self.server.pgsizes.filter(|&s| s != 0).unwrap_or(4096);
        let page = 1u64 << pgsizes.trailing_zeros();
        if addr % page != 0 || size % page != 0 {
            let (what, at, v) = if addr % page != 0 {
                ("address", 32, addr)
            } else {
                ("size", 40, size)
            };
            sink.emit(
                Rule::DmaMapAlignment,
                at,
                format_args!(
                    "DMA_MAP {what} {v:#x} is not a multiple of the {page}-byte page size"
                ),
            );
        }
        if p == Profile::LibvfioUser && size > LVU_MAX_DMA_SIZE {
            sink.emit(
                Rule::DmaMapTooLarge,
                40,
                format_args!("DMA_MAP size {size:#x} exceeds libvfio-user's 8 TiB limit"),
            );
        }
        let w = Window {
            addr,
            end: end.unwrap_or(u64::MAX),
            offset,
            prot: flags & rw,
            fd: ev.fds > 0,
            index: ev.index,
        };
        let overlap = match self.overlapping(addr, w.end).filter(|_| size > 0) {
            None => Overlap::None,
            Some(o) => {
                let exact = Window {
                    index: o.index,
                    ..w
                } == *o;
                if !(exact && p == Profile::LibvfioUser) {
                    sink.emit(
                        Rule::DmaMapOverlap,
                        32,
                        format_args!(
                            "DMA_MAP [{addr:#x}, {:#x}) overlaps the live window [{:#x}, {:#x}) mapped by message {}",
                            w.end, o.addr, o.end, o.index
                        ),
                    );
                }
                if exact {
                    Overlap::Exact
                } else {
                    Overlap::Partial
                }
            }
        };
        if p != Profile::LibvfioUser && overlap == Overlap::None {
            let max = self.server.max_dma_maps.unwrap_or(65535);
            if self.windows.len() as u64 >= max {
                sink.emit(
                    Rule::DmaMapTooMany,
                    0,
                    format_args!(
                        "DMA_MAP would make {} live windows; the server's max_dma_maps is {max}",
                        self.windows.len() + 1
                    ),
                );
            }
        }
        Ctx::DmaMap { w, overlap }
    }

    fn req_dma_unmap(
        &mut self,
        p: Profile,
        u: &DmaUnmap,
        bitmap: Option<&DirtyBitmap>,
        sink: &mut Sink<'_>,
    ) -> Ctx {
        let (argsz, flags, addr, size) =
            (u.argsz.get(), u.flags.get(), u.address.get(), u.size.get());
        let flags_ok = unmap_flags(p, flags, sink);
        let mut need = 24u64;
        if flags_ok && flags == VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP {
            if let Some(b) = bitmap {
                let (pg, bytes) = (b.pgsize.get(), b.size.get());
                if !pg.is_power_of_two() {
                    sink.emit(
                        Rule::DmaUnmapBitmap,
                        40,
                        format_args!("the dirty bitmap page size {pg:#x} is not a power of two"),
                    );
                    need = 40;
                } else {
                    let want = dirty_bitmap_bytes(size, pg);
                    if want != Some(bytes) {
                        sink.emit(
                            Rule::DmaUnmapBitmap,
                            48,
                            format_args!(
                                "the dirty bitmap size is {bytes}; {size:#x} bytes at {pg:#x}-byte pages need {}",
                                want.unwrap_or(0)
                            ),
                        );
                        need = 40;
                    } else {
                        need = 40u64.saturating_add(bytes);
                    }
                }
            }
            if !self.logging {
                sink.emit(
                    Rule::LoggingNotStarted,
                    20,
                    format_args!(
                        "DMA_UNMAP asks for the dirty bitmap while dirty-page logging is not started"
                    ),
                );
            }
        }
        if u64::from(argsz) < need {
            sink.emit(
                Rule::ArgszTooSmall,
                16,
                format_args!("DMA_UNMAP argsz is {argsz}; its reply needs {need}"),
            );
        }
        if p == Profile::LibvfioUser && u64::from(argsz) > MIB {
            sink.emit(
                Rule::ArgszTooLarge,
                16,
                format_args!("DMA_UNMAP argsz is {argsz}; libvfio-user refuses more than {MIB}"),
            );
        }
        if flags & VFIO_DMA_UNMAP_FLAG_ALL != 0 {
            if flags_ok && (addr != 0 || size != 0) {
                sink.emit(
                    Rule::DmaUnmapAll,
                    24,
                    format_args!(
                        "DMA_UNMAP with UNMAP_ALL has address {addr:#x} and size {size:#x}; both must be 0"
                    ),
                );
            }
        } else if !self
            .windows
            .iter()
            .any(|w| w.addr == addr && w.end == addr.saturating_add(size))
        {
            sink.emit(
                Rule::DmaUnmapNoMatch,
                24,
                format_args!(
                    "DMA_UNMAP [{addr:#x}, +{size:#x}) matches no live window exactly ({} are mapped)",
                    self.windows.len()
                ),
            );
        }
        Ctx::DmaUnmap {
            argsz,
            flags,
            addr,
            size,
        }
    }

    fn req_device_info(&mut self, i: &DeviceInfo, sink: &mut Sink<'_>) -> Ctx {
        let argsz = i.argsz.get();
        if argsz < 16 {
            sink.emit(
                Rule::ArgszTooSmall,
                16,
                format_args!("DEVICE_GET_INFO argsz is {argsz}; the reply needs 16"),
            );
        }
        for (name, at, v) in [
            ("flags", 20, i.flags.get()),
            ("num_regions", 24, i.num_regions.get()),
            ("num_irqs", 28, i.num_irqs.get()),
        ] {
            if v != 0 {
                sink.emit(
                    Rule::RequestFieldNonzero,
                    at,
                    format_args!("DEVICE_GET_INFO request has {name} {v:#x}; it must be 0"),
                );
                break;
            }
        }
        Ctx::Info { argsz, index: 0 }
    }

    fn region_index(&self, index: u32, at: usize, sink: &mut Sink<'_>) {
        match self.device {
            Some(d) if index >= d.num_regions => sink.emit(
                Rule::RegionIndex,
                at,
                format_args!(
                    "region index {index:#x} is not below num_regions {}",
                    d.num_regions
                ),
            ),
            None if index >= PCI_MIN_REGIONS => sink.emit(
                Rule::RegionIndexUnverified,
                at,
                format_args!(
                    "region index {index:#x} is beyond the {PCI_MIN_REGIONS} PCI regions and no DEVICE_GET_INFO reply has been seen"
                ),
            ),
            _ => {}
        }
    }

    fn irq_index(&self, index: u32, at: usize, sink: &mut Sink<'_>) -> bool {
        let n = self.num_irqs();
        if index >= n {
            let whence = if self.device.is_some() {
                "num_irqs from DEVICE_GET_INFO"
            } else {
                "the PCI IRQ index count"
            };
            sink.emit(
                Rule::IrqIndex,
                at,
                format_args!("IRQ index {index} is not below {n}, {whence}"),
            );
            return false;
        }
        true
    }

    fn req_region_info(&mut self, i: &RegionInfo, sink: &mut Sink<'_>) -> Ctx {
        let (argsz, index) = (i.argsz.get(), i.index.get());
        if argsz < 32 {
            sink.emit(
                Rule::ArgszTooSmall,
                16,
                format_args!(
                    "DEVICE_GET_REGION_INFO argsz is {argsz}; the reply needs at least 32"
                ),
            );
        }
        self.region_index(index, 24, sink);
        for (name, at, v) in [
            ("flags", 20, u64::from(i.flags.get())),
            ("cap_offset", 28, u64::from(i.cap_offset.get())),
            ("size", 32, i.size.get()),
            ("offset", 40, i.offset.get()),
        ] {
            if v != 0 {
                sink.emit(
                    Rule::RequestFieldNonzero,
                    at,
                    format_args!("DEVICE_GET_REGION_INFO request has {name} {v:#x}; it must be 0"),
                );
                break;
            }
        }
        Ctx::Info { argsz, index }
    }

    fn req_io_fds(&mut self, p: Profile, h: &RegionIoFds, sink: &mut Sink<'_>) -> Ctx {
        let (argsz, index) = (h.argsz.get(), h.index.get());
        if argsz < 16 {
            sink.emit(
                Rule::ArgszTooSmall,
                16,
                format_args!(
                    "DEVICE_GET_REGION_IO_FDS argsz is {argsz}; the reply needs at least 16"
                ),
            );
        }
        if p == Profile::LibvfioUser && u64::from(argsz) > MIB {
            sink.emit(
                Rule::ArgszTooLarge,
                16,
                format_args!(
                    "DEVICE_GET_REGION_IO_FDS argsz is {argsz}; libvfio-user refuses more than {MIB}"
                ),
            );
        }
        if h.flags.get() != 0 {
            sink.emit(
                Rule::FlagsReserved,
                20,
                format_args!(
                    "DEVICE_GET_REGION_IO_FDS flags are {:#x}; they must be 0",
                    h.flags.get()
                ),
            );
        }
        if h.count.get() != 0 {
            sink.emit(
                Rule::RequestFieldNonzero,
                28,
                format_args!(
                    "DEVICE_GET_REGION_IO_FDS request has count {}; it must be 0",
                    h.count.get()
                ),
            );
        }
        self.region_index(index, 24, sink);
        Ctx::Info { argsz, index }
    }

    fn req_irq_info(&mut self, i: &IrqInfo, sink: &mut Sink<'_>) -> Ctx {
        let (argsz, index) = (i.argsz.get(), i.index.get());
        if argsz < 16 {
            sink.emit(
                Rule::ArgszTooSmall,
                16,
                format_args!("DEVICE_GET_IRQ_INFO argsz is {argsz}; the reply needs 16"),
            );
        }
        self.irq_index(index, 24, sink);
        for (name, at, v) in [("flags", 20, i.flags.get()), ("count", 28, i.count.get())] {
            if v != 0 {
                sink.emit(
                    Rule::RequestFieldNonzero,
                    at,
                    format_args!("DEVICE_GET_IRQ_INFO request has {name} {v:#x}; it must be 0"),
                );
                break;
            }
        }
        Ctx::Info { argsz, index }
    }

    fn req_set_irqs(
        &mut self,
        s: &IrqSet,
        extra: usize,
        ev: &Event<'_>,
        sink: &mut Sink<'_>,
    ) -> Ctx {
        let (argsz, flags, index) = (s.argsz.get(), s.flags.get(), s.index.get());
        let (start, count) = (s.start.get(), s.count.get());
        let payload = ev.bytes.len() - HEADER_SIZE;
        if argsz as usize != payload {
            sink.emit(
                Rule::ArgszMismatch,
                16,
                format_args!("SET_IRQS argsz is {argsz}; the request payload is {payload} bytes"),
            );
        }
        let data = flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
        let action = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
        let undefined = flags & !(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK);
        let flags_ok = undefined == 0 && data.count_ones() == 1 && action.count_ones() == 1;
        if !flags_ok {
            let why = if undefined != 0 {
                format!("set the undefined bits {undefined:#x}")
            } else if data.count_ones() != 1 {
                format!("name {} data types", data.count_ones())
            } else {
                format!("name {} actions", action.count_ones())
            };
            sink.emit(
                Rule::SetIrqsFlags,
                20,
                format_args!("SET_IRQS flags {flags:#x} {why}; exactly one data type and one action are needed"),
            );
        }
        let index_ok = self.irq_index(index, 24, sink);
        match start.checked_add(count) {
            None => sink.emit(
                Rule::SetIrqsRange,
                28,
                format_args!("SET_IRQS start {start} + count {count} overflows"),
            ),
            Some(end) => {
                if let Some(n) = self.irq_count(index).filter(|&n| index_ok && end > n) {
                    sink.emit(
                        Rule::SetIrqsRange,
                        28,
                        format_args!(
                            "SET_IRQS vectors [{start}, {end}) exceed the {n} that GET_IRQ_INFO reported for index {index}"
                        ),
                    );
                }
            }
        }
        if flags_ok {
            let none_trigger = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
            if count == 0 && (start != 0 || flags != none_trigger) {
                let at = if start != 0 { 28 } else { 20 };
                sink.emit(
                    Rule::SetIrqsCountZero,
                    at,
                    format_args!(
                        "SET_IRQS with count 0 has start {start} and flags {flags:#x}; it needs start 0 and DATA_NONE|ACTION_TRIGGER ({none_trigger:#x})"
                    ),
                );
            }
            if (index == IRQ_ERR || index == IRQ_REQ)
                && self.is_pci()
                && (action != VFIO_IRQ_SET_ACTION_TRIGGER || count > 1)
            {
                let name = if index == IRQ_ERR { "ERR" } else { "REQ" };
                let at = if action != VFIO_IRQ_SET_ACTION_TRIGGER {
                    20
                } else {
                    32
                };
                sink.emit(
                    Rule::SetIrqsErrReq,
                    at,
                    format_args!(
                        "SET_IRQS on the {name} index has flags {flags:#x} and count {count}; only ACTION_TRIGGER with count at most 1 is allowed"
                    ),
                );
            }
            if data == VFIO_IRQ_SET_DATA_BOOL && extra > 0 {
                sink.emit(
                    Rule::SetIrqsBoolPayload,
                    ev.bytes.len() - extra,
                    format_args!(
                        "the DATA_BOOL payload is {payload} bytes; count {count} needs {}",
                        20 + u64::from(count)
                    ),
                );
            }
            if data == VFIO_IRQ_SET_DATA_EVENTFD {
                if ev.fds != 0 && ev.fds != count {
                    sink.emit(
                        Rule::SetIrqsFds,
                        0,
                        format_args!(
                            "SET_IRQS DATA_EVENTFD with count {count} carries {} fds; it needs 0 or {count}",
                            ev.fds
                        ),
                    );
                }
            } else if ev.fds > 0 {
                sink.emit(
                    Rule::SetIrqsFds,
                    0,
                    format_args!(
                        "SET_IRQS without DATA_EVENTFD (flags {flags:#x}) carries {} fd(s)",
                        ev.fds
                    ),
                );
            }
        } else if ev.fds > 0 && flags & VFIO_IRQ_SET_DATA_EVENTFD == 0 {
            sink.emit(
                Rule::SetIrqsFds,
                0,
                format_args!("SET_IRQS without DATA_EVENTFD carries {} fd(s)", ev.fds),
            );
        }
        Ctx::None
    }

    fn req_region_rw(&mut self, cmd: Command, a: &RegionAccess, sink: &mut Sink<'_>) -> Ctx {
        let (offset, region, count) = (a.offset.get(), a.region.get(), a.count.get());
        self.region_index(region, 24, sink);
        let max = self.server_max_xfer();
        if u64::from(count) > max {
            sink.emit(
                Rule::XferSizeOverMax,
                28,
                format_args!("{cmd} count {count} exceeds the server's max_data_xfer_size {max}"),
            );
        }
        self.region_range(region, offset, u64::from(count), 16, sink);
        if let Some(r) = self.region(region) {
            let (need, what) = if cmd == Command::REGION_READ {
                (VFIO_REGION_INFO_FLAG_READ, "readable")
            } else {
                (VFIO_REGION_INFO_FLAG_WRITE, "writable")
            };
            if r.flags & need == 0 {
                sink.emit(
                    Rule::RegionAccessFlags,
                    24,
                    format_args!(
                        "{cmd} on region {region}, which is not {what} (flags {:#x})",
                        r.flags
                    ),
                );
            }
        }
        Ctx::RegionRw {
            offset,
            region,
            count,
        }
    }

    fn region_range(&self, region: u32, offset: u64, count: u64, at: usize, sink: &mut Sink<'_>) {
        let Some(r) = self.region(region) else { return };
        match offset.checked_add(count) {
            None => sink.emit(
                Rule::RegionRange,
                at,
                format_args!("offset {offset:#x} + count {count} overflows"),
            ),
            Some(end) if end > r.size => sink.emit(
                Rule::RegionRange,
                at,
                format_args!(
                    "[{offset:#x}, {end:#x}) ends beyond region {region}, which is {:#x} bytes",
                    r.size
                ),
            ),
            _ => {}
        }
    }

    /// Whether `[addr, addr + count)` lies in adjacent live windows that all have `prot`.
    fn dma_cover(&self, addr: u64, count: u64, prot: u32) -> Result<(), (Rule, u64)> {
        let end = addr
            .checked_add(count)
            .ok_or((Rule::DmaRwOutsideWindow, addr))?;
        let mut i = self.windows.partition_point(|w| w.end <= addr);
        let mut at = addr;
        while at < end {
            let w = self
                .windows
                .get(i)
                .filter(|w| w.addr <= at)
                .ok_or((Rule::DmaRwOutsideWindow, at))?;
            if w.prot & prot == 0 {
                return Err((Rule::DmaRwPermission, w.addr));
            }
            at = w.end;
            i += 1;
        }
        Ok(())
    }

    fn req_dma_rw(&mut self, cmd: Command, a: &DmaAccess, sink: &mut Sink<'_>) -> Ctx {
        let (addr, count) = (a.address.get(), a.count.get());
        if self.twin_active && !self.twin_conn {
            sink.emit(
                Rule::TwinSocketDmaOnMain,
                2,
                format_args!("{cmd} sent on the main socket though twin-socket mode is on"),
            );
        }
        let max = self.client_max_xfer();
        if count > max {
            sink.emit(
                Rule::XferSizeOverMax,
                24,
                format_args!("{cmd} count {count} exceeds the client's max_data_xfer_size {max}"),
            );
        }
        // A twin socket's windows were mapped on the main connection: not checked there.
        if !self.twin_conn && count > 0 {
            let (prot, what) = if cmd == Command::DMA_READ {
                (VFIO_USER_F_DMA_REGION_READ, "READ")
            } else {
                (VFIO_USER_F_DMA_REGION_WRITE, "WRITE")
            };
            match self.dma_cover(addr, count, prot) {
                Ok(()) => {}
                Err((Rule::DmaRwPermission, w)) => sink.emit(
                    Rule::DmaRwPermission,
                    16,
                    format_args!(
                        "{cmd} [{addr:#x}, +{count:#x}) touches the window at {w:#x}, mapped without {what}"
                    ),
                ),
                Err((rule, gap)) => sink.emit(
                    rule,
                    16,
                    format_args!(
                        "{cmd} [{addr:#x}, +{count:#x}) is not inside mapped DMA windows (nothing is mapped at {gap:#x})"
                    ),
                ),
            }
        }
        Ctx::DmaRw { addr, count }
    }

    fn req_write_multi(
        &mut self,
        h: &RegionWriteMulti,
        entries: &[RegionWriteEntry],
        sink: &mut Sink<'_>,
    ) -> Ctx {
        if self.server.write_multiple != Some(true) {
            sink.emit(
                Rule::WriteMultiNotNegotiated,
                2,
                format_args!(
                    "REGION_WRITE_MULTI sent though the server did not advertise write_multiple"
                ),
            );
        }
        for (i, e) in entries.iter().enumerate() {
            let at = HEADER_SIZE + 8 + 24 * i;
            let (region, count) = (e.region.get(), e.count.get());
            self.region_index(region, at + 8, sink);
            if !(1..=8).contains(&count) {
                sink.emit(
                    Rule::RegionRange,
                    at + 12,
                    format_args!(
                        "REGION_WRITE_MULTI entry {i} has count {count}; it must be 1 to 8"
                    ),
                );
            } else {
                self.region_range(region, e.offset.get(), u64::from(count), at, sink);
            }
        }
        Ctx::WriteMulti {
            wr_cnt: h.wr_cnt.get(),
        }
    }

    fn support(&self) -> Support {
        self.support.unwrap_or(Support {
            pre_copy: true,
            p2p: false,
        })
    }

    fn req_feature(
        &mut self,
        p: Profile,
        h: &DeviceFeature,
        data: FeatureData<'_>,
        ev: &Event<'_>,
        sink: &mut Sink<'_>,
    ) -> Ctx {
        let (argsz, flags) = (h.argsz.get(), h.flags.get());
        let feature = h.feature();
        let ops_mask =
            VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_PROBE;
        let ops = flags & ops_mask;
        let (get, set, probe) = (h.is_get(), h.is_set(), h.is_probe());
        let name = feature_name(feature);
        let payload = (ev.bytes.len() - HEADER_SIZE) as u32;
        let undefined = flags & !(VFIO_DEVICE_FEATURE_MASK | ops_mask);
        if undefined != 0 {
            sink.emit(
                Rule::FlagsReserved,
                20,
                format_args!(
                    "DEVICE_FEATURE flags {flags:#x} set the undefined bits {undefined:#x}"
                ),
            );
        }
        let allowed = match feature {
            VFIO_DEVICE_FEATURE_MIGRATION | VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT => {
                Some(VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_PROBE)
            }
            VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE => Some(ops_mask),
            VFIO_DEVICE_FEATURE_DMA_LOGGING_START | VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP => {
                Some(VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_PROBE)
            }
            _ => None,
        };
        if ops == 0 {
            sink.emit(
                Rule::FeatureFlags,
                20,
                format_args!("DEVICE_FEATURE {name} names none of GET, SET and PROBE"),
            );
        } else if get && set && !probe {
            sink.emit(
                Rule::FeatureFlags,
                20,
                format_args!("DEVICE_FEATURE {name} sets both GET and SET without PROBE"),
            );
        } else if let Some(a) = allowed.filter(|a| ops & !a != 0) {
            sink.emit(
                Rule::FeatureFlags,
                20,
                format_args!(
                    "DEVICE_FEATURE {name} asks for {}; the feature has only {}",
                    ops_label(ops),
                    ops_label(a)
                ),
            );
        }
        if allowed.is_none() {
            sink.emit(
                Rule::FeatureUnknown,
                20,
                format_args!(
                    "DEVICE_FEATURE {feature} is not one of the five features vfio-user defines"
                ),
            );
        }

        let mut state = None;
        let mut report = None;
        // The feature's data is checked only for a valid GET or SET.
        let ops_ok = ops != 0 && !(get && set) && allowed.is_some_and(|a| ops & !a == 0);
        let op = ops_ok && !probe;
        match feature {
            VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE if op && set => match data {
                FeatureData::MigState(s) => {
                    let to = MigState(s.device_state.get());
                    state = Some(to.0);
                    let support = self.support();
                    let result = match self.mig {
                        Some(from) => transition(from, to, support).map(|_| ()),
                        // Current state unknown: only what does not depend on it.
                        None => transition(to, to, support).map(|_| ()),
                    };
                    if let Err(e) = result {
                        let from = self
                            .mig
                            .map_or("an unknown state".into(), |s| s.to_string());
                        sink.emit(
                            Rule::MigTransition,
                            24,
                            format_args!(
                                "MIG_DEVICE_STATE SET from {from} to {to} is not allowed: {e} ({})",
                                e.id()
                            ),
                        );
                    }
                    if p != Profile::LibvfioUser && s.data_fd.get() != 0 {
                        sink.emit(
                            Rule::MigStateDataFd,
                            28,
                            format_args!(
                                "MIG_DEVICE_STATE SET has data_fd {}; it is unused and should be 0",
                                s.data_fd.get()
                            ),
                        );
                    }
                }
                _ => sink.emit(
                    Rule::FeatureData,
                    24,
                    format_args!("MIG_DEVICE_STATE SET carries no device_state"),
                ),
            },
            VFIO_DEVICE_FEATURE_DMA_LOGGING_START if op && set => match data {
                FeatureData::LoggingControl { control, .. } => {
                    let pg = control.page_size.get();
                    if !pg.is_power_of_two() {
                        sink.emit(
                            Rule::FeatureData,
                            24,
                            format_args!(
                                "DMA_LOGGING_START page_size {pg:#x} is not a power of two"
                            ),
                        );
                    }
                    if control.reserved.get() != 0 {
                        sink.emit(
                            Rule::RequestFieldNonzero,
                            36,
                            format_args!(
                                "DMA_LOGGING_START reserved word is {:#x}; it must be 0",
                                control.reserved.get()
                            ),
                        );
                    }
                }
                _ => sink.emit(
                    Rule::FeatureData,
                    24,
                    format_args!("DMA_LOGGING_START carries no control block"),
                ),
            },
            VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT if op && get => {
                if !self.logging {
                    sink.emit(
                        Rule::LoggingNotStarted,
                        20,
                        format_args!("DMA_LOGGING_REPORT while dirty-page logging is not started"),
                    );
                }
                match data {
                    FeatureData::LoggingReport { report: r, .. } => {
                        let (iova, len, pg) = (r.iova.get(), r.length.get(), r.page_size.get());
                        report = Some((iova, len, pg));
                        if !pg.is_power_of_two() {
                            sink.emit(
                                Rule::FeatureData,
                                40,
                                format_args!(
                                    "DMA_LOGGING_REPORT page_size {pg:#x} is not a power of two"
                                ),
                            );
                        } else if len == 0 {
                            sink.emit(
                                Rule::FeatureData,
                                32,
                                format_args!("DMA_LOGGING_REPORT length is 0"),
                            );
                        } else {
                            let bitmap = dirty_bitmap_bytes(len, pg).unwrap_or(u64::MAX);
                            let need = 32u64.saturating_add(bitmap);
                            if u64::from(argsz) < need {
                                sink.emit(
                                    Rule::ArgszTooSmall,
                                    16,
                                    format_args!(
                                        "DMA_LOGGING_REPORT argsz is {argsz}; the reply with its {bitmap}-byte bitmap needs {need}"
                                    ),
                                );
                            }
                        }
                    }
                    _ => sink.emit(
                        Rule::FeatureData,
                        24,
                        format_args!("DMA_LOGGING_REPORT carries no iova, length and page_size"),
                    ),
                }
            }
            VFIO_DEVICE_FEATURE_MIGRATION | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE
                if op && get && !set =>
            {
                if payload > 8 {
                    sink.emit(
                        Rule::PayloadLength,
                        24,
                        format_args!(
                            "a {name} GET request carries {} bytes of data; it has none",
                            payload - 8
                        ),
                    );
                }
                if argsz < 16 {
                    sink.emit(
                        Rule::ArgszTooSmall,
                        16,
                        format_args!("{name} GET argsz is {argsz}; the reply needs 16"),
                    );
                }
            }
            _ => {}
        }
        if (set || probe) && argsz < payload {
            sink.emit(
                Rule::ArgszTooSmall,
                16,
                format_args!(
                    "DEVICE_FEATURE {name} {} argsz is {argsz}; the reply repeats the {payload}-byte request",
                    ops_label(ops)
                ),
            );
        }
        Ctx::Feature(FeatureReq {
            argsz,
            flags,
            payload,
            state,
            report,
        })
    }

    fn req_mig_data(&mut self, p: Profile, cmd: Command, h: &MigData, sink: &mut Sink<'_>) -> Ctx {
        let (argsz, size) = (h.argsz.get(), h.size.get());
        let read = cmd == Command::MIG_DATA_READ;
        if let Some(s) = self.mig {
            let ok = if read {
                allows_mig_data_read(s)
            } else {
                allows_mig_data_write(s)
            };
            if !ok {
                let valid = if read {
                    "PRE_COPY and STOP_COPY"
                } else {
                    "RESUMING"
                };
                sink.emit(
                    Rule::MigDataState,
                    2,
                    format_args!("{cmd} in migration state {s}; it is valid only in {valid}"),
                );
            }
        }
        let need = 8 + u64::from(size);
        if (read || p == Profile::LibvfioUser) && u64::from(argsz) < need {
            sink.emit(
                Rule::ArgszTooSmall,
                16,
                format_args!("{cmd} argsz is {argsz}; size {size} needs {need}"),
            );
        }
        let (max, whose) = if read || p == Profile::LibvfioUser {
            (self.client_max_xfer(), "client")
        } else {
            (self.server_max_xfer(), "server")
        };
        if u64::from(size) > max {
            sink.emit(
                Rule::XferSizeOverMax,
                20,
                format_args!("{cmd} size {size} exceeds the {whose}'s max_data_xfer_size {max}"),
            );
        }
        Ctx::MigData { argsz, size }
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
            return;
        }
        if h.is_error() {
            self.error_reply(p, h, &req, ev, sink);
            return;
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
            return;
        }
        match decode(ev.bytes, ev.direction) {
            Ok(m) => self.reply_body(p, &m, &req, ev, sink),
            Err(e) => {
                sink.decode(&e);
                if cmd == Command::VERSION {
                    // Carry on with the defaults rather than flag every later message.
                    self.nego = Nego::Done;
                    self.server = Caps::default();
                }
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
        let mut expected = req.flagged;
        match req.ctx {
            Ctx::DmaMap { overlap, .. } if overlap != Overlap::None => {
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
            Ctx::Feature(FeatureReq { state: Some(_), .. }) => {
                // A failed arc leaves the device in a state the capture does not show.
                self.mig = None;
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
    ) {
        let cmd = req.cmd;
        let len = ev.bytes.len();
        let payload = len - HEADER_SIZE;
        let mut fds_checked = false;
        let mut extra = m.trailing.len();
        let mut asked: Option<u32> = None;
        match (req.ctx, m.body) {
            (Ctx::Version { major, minor, msg_size }, Body::Version(v)) => {
                fds_checked = true;
                self.reply_version(p, v, (major, minor, msg_size), ev, sink);
            }
            (Ctx::DmaMap { w, overlap }, Body::Empty) => match overlap {
                Overlap::None => match self.overlapping(w.addr, w.end) {
                    // Pipelined maps: another one took the range between command and reply.
                    Some(o) => sink.emit(
                        Rule::DmaMapOverlapReply,
                        0,
                        format_args!(
                            "the server accepted the DMA_MAP of message {}, which overlaps the window mapped meanwhile by message {}",
                            req.index, o.index
                        ),
                    ),
                    None => {
                        let i = self.windows.partition_point(|x| x.addr < w.addr);
                        self.windows.insert(i, w);
                    }
                },
                Overlap::Exact if p == Profile::LibvfioUser => {}
                _ => sink.emit(
                    Rule::DmaMapOverlapReply,
                    0,
                    format_args!(
                        "the server accepted the DMA_MAP of message {}, which overlaps a live window; it must refuse with EEXIST",
                        req.index
                    ),
                ),
            },
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
                if unmap.flags.get() != flags || unmap.address.get() != addr || unmap.size.get() != size {
                    sink.emit(
                        Rule::ReplyEchoMismatch,
                        20,
                        format_args!(
                            "the DMA_UNMAP reply has flags {:#x}, address {:#x}, size {:#x}; the request had {flags:#x}, {addr:#x}, {size:#x}",
                            unmap.flags.get(),
                            unmap.address.get(),
                            unmap.size.get()
                        ),
                    );
                }
                self.reply_argsz(unmap.argsz.get(), payload - extra, cmd, sink);
                if flags & VFIO_DMA_UNMAP_FLAG_ALL != 0 {
                    self.windows.clear();
                } else if let Some(i) = self
                    .windows
                    .iter()
                    .position(|w| w.addr == addr && w.end == addr.saturating_add(size))
                {
                    self.windows.remove(i);
                }
            }
            (Ctx::Info { argsz, .. }, Body::DeviceInfo(i)) => {
                asked = Some(argsz);
                self.reply_argsz(i.argsz.get(), payload - extra, cmd, sink);
                let d = DeviceSeen {
                    flags: i.flags.get(),
                    num_regions: i.num_regions.get(),
                    num_irqs: i.num_irqs.get(),
                };
                if d.flags & VFIO_DEVICE_FLAGS_PCI != 0
                    && (d.num_regions < PCI_MIN_REGIONS || d.num_irqs < PCI_NUM_IRQS)
                {
                    sink.emit(
                        Rule::DeviceInfoPci,
                        24,
                        format_args!(
                            "a PCI device reports {} regions and {} IRQ indices; PCI has at least 9 and 5",
                            d.num_regions, d.num_irqs
                        ),
                    );
                }
                self.device = Some(d);
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
                if i.index.get() != index {
                    sink.emit(
                        Rule::ReplyEchoMismatch,
                        24,
                        format_args!("the GET_IRQ_INFO reply is for index {}; the request asked for {index}", i.index.get()),
                    );
                }
                self.reply_argsz(i.argsz.get(), payload - extra, cmd, sink);
                let count = i.count.get();
                match self.irqs.iter_mut().find(|x| x.0 == index) {
                    Some(x) => x.1 = count,
                    None => self.irqs.push((index, count)),
                }
            }
            (Ctx::RegionRw { offset, region, count }, Body::RegionRw { access, .. }) => {
                if access.offset.get() != offset || access.region.get() != region {
                    sink.emit(
                        Rule::ReplyEchoMismatch,
                        16,
                        format_args!(
                            "the {cmd} reply is for region {} offset {:#x}; the request was region {region} offset {offset:#x}",
                            access.region.get(),
                            access.offset.get()
                        ),
                    );
                }
                if access.count.get() > count {
                    sink.emit(
                        Rule::ReplyEchoMismatch,
                        28,
                        format_args!(
                            "the {cmd} reply reports {} bytes; the request asked for {count}",
                            access.count.get()
                        ),
                    );
                }
            }
            // libvfio-user answers a count-0 access with a bare header.
            (Ctx::RegionRw { count, .. }, Body::Empty)
                if !(p == Profile::LibvfioUser && count == 0) =>
            {
                sink.emit(
                    Rule::ReplyHeaderOnly,
                    0,
                    format_args!(
                        "the {cmd} success reply is header-only; the spec echoes the 16-byte head (count {count})"
                    ),
                );
            }
            (Ctx::DmaRw { addr, count }, Body::DmaRw { access, .. }) => {
                if access.address.get() != addr {
                    sink.emit(
                        Rule::ReplyEchoMismatch,
                        16,
                        format_args!(
                            "the {cmd} reply is for address {:#x}; the request was {addr:#x}",
                            access.address.get()
                        ),
                    );
                }
                if access.count.get() > count {
                    sink.emit(
                        Rule::ReplyEchoMismatch,
                        24,
                        format_args!(
                            "the {cmd} reply reports {} bytes; the request asked for {count}",
                            access.count.get()
                        ),
                    );
                }
            }
            // QEMU 10.1 answers DMA_WRITE with a bare header.
            (Ctx::DmaRw { .. }, Body::Empty) if !(p == Profile::Qemu && cmd == Command::DMA_WRITE) => {
                sink.emit(
                    Rule::ReplyHeaderOnly,
                    0,
                    format_args!("the {cmd} success reply is header-only; the spec echoes address and count"),
                );
            }
            (Ctx::WriteMulti { wr_cnt }, Body::WriteMulti { head, .. }) if head.wr_cnt.get() > wr_cnt => {
                sink.emit(
                    Rule::ReplyEchoMismatch,
                    16,
                    format_args!(
                        "the REGION_WRITE_MULTI reply reports {} writes; the request had {wr_cnt}",
                        head.wr_cnt.get()
                    ),
                );
            }
            (Ctx::Feature(req), Body::DeviceFeature { head, data }) => {
                asked = Some(req.argsz);
                self.reply_feature(head, data, req, payload, sink);
            }
            (Ctx::MigData { argsz, size }, Body::MigData { head, data })
                if cmd == Command::MIG_DATA_READ =>
            {
                asked = Some(argsz);
                let got = head.size.get();
                if got > size {
                    sink.emit(
                        Rule::ReplyEchoMismatch,
                        20,
                        format_args!("the MIG_DATA_READ reply returns {got} bytes; the request asked for {size}"),
                    );
                }
                if u64::from(head.argsz.get()) != 8 + u64::from(got) {
                    sink.emit(
                        Rule::ArgszMismatch,
                        16,
                        format_args!(
                            "the MIG_DATA_READ reply argsz is {}; with size {got} it must be {}",
                            head.argsz.get(),
                            8 + u64::from(got)
                        ),
                    );
                }
                // libvfio-user pads the reply to the requested size.
                if p == Profile::LibvfioUser && 8 + data.len() + extra <= 8 + size as usize {
                    extra = 0;
                }
            }
            (Ctx::MigData { .. }, Body::MigData { .. }) => {
                // MIG_DATA_WRITE: the current spec's reply has no payload (the pending one has 8 bytes).
                extra = payload;
            }
            _ => {}
        }
        if cmd == Command::DEVICE_RESET {
            let to_running = match p {
                Profile::LibvfioUser => self.mig == Some(MigState::ERROR),
                _ => true,
            };
            if to_running {
                self.mig = Some(MigState::RUNNING);
            }
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

    fn reply_version(
        &mut self,
        p: Profile,
        v: VersionBody<'_>,
        (major, minor, req_size): (u16, u16, u32),
        ev: &Event<'_>,
        sink: &mut Sink<'_>,
    ) {
        let (rmaj, rmin) = (v.version.major.get(), v.version.minor.get());
        if rmaj != major {
            sink.emit(
                Rule::VersionMajor,
                16,
                format_args!(
                    "the server replies major version {rmaj}; the client proposed {major}"
                ),
            );
        }
        if rmin > minor {
            sink.emit(
                Rule::VersionMinor,
                18,
                format_args!(
                    "the server replies minor version {rmin}; the client proposed {minor}"
                ),
            );
        }
        let mut server = Caps::default();
        if let Some(json) = v.json
            && let Ok(c) = parse_capabilities(json)
        {
            caps::check(p, true, json, &c, sink);
            server = Caps::from_parsed(&c);
        }
        let offered = self.client.members();
        for (i, (name, present)) in server.members().into_iter().enumerate() {
            let lvu_always = matches!(name, "max_msg_fds" | "max_data_xfer_size" | "migration");
            if present && !offered[i].1 && !(p == Profile::LibvfioUser && lvu_always) {
                sink.emit(
                    Rule::VersionReplyExtraCap,
                    JSON_AT,
                    format_args!(
                        "the server's capabilities name {name}, which the client did not offer"
                    ),
                );
            }
        }
        if p == Profile::Spec && server.migration.is_some() {
            sink.emit(
                Rule::VersionLegacyMigration,
                JSON_AT,
                format_args!("the server sends the legacy migration capability, which the current spec does not define"),
            );
        }
        let mut twin = false;
        if server.twin_supported() {
            if !self.client.twin_supported() {
                sink.emit(
                    Rule::TwinSocketNotOffered,
                    JSON_AT,
                    format_args!("the server turns twin_socket on; the client did not offer it"),
                );
            }
            match server.twin_socket.and_then(|t| t.fd_index) {
                None => sink.emit(
                    Rule::TwinSocketFdIndex,
                    JSON_AT,
                    format_args!("twin_socket is supported but fd_index is missing"),
                ),
                Some(i) if i >= u64::from(ev.fds) => sink.emit(
                    Rule::TwinSocketFdIndex,
                    JSON_AT,
                    format_args!(
                        "twin_socket fd_index is {i}, but the reply carries {} fd(s)",
                        ev.fds
                    ),
                ),
                Some(_) => twin = true,
            }
        }
        if ev.fds > 0 && !twin {
            sink.emit(
                Rule::FdsUnexpected,
                0,
                format_args!(
                    "the VERSION reply carries {} fd(s) without a valid twin_socket",
                    ev.fds
                ),
            );
        }
        if p == Profile::Qemu && ev.bytes.len() > req_size as usize {
            sink.emit(
                Rule::QemuReplyBuffer,
                4,
                format_args!(
                    "the VERSION reply is {} bytes, longer than the {req_size}-byte request the QEMU client sized its buffer by",
                    ev.bytes.len()
                ),
            );
        }
        self.twin_active = twin;
        self.server = server;
        self.nego = Nego::Done;
    }

    #[allow(clippy::too_many_arguments)]
    fn reply_region_info(
        &mut self,
        p: Profile,
        m: &Message<'_>,
        info: &RegionInfo,
        caps: &[u8],
        asked: u32,
        index: u32,
        ev: &Event<'_>,
        sink: &mut Sink<'_>,
    ) {
        let (full, flags, size) = (info.argsz.get(), info.flags.get(), info.size.get());
        let payload = 32 + caps.len();
        if info.index.get() != index {
            sink.emit(
                Rule::ReplyEchoMismatch,
                24,
                format_args!(
                    "the GET_REGION_INFO reply is for region {}; the request asked for {index}",
                    info.index.get()
                ),
            );
        }
        if full > asked {
            // Cut short: only the fixed part, no capabilities and no fd.
            if flags & VFIO_REGION_INFO_FLAG_CAPS != 0 {
                sink.emit(
                    Rule::RegionInfoCaps,
                    20,
                    format_args!(
                        "the reply is cut short (argsz {full} > the {asked} asked) but sets CAPS"
                    ),
                );
            }
            if ev.fds > 0 {
                sink.emit(
                    Rule::FdsUnexpected,
                    0,
                    format_args!(
                        "the cut-short GET_REGION_INFO reply (argsz {full} > {asked}) carries {} fd(s)",
                        ev.fds
                    ),
                );
            }
            let padded = p == Profile::LibvfioUser
                && payload <= asked as usize
                && caps.iter().all(|&b| b == 0);
            if !caps.is_empty() && !padded {
                sink.emit(
                    Rule::PayloadLength,
                    HEADER_SIZE + 32,
                    format_args!(
                        "the cut-short GET_REGION_INFO reply has {} bytes after its 32-byte fixed part",
                        caps.len()
                    ),
                );
            }
        } else {
            self.reply_argsz(full, payload, Command::DEVICE_GET_REGION_INFO, sink);
            if flags & VFIO_REGION_INFO_FLAG_CAPS != 0 {
                let at = info.cap_offset.get();
                if at < 32 || u64::from(at) + 8 > u64::from(full) {
                    sink.emit(
                        Rule::RegionInfoCaps,
                        28,
                        format_args!("cap_offset {at} is outside [32, argsz {full} - 8]"),
                    );
                }
            }
            for cap in m.body.region_caps().into_iter().flatten().flatten() {
                match cap {
                    RegionCap::SparseMmap { at, areas, .. } => {
                        for (n, a) in areas.iter().enumerate() {
                            let area = (a.offset.get(), a.size.get(), None);
                            sparse_area(
                                n,
                                HEADER_SIZE + at + 16 + 16 * n,
                                area,
                                size,
                                ev.fds,
                                sink,
                            );
                        }
                    }
                    RegionCap::SparseMmapFds { at, areas, .. } => {
                        for (n, a) in areas.iter().enumerate() {
                            let area = (a.offset.get(), a.size.get(), Some(a.fd_index.get()));
                            sparse_area(
                                n,
                                HEADER_SIZE + at + 16 + 32 * n,
                                area,
                                size,
                                ev.fds,
                                sink,
                            );
                        }
                    }
                    _ => {}
                }
            }
            if flags & VFIO_REGION_INFO_FLAG_MMAP != 0 && ev.fds == 0 {
                sink.emit(
                    Rule::FdsMissing,
                    0,
                    format_args!("region {index} is MMAP but the reply carries no fd"),
                );
            }
            if flags & VFIO_REGION_INFO_FLAG_MMAP == 0 && ev.fds > 0 {
                sink.emit(
                    Rule::FdsUnexpected,
                    0,
                    format_args!(
                        "region {index} is not MMAP but the reply carries {} fd(s)",
                        ev.fds
                    ),
                );
            }
        }
        let r = Region { index, size, flags };
        match self.regions.iter_mut().find(|x| x.index == index) {
            Some(x) => *x = r,
            None => self.regions.push(r),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn reply_io_fds(
        &mut self,
        p: Profile,
        head: &RegionIoFds,
        entries: IoFdEntries<'_>,
        asked: u32,
        index: u32,
        payload: usize,
        ev: &Event<'_>,
        sink: &mut Sink<'_>,
    ) {
        let (full, count) = (head.argsz.get(), head.count.get());
        if head.index.get() != index {
            sink.emit(
                Rule::ReplyEchoMismatch,
                24,
                format_args!(
                    "the GET_REGION_IO_FDS reply is for region {}; the request asked for {index}",
                    head.index.get()
                ),
            );
        }
        if head.flags.get() != 0 {
            sink.emit(
                Rule::FlagsReserved,
                20,
                format_args!(
                    "GET_REGION_IO_FDS reply flags are {:#x}; they must be 0",
                    head.flags.get()
                ),
            );
        }
        if full > asked {
            if !entries.is_empty() || payload > 16 {
                sink.emit(
                    Rule::PayloadLength,
                    HEADER_SIZE + 16,
                    format_args!(
                        "the cut-short GET_REGION_IO_FDS reply (argsz {full} > {asked}) carries entries"
                    ),
                );
            }
            if ev.fds > 0 {
                sink.emit(
                    Rule::FdsUnexpected,
                    0,
                    format_args!(
                        "the cut-short GET_REGION_IO_FDS reply carries {} fd(s)",
                        ev.fds
                    ),
                );
            }
            return;
        }
        self.reply_argsz(full, payload, Command::DEVICE_GET_REGION_IO_FDS, sink);
        if entries.layout().stride() == 48 && !entries.is_empty() && p != Profile::LibvfioUser {
            sink.emit(
                Rule::IoFdsStride48,
                HEADER_SIZE + 16,
                format_args!("the IO_FDS entries are 48 bytes apart; the spec's entry is 40"),
            );
        }
        if count > 0 && ev.fds == 0 {
            sink.emit(
                Rule::FdsMissing,
                0,
                format_args!("the GET_REGION_IO_FDS reply lists {count} entries but carries no fd"),
            );
        }
        let stride = entries.layout().stride();
        let size = self.region(index).map(|r| r.size);
        let mut check = |n: usize, off: u64, len: u64, fd: u32| {
            let at = HEADER_SIZE + 16 + n * stride;
            if fd >= ev.fds && ev.fds > 0 {
                sink.emit(
                    Rule::IoFdsEntry,
                    at + 16,
                    format_args!(
                        "IO_FDS entry {n} names fd_index {fd}, but the reply carries {} fd(s)",
                        ev.fds
                    ),
                );
            }
            if let Some(s) = size
                && off.checked_add(len).is_none_or(|end| end > s)
            {
                sink.emit(
                    Rule::IoFdsEntry,
                    at,
                    format_args!("IO_FDS entry {n} [{off:#x}, +{len:#x}) lies beyond region {index}'s {s:#x} bytes"),
                );
            }
        };
        match entries {
            IoFdEntries::Spec(es) => {
                for (n, e) in es.iter().enumerate() {
                    check(n, e.offset.get(), e.size.get(), e.fd_index.get());
                }
            }
            IoFdEntries::Shadow(es) => {
                for (n, e) in es.iter().enumerate() {
                    check(n, e.gpa_offset.get(), e.size.get(), e.fd_index.get());
                }
            }
        }
    }

    fn reply_feature(
        &mut self,
        head: &DeviceFeature,
        data: FeatureData<'_>,
        req: FeatureReq,
        payload: usize,
        sink: &mut Sink<'_>,
    ) {
        let FeatureReq {
            argsz,
            flags,
            payload: req_payload,
            state,
            report,
        } = req;
        let name = feature_name(head.feature());
        if head.flags.get() != flags {
            sink.emit(
                Rule::ReplyEchoMismatch,
                20,
                format_args!(
                    "the DEVICE_FEATURE reply has flags {:#x}; the request had {flags:#x}",
                    head.flags.get()
                ),
            );
            return;
        }
        let probe = flags & VFIO_DEVICE_FEATURE_PROBE != 0;
        let get = flags & VFIO_DEVICE_FEATURE_GET != 0;
        let set = flags & VFIO_DEVICE_FEATURE_SET != 0;
        if get && !probe {
            self.reply_argsz(head.argsz.get(), payload, Command::DEVICE_FEATURE, sink);
            match data {
                FeatureData::Migration(m) => {
                    let f = m.flags.get();
                    if f & VFIO_MIGRATION_STOP_COPY == 0 || f & VFIO_MIGRATION_P2P != 0 {
                        sink.emit(
                            Rule::MigrationFlags,
                            24,
                            format_args!(
                                "MIGRATION flags are {f:#x}; STOP_COPY (1) is required and P2P (2) is not used by vfio-user"
                            ),
                        );
                    }
                    self.support = Some(Support {
                        pre_copy: f & VFIO_MIGRATION_PRE_COPY != 0,
                        p2p: false,
                    });
                }
                FeatureData::MigState(s) => self.mig = Some(MigState(s.device_state.get())),
                FeatureData::LoggingReport { report: r, bitmap } => {
                    if let Some((iova, len, pg)) = report {
                        if (r.iova.get(), r.length.get(), r.page_size.get()) != (iova, len, pg) {
                            sink.emit(
                                Rule::ReplyEchoMismatch,
                                24,
                                format_args!("the DMA_LOGGING_REPORT reply does not echo iova, length and page_size"),
                            );
                        }
                        if let Some(pages) = len.checked_div(pg).map(|_| len.div_ceil(pg)) {
                            let first_extra = pages;
                            let bits = (bitmap.len() as u64) * 8;
                            let stray = (first_extra..bits)
                                .find(|&b| bitmap[(b / 8) as usize] & (1 << (b % 8)) != 0);
                            if let Some(b) = stray {
                                sink.emit(
                                    Rule::LoggingReportBitmap,
                                    HEADER_SIZE + 32 + (b / 8) as usize,
                                    format_args!("bitmap bit {b} is set, but the range has only {pages} pages"),
                                );
                            }
                        }
                    }
                }
                _ => {}
            }
        } else {
            // SET and PROBE: the reply repeats the request.
            if head.argsz.get() != argsz || payload != req_payload as usize {
                sink.emit(
                    Rule::ReplyEchoMismatch,
                    16,
                    format_args!(
                        "the DEVICE_FEATURE {name} reply has argsz {} and {payload} payload bytes; the request had {argsz} and {req_payload}",
                        head.argsz.get()
                    ),
                );
            }
            if set && !probe {
                match head.feature() {
                    VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE => {
                        if let Some(to) = state {
                            if let FeatureData::MigState(s) = data
                                && s.device_state.get() != to
                            {
                                sink.emit(
                                    Rule::ReplyEchoMismatch,
                                    24,
                                    format_args!(
                                        "the MIG_DEVICE_STATE SET reply says state {}; the request asked for {}",
                                        MigState(s.device_state.get()),
                                        MigState(to)
                                    ),
                                );
                            }
                            self.mig = Some(MigState(to));
                        }
                    }
                    VFIO_DEVICE_FEATURE_DMA_LOGGING_START => self.logging = true,
                    VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP => self.logging = false,
                    _ => {}
                }
            }
        }
    }
}
