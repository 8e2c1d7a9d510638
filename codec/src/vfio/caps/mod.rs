//! VERSION (§2.1): the fixed part and the capabilities JSON, parsed and emitted without allocation.
//!
//! The capabilities text is a JSON object (§2.1 "JSON grammar"):
//!
//! ```text
//! { "capabilities": { "max_msg_fds": <uint>, "max_data_xfer_size": <uint>, "max_dma_maps": <uint>,
//!                     "pgsizes": <uint>, "twin_socket": { "supported": <bool>, "fd_index": <uint> },
//!                     "write_multiple": <bool>, "migration": { "pgsize": <uint>, "max_bitmap_size": <uint> } } }
//! ```
//!
//! [`parse_capabilities`] reads it into a [`Capabilities`] value that borrows from the text.
//!
//! - **Any RFC 8259 JSON is accepted**, so unknown members of any shape can be skipped. Each unknown
//!   member is kept as an [`UnknownKey`]: the object it was in ([`Scope`]), the key as written and the raw
//!   text of its value (borrowed, never copied). At most [`MAX_UNKNOWN_KEYS`] are kept; one more is
//!   [`Rule::JsonTooLarge`].
//! - **Nesting is limited** to [`MAX_DEPTH`] arrays and objects (the top-level object counts as one);
//!   deeper is [`Rule::JsonTooLarge`]. The parser recurses at most that deep, so a hostile `[[[[…` cannot
//!   exhaust the stack.
//! - **A known key with the wrong type** (`"max_msg_fds": "8"`, a negative number, a fraction or
//!   exponent, a number above `u64::MAX`, `"migration": 23`) is not a syntax error: the field stays `None`
//!   and the member is kept as an [`UnknownKey`] with [`UnknownKey::ill_typed`] set, for a validator to
//!   report.
//! - **Duplicate keys:** the last one wins (everything the earlier one set is forgotten, including the
//!   members of an earlier object) and [`Capabilities::duplicate_keys`] counts them.
//! - **Keys are compared after unescaping**, so `"max\u005fmsg_fds"` is `max_msg_fds`; strings are kept
//!   as written (escapes are not decoded, which would need a buffer).
//! - **Errors** are `(offset, rule)`: the byte offset within the JSON text and a [`Rule::JsonSyntax`]
//!   (with its reason) or [`Rule::JsonTooLarge`]. A document that ends early is reported at the end of
//!   the text. Bytes in a string that are not UTF-8 are reported at the first bad one; a non-ASCII byte
//!   outside strings is a syntax error like any other unexpected byte.
//!
//! [`Capabilities::emit`] writes the value back as compact JSON (without the NUL the message adds), in the
//! member order described there.
//!
//! ```
//! use vfu_codec::vfio::caps::{parse_capabilities, Scope};
//!
//! let json = br#"{"capabilities":{"max_msg_fds":8,"max_data_xfer_size":1048576,"vendor":{"x":[1]}}}"#;
//! let caps = parse_capabilities(json).unwrap();
//! assert_eq!(caps.max_msg_fds, Some(8));
//! assert_eq!(caps.effective_max_dma_maps(), 65535); // absent: the spec default
//! assert_eq!(caps.unknown[0].scope, Scope::Capabilities);
//! assert_eq!((caps.unknown[0].key, caps.unknown[0].value), ("vendor", r#"{"x":[1]}"#));
//!
//! let mut buf = [0u8; 128];
//! let n = caps.emit(&mut buf).unwrap();
//! assert_eq!(&buf[..n], &json[..]);
//!
//! let err = parse_capabilities(br#"{"capabilities":{"max_msg_fds":8,}}"#).unwrap_err();
//! assert_eq!(err.0, 33); // the '}' where a key should be
//! assert_eq!(err.1.id(), "version-json-syntax");
//! ```

mod emit;
mod fast;
mod general;
mod num;
mod value;

#[cfg(test)]
mod tests;

use zerocopy::little_endian::U16;

pub use value::{
    Capabilities, DEFAULT_MAX_DATA_XFER_SIZE, DEFAULT_MAX_DMA_MAPS, DEFAULT_MAX_MSG_FDS,
    DEFAULT_PGSIZES, MAX_DEPTH, MAX_UNKNOWN_KEYS, Migration, Scope, TwinSocket, UnknownKey,
};

use crate::error::Rule;
use crate::wire::Show;

crate::wire::wire_struct! {
    /// VERSION request and reply fixed part; the optional NUL-terminated capabilities JSON follows.
    pub struct Version("vfio-user spec §2.1 VFIO_USER_VERSION", size 4) {
        /// Major version (0).
        major: U16 = Show::Dec; key,
        /// Minor version.
        minor: U16 = Show::Dec; key,
    }
}

impl Version {
    /// A VERSION fixed part (§2.1): `major` (0 in every spec version) and `minor`.
    pub fn new(major: u16, minor: u16) -> Self {
        Version {
            major: U16::new(major),
            minor: U16::new(minor),
        }
    }
}

impl<'a> Capabilities<'a> {
    /// Parses capabilities JSON text; the same as [`parse_capabilities`].
    pub fn parse(json: &'a [u8]) -> Result<Self, (usize, Rule)> {
        parse_capabilities(json)
    }
}

/// Parses capabilities JSON text (without the NUL). Errors carry the byte offset within `json`.
///
/// See the [module documentation](self) for what is accepted and how unknown, ill-typed and repeated
/// members are kept. Never allocates and never panics.
#[inline]
pub fn parse_capabilities(json: &[u8]) -> Result<Capabilities<'_>, (usize, Rule)> {
    // Filled inside the `Result` it is returned in, and inlined, so that the compiler can build the value
    // (some 780 bytes) where the caller keeps it: a move of it costs about as much as parsing a short text.
    let mut out = Ok(Capabilities::default());
    if let Ok(caps) = &mut out
        && let Err(e) = parse_into(json, caps)
    {
        out = Err(e);
    }
    out
}

/// Whether `json` parses as capabilities text, without handing the value back (decoding a VERSION
/// message checks its text this way: building the value where it is parsed spares moving it).
pub(crate) fn check_capabilities(json: &[u8]) -> Result<(), (usize, Rule)> {
    let mut caps = Capabilities::default();
    parse_into(json, &mut caps)
}

/// [`parse_capabilities`] without its fast path: the general parser alone, for differential tests
/// and fuzzing (the two must agree on every text the fast path accepts). Not part of the API.
#[doc(hidden)]
pub fn parse_capabilities_general(json: &[u8]) -> Result<Capabilities<'_>, (usize, Rule)> {
    let mut caps = Capabilities::default();
    general::parse_general(json, &mut caps).map(|()| caps)
}

/// Parses `json` into `caps`, which is empty.
fn parse_into<'a>(json: &'a [u8], caps: &mut Capabilities<'a>) -> Result<(), (usize, Rule)> {
    if fast::fast_document(json, caps).is_some() {
        return Ok(());
    }
    // Start again from nothing: the fast path may have set some fields before it gave up.
    *caps = Capabilities::default();
    general::parse_general(json, caps)
}
