//! Header flags, VERSION negotiation and the limits the two sides negotiated.

use vfu_codec::header::VFIO_USER_F_RESERVED;
use vfu_codec::message::VersionBody;
use vfu_codec::vfio::caps::parse_capabilities;
use vfu_codec::{Command, Direction, Header};

use crate::validate::caps::{self, Caps, JSON_AT};
use crate::validate::finding::Sink;
use crate::validate::rules::Rule;
use crate::validate::types::{Event, Profile};

use super::{Conn, Ctx, LVU_MAX_MSG_SIZE, MIB, Nego, expected_direction, is_known, side};

impl Conn {
    // ---------------------------------------------------------------------------------------------
    // Negotiated limits
    // ---------------------------------------------------------------------------------------------

    /// The most fds the server takes in one message.
    pub(super) fn server_max_fds(&self, p: Profile) -> u64 {
        let default = if p == Profile::Qemu { 8 } else { 1 };
        self.server.max_msg_fds.unwrap_or(default)
    }

    pub(super) fn client_max_fds(&self) -> u64 {
        self.client.max_msg_fds.unwrap_or(1)
    }

    pub(super) fn server_max_xfer(&self) -> u64 {
        self.server.max_data_xfer_size.unwrap_or(MIB)
    }

    pub(super) fn client_max_xfer(&self) -> u64 {
        self.client.max_data_xfer_size.unwrap_or(MIB)
    }

    /// The receivers' message size limits of the implementation profiles.
    pub(super) fn size_limit(&self, p: Profile, h: &Header, ev: &Event<'_>, sink: &mut Sink<'_>) {
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
    pub(super) fn header(&mut self, h: &Header, ev: &Event<'_>, sink: &mut Sink<'_>) {
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

    pub(super) fn req_version(
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
            self.client_unknown = false;
        }
        Ctx::Version {
            major,
            minor,
            msg_size: ev.bytes.len() as u32,
        }
    }

    pub(super) fn reply_version(
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
            let accepted = self.client_unknown || (p == Profile::LibvfioUser && lvu_always);
            if present && !offered[i].1 && !accepted {
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
            if !self.client.twin_supported() && !self.client_unknown {
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
}
