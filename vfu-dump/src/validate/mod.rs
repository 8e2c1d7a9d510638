//! The stateful validator: feed it one [`Event`] per captured message, in capture order, and it reports
//! [`Finding`]s against the vfio-user reference (`docs/vfio-user-wire.md`) and the VDUSE rules.
//!
//! ```
//! use vfu_codec::{encode, Body, Command, Direction, Header};
//! use vfu_dump::validate::{Event, Profile, Protocol, Validator};
//!
//! let mut v = Validator::new(Profile::Spec);
//! let mut buf = [0u8; 64];
//! // A DEVICE_RESET before any VERSION: the session did not start with negotiation.
//! let n = encode(&Header::command(1, Command::DEVICE_RESET), &Body::Empty, &mut buf).unwrap();
//! let ev = Event {
//!     conn: 0,
//!     index: 0,
//!     direction: Direction::ClientToServer,
//!     protocol: Protocol::VfioUser,
//!     fds: 0,
//!     truncated: false,
//!     bytes: &buf[..n],
//! };
//! let mut findings = Vec::new();
//! v.check(&ev, &mut findings);
//! assert_eq!(findings[0].rule.id, "version-not-first");
//! // The capture ends without a reply.
//! assert_eq!(v.finish()[0].rule.id, "request-unanswered");
//! ```
//!
//! ## What is tracked
//!
//! Each connection has its own state, kept small: the negotiated capabilities of both sides, the
//! device, region and IRQ information seen in replies, the live DMA windows, the migration state and
//! dirty-logging flag, and the commands still waiting for a reply (at most 65536 per connection; beyond
//! that the oldest is dropped with one [`pending-overflow`](Rule::PendingOverflow) finding).
//!
//! The server processes commands in the order they arrive (§1 rule 7), so what a command changes (DMA
//! windows, dirty-page logging, the migration state, a reset's effect on it) takes effect when the
//! command is seen, and every later command is checked against it, answered or not: QEMU unmaps a
//! range and maps its pieces in one burst before the first reply. An error reply undoes the command,
//! and the state is worked out again as the server had it, without that command (for the last 64
//! state-changing commands not yet settled; an older one counts as accepted). Server DMA into a
//! window whose DMA_UNMAP is not yet answered is accepted (the server may finish DMA under way before
//! it replies). What a reply reports (device, region and IRQ info, capabilities, a MIG_DEVICE_STATE
//! GET) is known from its reply on. Checking a message allocates nothing unless it produces a
//! finding.
//!
//! A command whose header says msg_size below 16 is still a command with an id (libvfio-user reads
//! its 16 bytes and answers it). An error reply that matches no command is judged at the connection's
//! next message, or at the end: a server that rejects a header answers before the rest of that
//! message comes, and a capture writes the cut-off command last, as the stream's `truncated` tail,
//! which that reply then answers.
//!
//! The migration state starts at RUNNING, the state of a freshly started device (a migration
//! destination is such a device: it reaches RESUMING through STOP). Until a MIGRATION GET reply says
//! otherwise, PRE_COPY is assumed supported.
//!
//! ## What cannot be decided from the capture
//!
//! A check that needs information the capture has not shown is skipped, never guessed: a region index
//! is compared with `num_regions` only once a DEVICE_GET_INFO reply was seen (PCI devices have *at
//! least* 9 regions, so no default bound exists; a libvfio-user device has exactly 9, so its profile
//! has that bound from the start), an offset with a region size only once that region's
//! GET_REGION_INFO reply was seen, a SET_IRQS range with a vector count only after GET_IRQ_INFO. IRQ
//! indices are the exception: PCI defines exactly 5.
//!
//! Two Info rules make such gaps visible without failing a capture:
//! [`region-index-unverified`](Rule::RegionIndexUnverified) for a region index beyond the 9 PCI regions
//! before DEVICE_GET_INFO under the spec and qemu profiles (the libvfio-user sample client reads region
//! 0xdeadbeef this way, first thing after negotiating, and the server rightly refuses it), and [`request-rejected`](Rule::RequestRejected)
//! for an error reply to a command in which the validator found nothing wrong (a resource limit such as
//! libvfio-user's DMA window count, or a range it could not check). A command that did raise a finding
//! gets no `request-rejected`: the error reply is the expected answer.
//!
//! ## Profiles
//!
//! [`Profile::Spec`] holds both sides to the current spec. [`Profile::LibvfioUser`] and [`Profile::Qemu`]
//! accept the documented departures (`[impl]` in the reference) of those implementations, and add the
//! limits they enforce; see [`Profile`].

mod caps;
mod pending;
mod rules;
mod vduse;
mod vfio;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

pub use rules::{RULES, Rule, RuleInfo, rule_by_id};
pub use vfu_codec::Direction;

/// Most commands tracked as unanswered per connection.
pub const MAX_PENDING: usize = 65536;

/// Which protocol a message belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// vfio-user: one whole message (16-byte header and payload).
    VfioUser,
    /// VDUSE: one 152-byte `vduse_dev_request` (kernel to daemon, [`Direction::ClientToServer`]) or
    /// `vduse_dev_response` (daemon to kernel, [`Direction::ServerToClient`]).
    Vduse,
}

/// One captured message, as the validator sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event<'a> {
    /// The connection it travelled on (the pcapng interface id).
    pub conn: u32,
    /// Its index in the capture (every connection counted together).
    pub index: u64,
    /// Which way it travelled.
    pub direction: Direction,
    /// Its protocol.
    pub protocol: Protocol,
    /// How many SCM_RIGHTS file descriptors travelled with it.
    pub fds: u32,
    /// Whether the stream ended before the message was complete (`bytes` is what there was).
    pub truncated: bool,
    /// The message bytes.
    pub bytes: &'a [u8],
}

/// Which implementation departures from the spec are accepted, and which implementation limits are
/// checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Profile {
    /// The current spec, strictly: no departure is accepted.
    #[default]
    Spec,
    /// libvfio-user as the server (or client). Accepted: error replies with a payload; a partial DMA_MAP
    /// overlap refused with EINVAL instead of EEXIST, and an identical re-map accepted; header-only
    /// replies to count-0 REGION_READ/WRITE; MIG_DATA_READ replies padded to the requested size;
    /// 48-byte IO_FDS entries, and fd_index 0xFFFFFFFF in them for an ioeventfd without a descriptor;
    /// max_msg_fds, max_data_xfer_size and migration in the VERSION reply
    /// though not offered; the legacy migration capability; DMA_UNMAP flags UNMAP_ALL and
    /// GET_DIRTY_BITMAP; the DMA_MAP access-mode bits; region-info replies zero-padded to the request's
    /// argsz, and info and DMA_UNMAP requests zero-padded to their argsz (its client sends them so);
    /// data_fd -1 in MIG_DEVICE_STATE SET. Checked in addition: client messages at most 1 MiB + 32
    /// bytes, client max_msg_fds at most 1024, DMA windows at most 8 TiB, DMA_UNMAP and IO_FDS argsz at
    /// most 1 MiB, MIG_DATA_WRITE argsz at least 8 + size, migration data counted against the client's
    /// max_data_xfer_size, region indices below its 9 regions before DEVICE_GET_INFO, no second
    /// DMA_LOGGING_START with another page size, and DMA_LOGGING_REPORT ranges of one fd-backed window
    /// from its base, at least a page long.
    LibvfioUser,
    /// QEMU's client (10.1). Accepted: header-only DMA_WRITE replies; DMA_READ replies with a 12-byte
    /// head (u32 count); max_msg_fds 8 for a server that does not advertise it; replies matched by id
    /// only; DMA_UNMAP flag UNMAP_ALL; the legacy migration capability. Checked in addition: QEMU's
    /// limits on the server's capabilities, server commands at most max_data_xfer_size + 32 bytes, and a
    /// VERSION reply no longer than the VERSION request.
    Qemu,
}

impl Profile {
    /// Every profile.
    pub const ALL: [Profile; 3] = [Profile::Spec, Profile::LibvfioUser, Profile::Qemu];

    /// `"spec"`, `"libvfio-user"` or `"qemu"`.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Spec => "spec",
            Profile::LibvfioUser => "libvfio-user",
            Profile::Qemu => "qemu",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Profile {
    type Err = String;

    /// Parses `spec`, `libvfio-user` (or `lvu`) and `qemu`, ignoring case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let l = s.to_ascii_lowercase();
        match l.as_str() {
            "spec" => Ok(Profile::Spec),
            "libvfio-user" | "libvfio_user" | "libvfiouser" | "lvu" => Ok(Profile::LibvfioUser),
            "qemu" => Ok(Profile::Qemu),
            _ => Err(format!(
                "unknown profile '{s}' (expected spec, libvfio-user or qemu)"
            )),
        }
    }
}

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// Worth knowing; not a violation (or not one the capture can prove).
    Info,
    /// A departure or a risk: suspicious, an implementation limit, or a rule of lesser weight.
    Warning,
    /// A protocol violation.
    Error,
}

impl Severity {
    /// `"info"`, `"warning"` or `"error"`.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One thing the validator found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The rule (its row of [`RULES`]).
    pub rule: &'static RuleInfo,
    /// The rule's severity.
    pub severity: Severity,
    /// The connection.
    pub conn: u32,
    /// The message's index in the capture.
    pub index: u64,
    /// The byte offset within the message of what the finding is about (0 for the message as a whole).
    pub offset: usize,
    /// One plain sentence naming the values.
    pub message: String,
}

/// `conn 3 #41 +0x18 error dma-unmap-no-match: …`
impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "conn {} #{} +{:#x} {} {}: {}",
            self.conn, self.index, self.offset, self.severity, self.rule.id, self.message
        )
    }
}

/// Where the findings of one message go.
pub(crate) struct Sink<'o> {
    out: &'o mut Vec<Finding>,
    conn: u32,
    index: u64,
}

impl<'o> Sink<'o> {
    fn new(out: &'o mut Vec<Finding>, conn: u32, index: u64) -> Self {
        Sink { out, conn, index }
    }

    /// Findings pushed so far (by anyone).
    fn len(&self) -> usize {
        self.out.len()
    }

    /// Reports `rule` at `offset` of the current message.
    fn emit(&mut self, rule: Rule, offset: usize, message: fmt::Arguments<'_>) {
        self.emit_at(rule, self.index, offset, message);
    }

    /// Reports `rule` about another message of the same connection.
    fn emit_at(&mut self, rule: Rule, index: u64, offset: usize, message: fmt::Arguments<'_>) {
        let info = rule.info();
        self.out.push(Finding {
            rule: info,
            severity: info.severity,
            conn: self.conn,
            index,
            offset,
            message: message.to_string(),
        });
    }

    /// Reports a decode error as `decode/<codec rule id>`.
    fn decode(&mut self, e: &vfu_codec::DecodeError) {
        let rule = Rule::for_decode(&e.rule);
        if rule == Rule::DecodeOther {
            self.emit(
                rule,
                e.offset,
                format_args!("{} (codec rule {})", e.rule, e.rule.id()),
            );
        } else {
            self.emit(rule, e.offset, format_args!("{}", e.rule));
        }
    }
}

/// The validator: per-connection state for a whole capture.
#[derive(Debug)]
pub struct Validator {
    profile: Profile,
    vfio: HashMap<u32, vfio::Conn, foldhash::fast::RandomState>,
    vduse: HashMap<u32, vduse::Conn, foldhash::fast::RandomState>,
}

impl Validator {
    /// A validator with no connection seen yet.
    pub fn new(profile: Profile) -> Self {
        Validator {
            profile,
            vfio: HashMap::default(),
            vduse: HashMap::default(),
        }
    }

    /// The profile in use.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// Checks one message, appending what it finds to `out` (nothing is allocated when nothing is found).
    pub fn check(&mut self, ev: &Event<'_>, out: &mut Vec<Finding>) {
        let mut sink = Sink::new(out, ev.conn, ev.index);
        match ev.protocol {
            Protocol::VfioUser => self
                .vfio
                .entry(ev.conn)
                .or_insert_with(vfio::Conn::new)
                .check(self.profile, ev, &mut sink),
            Protocol::Vduse => self
                .vduse
                .entry(ev.conn)
                .or_insert_with(vduse::Conn::new)
                .check(ev, &mut sink),
        }
    }

    /// Checks one message and returns its findings.
    pub fn check_event(&mut self, ev: &Event<'_>) -> Vec<Finding> {
        let mut out = Vec::new();
        self.check(ev, &mut out);
        out
    }

    /// Ends the capture: reports what is still unanswered, by connection, and forgets it.
    pub fn finish(&mut self) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut conns: Vec<u32> = self.vfio.keys().chain(self.vduse.keys()).copied().collect();
        conns.sort_unstable();
        conns.dedup();
        for conn in conns {
            let mut sink = Sink::new(&mut out, conn, 0);
            if let Some(c) = self.vfio.get_mut(&conn) {
                c.finish(&mut sink);
            }
            if let Some(c) = self.vduse.get_mut(&conn) {
                c.finish(&mut sink);
            }
        }
        out
    }
}
