//! VERSION (§2.1): the fixed part and the capabilities JSON, parsed without allocation.
//! (Parser being written; see `parse_capabilities`.)

use zerocopy::little_endian::U16;

use crate::error::Rule;
use crate::wire::Show;

crate::wire_struct! {
    /// VERSION request and reply fixed part; the optional NUL-terminated capabilities JSON follows.
    pub struct Version("vfio-user spec §2.1 VFIO_USER_VERSION", size 4) {
        /// Major version (0).
        major: U16 = Show::Dec,
        /// Minor version.
        minor: U16 = Show::Dec,
    }
}

/// Parsed capabilities (placeholder until the parser lands).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Capabilities<'a> {
    /// The raw JSON text.
    pub raw: &'a str,
}

/// Parses capabilities JSON text (without the NUL). Errors carry the offset within `json`.
pub fn parse_capabilities(json: &[u8]) -> Result<Capabilities<'_>, (usize, Rule)> {
    let raw = core::str::from_utf8(json).map_err(|e| {
        (
            e.valid_up_to(),
            Rule::JsonSyntax {
                reason: "not UTF-8",
            },
        )
    })?;
    Ok(Capabilities { raw })
}
