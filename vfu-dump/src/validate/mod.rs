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
mod finding;
mod pending;
mod rules;
mod types;
mod vduse;
mod vfio;

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use finding::Sink;

pub use finding::Finding;
pub use rules::{RULES, Rule, RuleInfo, rule_by_id};
pub use types::{Event, MAX_PENDING, Profile, Protocol, Severity};
pub use vfu_codec::Direction;

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
            Protocol::VduseIoctl => self
                .vduse
                .entry(ev.conn)
                .or_insert_with(vduse::Conn::new)
                .ioctl(ev, &mut sink),
        }
    }

    /// Checks a message of `orig_len` bytes the capture cut to its first `captured` (a snap
    /// length): `ev.bytes` is the whole message laid out at its length, zeros after `captured` (or,
    /// when it could not be laid out, the `captured` bytes alone). An info finding
    /// ([`capture-cut`](Rule::CaptureCut)) says so, and nothing the capture lacks is held against
    /// the message: when every structured part of the message (header, fixed parts, capabilities
    /// text, region capabilities) is among the captured bytes, it is checked as usual (the zeros
    /// stand only for opaque data: transfer data, bitmaps); otherwise only its header is, and it is
    /// paired with its command or reply.
    pub fn check_cut(
        &mut self,
        ev: &Event<'_>,
        captured: usize,
        orig_len: usize,
        out: &mut Vec<Finding>,
    ) {
        let mut sink = Sink::new(out, ev.conn, ev.index);
        sink.emit(
            Rule::CaptureCut,
            captured,
            format_args!(
                "the capture holds the first {captured} of the message's {orig_len} bytes (cut to a snap length); what it lacks is not checked"
            ),
        );
        match ev.protocol {
            Protocol::VfioUser => self
                .vfio
                .entry(ev.conn)
                .or_insert_with(vfio::Conn::new)
                .check_cut(self.profile, ev, captured, &mut sink),
            // A VDUSE message is one 152-byte structure: laid out with its type and id (and paired
            // by them), it is checked, and what is found about the bytes the capture lacks is
            // dropped; one not laid out is not checked.
            Protocol::Vduse if ev.bytes.len() > captured => {
                let start = sink.len();
                self.vduse
                    .entry(ev.conn)
                    .or_insert_with(vduse::Conn::new)
                    .check(ev, &mut sink);
                sink.retain_from(start, |f| f.offset < captured);
            }
            Protocol::Vduse => {}
            // An ioctl record's argument copies are the kernel's structures: one cut is not
            // checked (the writers of the format never cut one: they are far below any snap length).
            Protocol::VduseIoctl => {}
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
