//! The VERSION capabilities of one side (§2.1), kept after negotiation, and the checks on their values.

use vfu_codec::vfio::caps::{Capabilities, Migration, Scope, TwinSocket};

use super::finding::Sink;
use super::rules::Rule;
use super::types::Profile;

/// Payload offset of the JSON text in a VERSION message (header 16 + major/minor 4).
pub(crate) const JSON_AT: usize = 20;

/// What one side advertised: the known members of its capabilities (absent = `None`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Caps {
    /// Whether the VERSION message carried JSON at all.
    pub(crate) given: bool,
    pub(crate) max_msg_fds: Option<u64>,
    pub(crate) max_data_xfer_size: Option<u64>,
    pub(crate) max_dma_maps: Option<u64>,
    pub(crate) pgsizes: Option<u64>,
    pub(crate) twin_socket: Option<TwinSocket>,
    pub(crate) write_multiple: Option<bool>,
    pub(crate) migration: Option<Migration>,
}

impl Caps {
    pub(crate) fn from_parsed(c: &Capabilities<'_>) -> Self {
        Caps {
            given: true,
            max_msg_fds: c.max_msg_fds,
            max_data_xfer_size: c.max_data_xfer_size,
            max_dma_maps: c.max_dma_maps,
            pgsizes: c.pgsizes,
            twin_socket: c.twin_socket,
            write_multiple: c.write_multiple,
            migration: c.migration,
        }
    }

    /// The members present, by name, in the order the spec lists them.
    pub(crate) fn members(&self) -> [(&'static str, bool); 7] {
        [
            ("max_msg_fds", self.max_msg_fds.is_some()),
            ("max_data_xfer_size", self.max_data_xfer_size.is_some()),
            ("max_dma_maps", self.max_dma_maps.is_some()),
            ("pgsizes", self.pgsizes.is_some()),
            ("twin_socket", self.twin_socket.is_some()),
            ("write_multiple", self.write_multiple.is_some()),
            ("migration", self.migration.is_some()),
        ]
    }

    pub(crate) fn twin_supported(&self) -> bool {
        self.twin_socket.and_then(|t| t.supported).unwrap_or(false)
    }
}

/// The offset within the message of `part`, a sub-slice of `json` (which starts at [`JSON_AT`]).
fn offset_in(json: &[u8], part: &str) -> usize {
    let at = (part.as_ptr() as usize).wrapping_sub(json.as_ptr() as usize);
    if at <= json.len() {
        JSON_AT + at
    } else {
        JSON_AT
    }
}

/// Checks one side's capabilities: ill-typed, unknown and repeated keys, and values out of range for
/// the spec and for `profile`. `reply` is whether they come from the server.
pub(crate) fn check(
    profile: Profile,
    reply: bool,
    json: &[u8],
    c: &Capabilities<'_>,
    sink: &mut Sink<'_>,
) {
    for u in c.unknown.iter() {
        let at = offset_in(json, u.key).saturating_sub(1);
        let path = match u.scope {
            Scope::TopLevel => "",
            s => s.path(),
        };
        let dot = if path.is_empty() { "" } else { "." };
        if u.ill_typed {
            sink.emit(
                Rule::VersionCapType,
                at,
                format_args!(
                    "capability {path}{dot}{} has the value {}, which is not of the type the spec gives it",
                    u.key, u.value
                ),
            );
        } else {
            sink.emit(
                Rule::VersionCapUnknown,
                at,
                format_args!("capability {path}{dot}{} is not defined by the spec", u.key),
            );
        }
    }
    if c.duplicate_keys > 0 {
        sink.emit(
            Rule::VersionCapDuplicate,
            JSON_AT,
            format_args!(
                "the capabilities repeat {} key(s); the last value of each counts",
                c.duplicate_keys
            ),
        );
    }

    let mut bad = |what: &str, value: u64, why: &str| {
        sink.emit(
            Rule::VersionCapValue,
            JSON_AT,
            format_args!("capability {what} is {value}, but {why}"),
        );
    };
    if c.max_data_xfer_size == Some(0) {
        bad("max_data_xfer_size", 0, "no transfer could then be made");
    }
    if c.pgsizes == Some(0) {
        bad("pgsizes", 0, "it must name at least one page size");
    }
    if let Some(pg) = c.migration.and_then(|m| m.pgsize)
        && (!pg.is_power_of_two() || pg < 4096)
    {
        bad(
            "migration.pgsize",
            pg,
            "a page size must be a power of two of at least 4096",
        );
    }
    if !reply && let Some(i) = c.twin_socket.and_then(|t| t.fd_index) {
        bad(
            "twin_socket.fd_index",
            i,
            "fd_index belongs in the server's reply only",
        );
    }
    match profile {
        Profile::LibvfioUser if !reply => {
            if let Some(n) = c.max_msg_fds.filter(|&n| n > 1024) {
                bad("max_msg_fds", n, "libvfio-user accepts 0 to 1024");
            }
        }
        Profile::Qemu if reply => {
            if let Some(n) = c.max_msg_fds.filter(|&n| n > 16) {
                bad("max_msg_fds", n, "the QEMU client accepts at most 16");
            }
            if let Some(n) = c.max_data_xfer_size.filter(|&n| n > 64 << 20) {
                bad(
                    "max_data_xfer_size",
                    n,
                    "the QEMU client accepts at most 64 MiB",
                );
            }
            if let Some(n) = c.max_dma_maps.filter(|&n| n > 65535) {
                bad("max_dma_maps", n, "the QEMU client accepts at most 65535");
            }
            if let Some(n) = c.pgsizes.filter(|&n| n & 0xfff != 0) {
                bad(
                    "pgsizes",
                    n,
                    "the QEMU client rejects page sizes below 4 KiB",
                );
            }
            if let Some(n) = c
                .migration
                .and_then(|m| m.pgsize)
                .filter(|&n| n % 4096 != 0)
            {
                bad(
                    "migration.pgsize",
                    n,
                    "the QEMU client needs a multiple of 4096",
                );
            }
            if let Some(n) = c
                .migration
                .and_then(|m| m.max_bitmap_size)
                .filter(|&n| n > 256 << 20)
            {
                bad(
                    "migration.max_bitmap_size",
                    n,
                    "the QEMU client accepts at most 256 MiB",
                );
            }
        }
        _ => {}
    }
}
