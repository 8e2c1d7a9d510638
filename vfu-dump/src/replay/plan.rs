//! Reading one connection of a capture and checking that it can be replayed, before anything is
//! sent: every message whole, every reply paired with its request, the VERSION exchange present,
//! every descriptor one the replay knows how to make.

use std::collections::HashMap;
use std::path::Path;

use vfu_codec::vfio::caps::parse_capabilities;
use vfu_codec::{Body, Command, Direction, Header, MessageType, decode};

use super::error::ReplayError;
use super::wire::MAX_FDS;
use crate::capture::{self, OpenOptions, Protocol, Record};

/// Which side the replay plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The client: the capture's client messages are sent to a live server (`--connect`).
    Client,
    /// The server: a live client is answered with the capture's replies (`--serve`).
    Server,
}

/// The descriptors the replay makes for a message whose original carried some.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fds {
    /// None.
    None,
    /// `count` new memfds of `size` bytes each (DMA_MAP: `offset + size`; a region-info reply:
    /// the region's `offset + size`).
    Memfd {
        /// How many.
        count: u32,
        /// Size of each.
        size: u64,
    },
    /// `n` new eventfds (SET_IRQS with DATA_EVENTFD; an IO_FDS reply).
    Eventfds(u32),
}

impl Fds {
    /// How many descriptors.
    pub fn count(self) -> u32 {
        match self {
            Fds::None => 0,
            Fds::Memfd { count, .. } => count,
            Fds::Eventfds(n) => n,
        }
    }
}

/// What a captured message is in the conversation; positions are indices into [`Plan::steps`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A client command; `reply` is where the server's reply is, if the capture (up to `--until`)
    /// has it.
    ClientCommand {
        /// The reply's position.
        reply: Option<usize>,
    },
    /// The server's reply to the client command at `request`.
    ServerReply {
        /// The request's position.
        request: usize,
    },
    /// A server command (DMA_READ, DMA_WRITE) and where the client's reply is.
    ServerCommand {
        /// The reply's position.
        reply: Option<usize>,
    },
    /// The client's reply to the server command at `request`.
    ClientReply {
        /// The request's position.
        request: usize,
    },
}

/// One captured message and its place in the conversation.
#[derive(Clone, Debug)]
pub struct Step {
    /// The record (its `index` is the message's number in the capture file).
    pub record: Record,
    /// Its role.
    pub role: Role,
    /// The descriptors the replay makes when it sends this message.
    pub fds: Fds,
}

impl Step {
    /// The header (every step has one: [`load`] checks).
    pub fn header(&self) -> &Header {
        Header::peek(&self.record.data).unwrap_or(&EMPTY_HEADER)
    }

    /// `DMA_MAP cmd id=3` or `DMA_MAP reply id=3`.
    pub fn describe(&self) -> String {
        describe(&self.record.data)
    }
}

static EMPTY_HEADER: Header = Header {
    msg_id: zerocopy::little_endian::U16::ZERO,
    command: zerocopy::little_endian::U16::ZERO,
    msg_size: zerocopy::little_endian::U32::ZERO,
    flags: zerocopy::little_endian::U32::ZERO,
    error_no: zerocopy::little_endian::U32::ZERO,
};

/// `DMA_MAP cmd id=3`, `DMA_MAP reply id=3`, from a message's header.
pub fn describe(bytes: &[u8]) -> String {
    match Header::peek(bytes) {
        Some(h) => format!(
            "{} {} id={}",
            h.cmd(),
            if h.is_reply() { "reply" } else { "cmd" },
            h.msg_id.get()
        ),
        None => format!("{} bytes", bytes.len()),
    }
}

/// The steps of the replay's own commands that wait for the live peer's reply, by message id.
#[derive(Debug, Default)]
pub struct Waiting(HashMap<u16, Vec<usize>>);

impl Waiting {
    /// Step `pos`, sent with message id `id`, waits for its reply.
    pub fn push(&mut self, id: u16, pos: usize) {
        self.0.entry(id).or_default().push(pos);
    }

    /// The earliest waiting step with message id `id` whose command is `cmd`, no longer waiting.
    pub fn take(&mut self, steps: &[Step], id: u16, cmd: Command) -> Option<usize> {
        let v = self.0.get_mut(&id)?;
        let at = v.iter().position(|&p| steps[p].header().cmd() == cmd)?;
        Some(v.remove(at))
    }
}

/// One connection of a capture, checked and paired, ready to replay.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The capture file, as given.
    pub source: String,
    /// The connection replayed.
    pub conn: u32,
    /// Its name in the capture (`vfio-user:0:/run/dev.sock`).
    pub conn_name: String,
    /// Its messages, up to `--until`.
    pub steps: Vec<Step>,
    /// Whether `--until` left later messages of the connection out.
    pub cut: bool,
    /// The client's `max_data_xfer_size` from its VERSION request (the largest DMA transfer it
    /// answers).
    pub client_max_xfer: u64,
}

fn bad(index: u64, reason: impl Into<String>) -> ReplayError {
    ReplayError::BadCapture {
        index: Some(index),
        reason: reason.into(),
    }
}

fn bad_conn(reason: impl Into<String>) -> ReplayError {
    ReplayError::BadCapture {
        index: None,
        reason: reason.into(),
    }
}

/// Reads connection `conn` of `path` (the only connection when `None`), keeps its first `until`
/// messages and checks them; nothing is sent.
pub fn load(
    path: &Path,
    conn: Option<u32>,
    until: Option<u64>,
    side: Side,
) -> Result<Plan, ReplayError> {
    let source = path.display().to_string();
    let mut reader = capture::open(path, &OpenOptions::default())
        .map_err(|e| ReplayError::Capture(source.clone(), e))?;
    let mut by_conn: HashMap<u32, Vec<Record>> = HashMap::new();
    let mut last = None;
    loop {
        match reader.next_record() {
            Ok(Some(r)) => {
                last = Some(r.index);
                if conn.is_none_or(|c| c == r.conn) {
                    by_conn.entry(r.conn).or_default().push(r.to_owned());
                }
            }
            Ok(None) => break,
            Err(e) => {
                let after = last.map_or(String::new(), |i| format!(" (after message #{i})"));
                return Err(ReplayError::BadCapture {
                    index: last.map(|i| i + 1),
                    reason: format!("{e}{after}"),
                });
            }
        }
    }
    let names: Vec<(u32, String, Protocol)> = reader
        .connections()
        .iter()
        .map(|c| (c.id, c.name.clone(), c.protocol))
        .collect();
    let conn = match conn {
        Some(c) => c,
        None => {
            let mut ids: Vec<u32> = by_conn.keys().copied().collect();
            ids.sort_unstable();
            match ids.as_slice() {
                [one] => *one,
                [] => return Err(bad_conn("the capture has no messages")),
                many => {
                    let mut list = many
                        .iter()
                        .take(4)
                        .map(|id| {
                            let name = names
                                .iter()
                                .find(|n| n.0 == *id)
                                .map_or("", |n| n.1.as_str());
                            format!("{id} ({name})")
                        })
                        .collect::<Vec<_>>()
                        .join(", ");
                    if many.len() > 4 {
                        list.push_str(&format!(", … {}", many[many.len() - 1]));
                    }
                    return Err(ReplayError::Usage(format!(
                        "the capture has {} connections: {list}; choose one with --conn",
                        many.len()
                    )));
                }
            }
        }
    };
    let records = by_conn.remove(&conn).unwrap_or_default();
    let conn_name = names
        .iter()
        .find(|n| n.0 == conn)
        .map_or_else(|| format!("connection {conn}"), |n| n.1.clone());
    if records.is_empty() {
        return Err(bad_conn(format!(
            "connection {conn} has no messages (the capture has {} connection{})",
            names.len(),
            if names.len() == 1 { "" } else { "s" }
        )));
    }
    if conn_name.contains("twin socket") {
        return Err(bad_conn(format!(
            "connection {conn} ({conn_name}) is a twin socket; replay its main connection"
        )));
    }
    build(source, conn, conn_name, records, until, side)
}

/// Checks and pairs the records of one connection; see [`load`].
pub fn build(
    source: String,
    conn: u32,
    conn_name: String,
    records: Vec<Record>,
    until: Option<u64>,
    side: Side,
) -> Result<Plan, ReplayError> {
    let keep = until.map_or(records.len(), |n| (n as usize).min(records.len()));
    let cut = keep < records.len();
    for r in &records[..keep] {
        check_record(r)?;
    }
    let client_max_xfer = negotiation(conn, &records)?;

    let mut steps: Vec<Step> = Vec::with_capacity(keep);
    // Commands waiting for a reply, by (direction of the command, id): positions, oldest first.
    let mut pending: HashMap<(bool, u16), Vec<usize>> = HashMap::new();
    for r in records.into_iter().take(keep) {
        let pos = steps.len();
        let Some(h) = Header::peek(&r.data) else {
            return Err(bad(r.index, "shorter than a header"));
        };
        let c2s = r.direction == Direction::ClientToServer;
        let (id, cmd) = (h.msg_id.get(), h.cmd());
        let role = if h.is_reply() {
            let waiting = pending.get_mut(&(!c2s, id));
            let request = waiting.and_then(|v| {
                let at = v.iter().position(|&p| steps[p].header().cmd() == cmd)?;
                Some(v.remove(at))
            });
            let Some(request) = request else {
                return Err(bad(
                    r.index,
                    format!(
                        "a reply without a request: no earlier {} command {cmd} with id {id} is waiting for one",
                        if c2s { "server" } else { "client" }
                    ),
                ));
            };
            match &mut steps[request].role {
                Role::ClientCommand { reply } | Role::ServerCommand { reply } => *reply = Some(pos),
                _ => {}
            }
            if c2s {
                Role::ClientReply { request }
            } else {
                Role::ServerReply { request }
            }
        } else {
            if !h.no_reply() {
                pending.entry((c2s, id)).or_default().push(pos);
            }
            if c2s {
                Role::ClientCommand { reply: None }
            } else {
                Role::ServerCommand { reply: None }
            }
        };
        let fds = descriptors(&r, role, side)?;
        steps.push(Step {
            record: r,
            role,
            fds,
        });
    }
    Ok(Plan {
        source,
        conn,
        conn_name,
        steps,
        cut,
        client_max_xfer,
    })
}

fn check_record(r: &Record) -> Result<(), ReplayError> {
    if r.protocol != Protocol::VfioUser {
        return Err(bad(
            r.index,
            format!(
                "a {} message: only vfio-user is replayed",
                r.protocol.name()
            ),
        ));
    }
    let Some(h) = Header::peek(&r.data) else {
        return Err(bad(
            r.index,
            format!(
                "{}{} bytes, shorter than the 16-byte header",
                if r.truncated { "truncated: " } else { "" },
                r.data.len()
            ),
        ));
    };
    let size = h.msg_size.get() as usize;
    if r.truncated || size > r.data.len() {
        return Err(bad(
            r.index,
            format!(
                "truncated: {} {} has {} of its {size} bytes (the capture ends inside it)",
                describe(&r.data),
                r.direction.short(),
                r.data.len()
            ),
        ));
    }
    if size != r.data.len() {
        return Err(bad(
            r.index,
            format!(
                "{}: msg_size {size} but the record holds {} bytes",
                describe(&r.data),
                r.data.len()
            ),
        ));
    }
    if h.message_type().is_none() {
        return Err(bad(
            r.index,
            format!(
                "type bits {} are neither command (0) nor reply (1)",
                h.type_bits()
            ),
        ));
    }
    if r.fds as usize > MAX_FDS {
        return Err(bad(
            r.index,
            format!("{} descriptors, more than one message can carry", r.fds),
        ));
    }
    Ok(())
}

/// Checks that the connection opens with a VERSION exchange that succeeded; returns the client's
/// `max_data_xfer_size`.
fn negotiation(conn: u32, records: &[Record]) -> Result<u64, ReplayError> {
    let never = |why: String| bad_conn(format!("connection {conn} never negotiated: {why}"));
    let Some(first) = records
        .iter()
        .find(|r| r.direction == Direction::ClientToServer)
    else {
        return Err(never("it has no client message".into()));
    };
    let Some(h) = Header::peek(&first.data).filter(|h| h.cmd() == Command::VERSION) else {
        return Err(never(format!(
            "its first client message, #{}, is {}, not a VERSION command (a capture that starts after the VERSION exchange cannot be replayed)",
            first.index,
            describe(&first.data)
        )));
    };
    if h.is_reply() {
        return Err(never(format!(
            "its first client message, #{}, is a reply",
            first.index
        )));
    }
    let id = h.msg_id.get();
    let reply = records.iter().find(|r| {
        r.direction == Direction::ServerToClient
            && Header::peek(&r.data).is_some_and(|h| {
                h.is_reply() && h.cmd() == Command::VERSION && h.msg_id.get() == id
            })
    });
    let Some(reply) = reply else {
        return Err(never(format!(
            "the VERSION request #{} got no reply in the capture",
            first.index
        )));
    };
    if let Some(h) = Header::peek(&reply.data).filter(|h| h.is_error()) {
        return Err(never(format!(
            "the server refused VERSION #{} (#{}: {})",
            first.index,
            reply.index,
            super::memory::errno_text(h.error_no.get())
        )));
    }
    let caps = |data: &[u8]| -> Option<(bool, u64)> {
        let m = decode(data, Direction::ClientToServer).ok()?;
        let Body::Version(v) = m.body else {
            return None;
        };
        let c = parse_capabilities(v.json?).ok()?;
        Some((c.effective_twin_socket(), c.effective_max_data_xfer_size()))
    };
    if reply.fds > 0 && caps(&reply.data).is_some_and(|c| c.0) {
        return Err(bad(
            reply.index,
            format!(
                "connection {conn} negotiated a twin socket (VERSION reply #{}): server requests travelled on a second socket, and replaying twin-socket sessions is not supported",
                reply.index
            ),
        ));
    }
    Ok(caps(&first.data).map_or(vfu_codec::vfio::caps::DEFAULT_MAX_DATA_XFER_SIZE, |c| c.1))
}

/// The descriptors the replay makes for `r` when it sends it.
fn descriptors(r: &Record, role: Role, side: Side) -> Result<Fds, ReplayError> {
    if r.fds == 0 {
        return Ok(Fds::None);
    }
    let sends = matches!(
        (role, side),
        (Role::ClientCommand { .. }, Side::Client)
            | (
                Role::ServerReply { .. } | Role::ServerCommand { .. },
                Side::Server
            )
    );
    if !sends {
        // The live peer sends this one; the replay answers server requests without descriptors.
        return Ok(Fds::None);
    }
    let m = decode(&r.data, r.direction).ok();
    let h = Header::peek(&r.data);
    let cmd = h.map_or(Command(0), Header::cmd);
    let body = m.as_ref().map(|m| m.body);
    let what = describe(&r.data);
    let unsupported = |why: &str| {
        bad(
            r.index,
            format!(
                "{what} carried {} descriptor{}: {why}",
                r.fds,
                if r.fds == 1 { "" } else { "s" }
            ),
        )
    };
    match (cmd, body, h.map(Header::message_type)) {
        (Command::DMA_MAP, Some(Body::DmaMap(m)), Some(Some(MessageType::Command))) => {
            let size = m.offset.get().checked_add(m.size.get()).ok_or_else(|| {
                unsupported("its offset + size overflows, so no memfd can back it")
            })?;
            Ok(Fds::Memfd { count: r.fds, size })
        }
        // Eventfds whatever the data type: a SET_IRQS with descriptors but without DATA_EVENTFD is
        // a request the server should refuse, and replays as one.
        (Command::DEVICE_SET_IRQS, _, Some(Some(MessageType::Command))) => Ok(Fds::Eventfds(r.fds)),
        (Command::DEVICE_GET_REGION_INFO, Some(Body::RegionInfo { info, .. }), _) => {
            let size = info
                .offset
                .get()
                .checked_add(info.size.get())
                .ok_or_else(|| unsupported("the region's offset + size overflows"))?;
            Ok(Fds::Memfd { count: r.fds, size })
        }
        (Command::DEVICE_GET_REGION_IO_FDS, Some(Body::RegionIoFds { .. }), _) => {
            Ok(Fds::Eventfds(r.fds))
        }
        (Command::VERSION, _, _) => Err(unsupported(
            "a twin socket, which the replay does not support",
        )),
        (_, None, _) => Err(unsupported(
            "the message does not decode, so the replay cannot tell what they were",
        )),
        _ => Err(unsupported(
            "the replay makes descriptors only for DMA_MAP (memfds), SET_IRQS (eventfds) and, with --serve, region-info replies (memfds) and IO_FDS replies (eventfds)",
        )),
    }
}
