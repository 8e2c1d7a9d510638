//! What the validator is fed and how it is set up: [`Event`], [`Protocol`], [`Profile`], the
//! [`Severity`] of a rule, and the bound on unanswered commands. Every rule module uses these; this
//! file imports none of its siblings.

use std::fmt;
use std::str::FromStr;

use vfu_codec::Direction;

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
    /// A VDUSE ioctl record ([`crate::capture::ioctl`]) on a device's connection: what it says
    /// (queue count, offered features, config size) bounds the checks of the device's messages
    /// and ioctls.
    VduseIoctl,
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
