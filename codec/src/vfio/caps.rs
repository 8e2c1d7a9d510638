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

use nom::IResult;
use nom::bytes::complete::{tag, take_while, take_while_m_n};
use nom::character::complete::{digit1, multispace0, one_of};
use nom::error::{ErrorKind, ParseError};
use zerocopy::little_endian::U16;

use crate::error::{EncodeError, Rule};
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

/// How deeply arrays and objects may nest, the top-level object included.
pub const MAX_DEPTH: usize = 16;

/// How many unknown (or ill-typed) members a [`Capabilities`] value holds.
pub const MAX_UNKNOWN_KEYS: usize = 16;

/// Spec default of `max_msg_fds` when absent (§2.1, §5).
pub const DEFAULT_MAX_MSG_FDS: u64 = 1;
/// Spec default of `max_data_xfer_size` when absent (§2.1, §5).
pub const DEFAULT_MAX_DATA_XFER_SIZE: u64 = 1 << 20;
/// Spec default of `max_dma_maps` when absent (§2.1, §5).
pub const DEFAULT_MAX_DMA_MAPS: u64 = 65535;
/// Spec default of `pgsizes` when absent: 4 KiB pages only (§2.1, §5).
pub const DEFAULT_PGSIZES: u64 = 4096;

/// The object a member was found in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The top-level object (whose one known member is `capabilities`).
    TopLevel,
    /// The `capabilities` object.
    Capabilities,
    /// The legacy `capabilities.migration` object.
    Migration,
    /// The `capabilities.twin_socket` object.
    TwinSocket,
}

impl Scope {
    /// The object's path from the top level: `""`, `"capabilities"`, `"capabilities.migration"` or
    /// `"capabilities.twin_socket"`.
    pub fn path(self) -> &'static str {
        match self {
            Scope::TopLevel => "",
            Scope::Capabilities => "capabilities",
            Scope::Migration => "capabilities.migration",
            Scope::TwinSocket => "capabilities.twin_socket",
        }
    }

    /// The known keys of this object.
    fn known(self) -> &'static [Known] {
        match self {
            Scope::TopLevel => &[Known::Capabilities],
            Scope::Capabilities => &[
                Known::MaxMsgFds,
                Known::MaxDataXferSize,
                Known::MaxDmaMaps,
                Known::Pgsizes,
                Known::WriteMultiple,
                Known::Migration,
                Known::TwinSocket,
            ],
            Scope::Migration => &[Known::Pgsize, Known::MaxBitmapSize],
            Scope::TwinSocket => &[Known::Supported, Known::FdIndex],
        }
    }
}

/// `capabilities.twin_socket` (§2.1 "Twin-socket mode").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TwinSocket {
    /// `supported`: the sender can use (client) or has set up (server) a second socket; default false.
    pub supported: Option<bool>,
    /// `fd_index` (reply only): the index of the client's socket end in this message's SCM_RIGHTS array.
    pub fd_index: Option<u64>,
}

/// The legacy `capabilities.migration` object (not in the current spec; libvfio-user and QEMU still send
/// it, §4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Migration {
    /// `pgsize`: the dirty-page granularity.
    pub pgsize: Option<u64>,
    /// `max_bitmap_size`: the largest dirty bitmap, in bytes (QEMU sends 256 MiB).
    pub max_bitmap_size: Option<u64>,
}

/// A member the parser did not turn into a field: an unknown key, or a known key whose value has the
/// wrong JSON type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UnknownKey<'a> {
    /// The object it was in.
    pub scope: Scope,
    /// The key as written between its quotes (escapes not decoded; see [`UnknownKey::key_chars`]).
    pub key: &'a str,
    /// The raw JSON text of the value (a string keeps its quotes).
    pub value: &'a str,
    /// A known key of this object whose value has the wrong type (a string, negative, fractional or
    /// too-large number where an unsigned integer belongs, a non-boolean for a flag, a non-object for
    /// `capabilities`, `migration` or `twin_socket`).
    pub ill_typed: bool,
}

impl<'a> UnknownKey<'a> {
    /// The key's characters with its escapes decoded (a lone surrogate becomes U+FFFD).
    pub fn key_chars(&self) -> impl Iterator<Item = char> + use<'a> {
        Units::new(self.key).chars()
    }

    /// Whether the key, once unescaped, is `name`.
    pub fn key_eq(&self, name: &str) -> bool {
        key_is(self.key, name)
    }
}

/// The VERSION capabilities (§2.1): one `Option` per known member, plus the members it does not know.
///
/// Absent members are `None`; the `effective_*` methods give the spec defaults for them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
// `repr(C)` keeps `unknown` last: then creating an empty value writes its length and nothing around its
// uninitialised storage (a zero on the far side let the compiler fill all 640 bytes of it with zeros).
#[repr(C)]
pub struct Capabilities<'a> {
    /// `max_msg_fds`: the most fds the sender can receive in one message.
    pub max_msg_fds: Option<u64>,
    /// `max_data_xfer_size`: the largest data count of a REGION/DMA READ/WRITE the sender accepts.
    pub max_data_xfer_size: Option<u64>,
    /// `max_dma_maps`: the most DMA windows mapped at once.
    pub max_dma_maps: Option<u64>,
    /// `pgsizes`: the OR of the DMA-map page sizes supported.
    pub pgsizes: Option<u64>,
    /// `twin_socket`, when the object is present.
    pub twin_socket: Option<TwinSocket>,
    /// `write_multiple`: the sender accepts REGION_WRITE_MULTI.
    pub write_multiple: Option<bool>,
    /// The legacy `migration` object, when present.
    pub migration: Option<Migration>,
    /// How many members repeated a key already seen in the same object (the last one wins).
    pub duplicate_keys: u32,
    /// Unknown and ill-typed members, in the order they appeared (a repeated key keeps the first one's
    /// place and the last one's value).
    pub unknown: heapless::Vec<UnknownKey<'a>, MAX_UNKNOWN_KEYS>,
}

impl<'a> Capabilities<'a> {
    /// Parses capabilities JSON text; the same as [`parse_capabilities`].
    pub fn parse(json: &'a [u8]) -> Result<Self, (usize, Rule)> {
        parse_capabilities(json)
    }

    /// `max_msg_fds`, or the spec default 1 ([`DEFAULT_MAX_MSG_FDS`]).
    pub fn effective_max_msg_fds(&self) -> u64 {
        self.max_msg_fds.unwrap_or(DEFAULT_MAX_MSG_FDS)
    }

    /// `max_data_xfer_size`, or the spec default 1 MiB ([`DEFAULT_MAX_DATA_XFER_SIZE`]).
    pub fn effective_max_data_xfer_size(&self) -> u64 {
        self.max_data_xfer_size
            .unwrap_or(DEFAULT_MAX_DATA_XFER_SIZE)
    }

    /// `max_dma_maps`, or the spec default 65535 ([`DEFAULT_MAX_DMA_MAPS`]).
    pub fn effective_max_dma_maps(&self) -> u64 {
        self.max_dma_maps.unwrap_or(DEFAULT_MAX_DMA_MAPS)
    }

    /// `pgsizes`, or the spec default 4096 ([`DEFAULT_PGSIZES`]).
    pub fn effective_pgsizes(&self) -> u64 {
        self.pgsizes.unwrap_or(DEFAULT_PGSIZES)
    }

    /// `write_multiple`, or the spec default false.
    pub fn effective_write_multiple(&self) -> bool {
        self.write_multiple.unwrap_or(false)
    }

    /// `twin_socket.supported`, or the spec default false.
    pub fn effective_twin_socket(&self) -> bool {
        self.twin_socket.and_then(|t| t.supported).unwrap_or(false)
    }

    /// The members of one object that were not turned into fields.
    pub fn unknown_in(&self, scope: Scope) -> impl Iterator<Item = &UnknownKey<'a>> {
        self.unknown.iter().filter(move |u| u.scope == scope)
    }

    /// The known members whose value had the wrong type.
    pub fn ill_typed(&self) -> impl Iterator<Item = &UnknownKey<'a>> {
        self.unknown.iter().filter(|u| u.ill_typed)
    }

    /// Writes the capabilities as compact JSON, without a NUL; returns the length.
    ///
    /// The text is `{"capabilities":{…}}`. Known members come in this fixed order, each only when `Some`:
    /// `max_msg_fds`, `max_data_xfer_size`, `max_dma_maps`, `pgsizes`, `write_multiple`,
    /// `migration {pgsize, max_bitmap_size}`, `twin_socket {supported, fd_index}` (so libvfio-user's reply
    /// comes out byte for byte). Then each object's [`unknown`](Self::unknown) members, in their stored
    /// order, raw as stored: they must be valid JSON for the result to be. The `migration` and
    /// `twin_socket` objects are also written when only unknown members are in them; the `capabilities`
    /// object is left out when an ill-typed top-level `capabilities` member stands in its place.
    ///
    /// Parsing the output gives back an equal value when this one has no duplicate count, no ill-typed
    /// member whose field is also set, and its unknown members in the order they are written: those of
    /// `migration`, then `twin_socket`, then `capabilities`, then the top level (as any value parsed from
    /// this emitter's output has).
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let mut w = Out { buf: out, len: 0 };
        self.write(&mut w);
        if w.len > w.buf.len() {
            return Err(EncodeError::BufferTooShort {
                need: w.len,
                have: w.buf.len(),
            });
        }
        Ok(w.len)
    }

    /// The number of bytes [`emit`](Self::emit) writes.
    pub fn emitted_len(&self) -> usize {
        let mut w = Out {
            buf: &mut [],
            len: 0,
        };
        self.write(&mut w);
        w.len
    }

    fn write(&self, w: &mut Out<'_>) {
        w.put(b"{");
        let mut top = Members::default();
        let caps_ill_typed = self
            .unknown_in(Scope::TopLevel)
            .any(|u| u.ill_typed && u.key_eq("capabilities"));
        if !caps_ill_typed {
            top.key(w, "capabilities");
            w.put(b"{");
            let mut m = Members::default();
            m.uint(w, "max_msg_fds", self.max_msg_fds);
            m.uint(w, "max_data_xfer_size", self.max_data_xfer_size);
            m.uint(w, "max_dma_maps", self.max_dma_maps);
            m.uint(w, "pgsizes", self.pgsizes);
            m.boolean(w, "write_multiple", self.write_multiple);
            if self.migration.is_some() || self.unknown_in(Scope::Migration).next().is_some() {
                let mig = self.migration.unwrap_or_default();
                m.key(w, "migration");
                w.put(b"{");
                let mut n = Members::default();
                n.uint(w, "pgsize", mig.pgsize);
                n.uint(w, "max_bitmap_size", mig.max_bitmap_size);
                self.write_unknown(w, &mut n, Scope::Migration);
                w.put(b"}");
            }
            if self.twin_socket.is_some() || self.unknown_in(Scope::TwinSocket).next().is_some() {
                let twin = self.twin_socket.unwrap_or_default();
                m.key(w, "twin_socket");
                w.put(b"{");
                let mut n = Members::default();
                n.boolean(w, "supported", twin.supported);
                n.uint(w, "fd_index", twin.fd_index);
                self.write_unknown(w, &mut n, Scope::TwinSocket);
                w.put(b"}");
            }
            self.write_unknown(w, &mut m, Scope::Capabilities);
            w.put(b"}");
        }
        self.write_unknown(w, &mut top, Scope::TopLevel);
        w.put(b"}");
    }

    fn write_unknown(&self, w: &mut Out<'_>, m: &mut Members, scope: Scope) {
        for u in self.unknown_in(scope) {
            m.key(w, u.key);
            w.put(u.value.as_bytes());
        }
    }

    /// Sets a known unsigned member.
    fn set_uint(&mut self, k: Known, n: u64) {
        match k {
            Known::MaxMsgFds => self.max_msg_fds = Some(n),
            Known::MaxDataXferSize => self.max_data_xfer_size = Some(n),
            Known::MaxDmaMaps => self.max_dma_maps = Some(n),
            Known::Pgsizes => self.pgsizes = Some(n),
            Known::FdIndex => self.twin_socket.get_or_insert_default().fd_index = Some(n),
            Known::Pgsize => self.migration.get_or_insert_default().pgsize = Some(n),
            Known::MaxBitmapSize => {
                self.migration.get_or_insert_default().max_bitmap_size = Some(n)
            }
            _ => {}
        }
    }

    /// Sets a known boolean member.
    fn set_bool(&mut self, k: Known, b: bool) {
        match k {
            Known::WriteMultiple => self.write_multiple = Some(b),
            Known::Supported => self.twin_socket.get_or_insert_default().supported = Some(b),
            _ => {}
        }
    }

    /// Forgets all that an earlier member with key `k` set, before a duplicate replaces it.
    #[cold]
    #[inline(never)]
    fn forget(&mut self, k: Known) {
        let scope = k.scope();
        self.unknown
            .retain(|u| !(u.scope == scope && u.key_eq(k.name())));
        match k {
            Known::Capabilities => {
                let unknown = core::mem::take(&mut self.unknown);
                let duplicate_keys = self.duplicate_keys;
                *self = Capabilities {
                    unknown,
                    duplicate_keys,
                    ..Capabilities::default()
                };
                self.unknown.retain(|u| u.scope == Scope::TopLevel);
            }
            Known::MaxMsgFds => self.max_msg_fds = None,
            Known::MaxDataXferSize => self.max_data_xfer_size = None,
            Known::MaxDmaMaps => self.max_dma_maps = None,
            Known::Pgsizes => self.pgsizes = None,
            Known::WriteMultiple => self.write_multiple = None,
            Known::Migration => {
                self.migration = None;
                self.unknown.retain(|u| u.scope != Scope::Migration);
            }
            Known::TwinSocket => {
                self.twin_socket = None;
                self.unknown.retain(|u| u.scope != Scope::TwinSocket);
            }
            Known::Supported => {
                if let Some(t) = &mut self.twin_socket {
                    t.supported = None;
                }
            }
            Known::FdIndex => {
                if let Some(t) = &mut self.twin_socket {
                    t.fd_index = None;
                }
            }
            Known::Pgsize => {
                if let Some(m) = &mut self.migration {
                    m.pgsize = None;
                }
            }
            Known::MaxBitmapSize => {
                if let Some(m) = &mut self.migration {
                    m.max_bitmap_size = None;
                }
            }
        }
    }

    /// Keeps an unknown or ill-typed member; a repeated unknown key replaces the earlier value in place.
    #[inline(never)]
    fn record(&mut self, u: UnknownKey<'a>, at_key: &[u8]) -> Result<(), nom::Err<Fail>> {
        if !u.ill_typed
            && let Some(old) = self
                .unknown
                .iter_mut()
                .find(|o| o.scope == u.scope && keys_equal(o.key, u.key))
        {
            *old = u;
            self.duplicate_keys = self.duplicate_keys.saturating_add(1);
            return Ok(());
        }
        self.unknown.push(u).map_err(|_| {
            nom::Err::Failure(Fail {
                left: at_key.len(),
                rule: &Rule::JsonTooLarge {
                    what: "more than 16 unknown keys",
                },
            })
        })
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
    parse_general(json, &mut caps).map(|()| caps)
}

/// Parses `json` into `caps`, which is empty.
fn parse_into<'a>(json: &'a [u8], caps: &mut Capabilities<'a>) -> Result<(), (usize, Rule)> {
    if fast_document(json, caps).is_some() {
        return Ok(());
    }
    // Start again from nothing: the fast path may have set some fields before it gave up.
    *caps = Capabilities::default();
    parse_general(json, caps)
}

/// The general parser: any JSON, into `caps`, which is empty.
fn parse_general<'a>(json: &'a [u8], caps: &mut Capabilities<'a>) -> Result<(), (usize, Rule)> {
    match (Doc { caps }).document(json) {
        Ok(()) => Ok(()),
        Err(nom::Err::Error(f) | nom::Err::Failure(f)) => {
            Err((json.len().saturating_sub(f.left), *f.rule))
        }
        Err(nom::Err::Incomplete(_)) => Err((json.len(), Rule::JsonSyntax { reason: EOF })),
    }
}

// ---------------------------------------------------------------------------------------------------
// The fast path: the text every known sender writes, in one pass without nom.

/// Parses the common shape of capabilities text in one pass: compact (no whitespace), every key known
/// and written without escapes, no key repeated, every value of its key's type (an unsigned integer
/// without sign, fraction or exponent, `true` or `false`, or for `migration` and `twin_socket` a
/// non-empty object of such members). That is what libvfio-user, QEMU and the `vfio_user` crate send.
/// Gives up (`None`) at the first thing outside that shape, and the general parser then reads the text
/// from the start; where the fast path succeeds, the general parser gives the same value (a test and
/// the `version_caps` fuzz target check this).
#[inline]
fn fast_document<'a>(json: &'a [u8], caps: &mut Capabilities<'a>) -> Option<()> {
    let i = json.strip_prefix(b"{\"capabilities\":{")?;
    let i = fast_object(caps, Scope::Capabilities, i)?;
    (i == b"}").then_some(())
}

/// The members of the known object `scope` at `i` (just after its `{`), stored; returns what follows
/// its `}`. Only `capabilities` holds objects (`migration` and `twin_socket`, whose members are all
/// scalars), so nesting stops at two levels: the inner objects go through a copy of this function
/// in which objects are refused, which keeps both inlined (a function cannot inline itself).
#[inline(always)]
fn fast_object<'a>(caps: &mut Capabilities<'_>, scope: Scope, i: &'a [u8]) -> Option<&'a [u8]> {
    fast_members(caps, scope, i, |caps, k, inner, rest| {
        match k {
            Known::Migration => caps.migration = Some(Migration::default()),
            _ => caps.twin_socket = Some(TwinSocket::default()),
        }
        let i = rest.strip_prefix(b"{")?;
        fast_members(caps, inner, i, |_, _, _, _| None)
    })
}

/// The member loop of [`fast_object`]: each key once, each scalar stored, each object value handed to
/// `object(caps, key, its scope, text after the colon)`, which returns what follows the object.
#[inline(always)]
fn fast_members<'a>(
    caps: &mut Capabilities<'_>,
    scope: Scope,
    mut i: &'a [u8],
    mut object: impl FnMut(&mut Capabilities<'_>, Known, Scope, &'a [u8]) -> Option<&'a [u8]>,
) -> Option<&'a [u8]> {
    let mut seen = 0u16;
    loop {
        let (k, rest) = fast_key(scope, i)?;
        if seen & k.bit() != 0 {
            return None;
        }
        seen |= k.bit();
        let rest = match k.kind() {
            Kind::Object(inner) => object(caps, k, inner, rest)?,
            _ => fast_scalar(caps, k, rest)?,
        };
        match rest.split_first()? {
            (b',', r) => i = r,
            (b'}', r) => return Some(r),
            _ => return None,
        }
    }
}

/// The known key of `scope` at `i` (at its opening quote), with its closing quote and the colon:
/// the key and what follows the colon.
#[inline(always)]
fn fast_key(scope: Scope, i: &[u8]) -> Option<(Known, &[u8])> {
    // Each name as a literal with its closing quote and colon, so that each comparison is a few
    // loads of known length rather than a call to `memcmp`.
    macro_rules! keys {
        ($i:expr; $($lit:literal => $k:expr),+) => {{
            $(if let Some(rest) = $i.strip_prefix($lit) {
                debug_assert_eq!(&$lit[..$lit.len() - 2], $k.name().as_bytes());
                return Some(($k, rest));
            })+
            return None;
        }};
    }
    let i = i.strip_prefix(b"\"")?;
    match (scope, i.first()?) {
        (Scope::Capabilities, b'm') => keys!(i;
            b"max_msg_fds\":" => Known::MaxMsgFds,
            b"max_data_xfer_size\":" => Known::MaxDataXferSize,
            b"max_dma_maps\":" => Known::MaxDmaMaps,
            b"migration\":" => Known::Migration),
        (Scope::Capabilities, b'p') => keys!(i; b"pgsizes\":" => Known::Pgsizes),
        (Scope::Capabilities, b'w') => keys!(i; b"write_multiple\":" => Known::WriteMultiple),
        (Scope::Capabilities, b't') => keys!(i; b"twin_socket\":" => Known::TwinSocket),
        (Scope::TwinSocket, _) => keys!(i;
            b"supported\":" => Known::Supported,
            b"fd_index\":" => Known::FdIndex),
        (Scope::Migration, _) => keys!(i;
            b"pgsize\":" => Known::Pgsize,
            b"max_bitmap_size\":" => Known::MaxBitmapSize),
        _ => None,
    }
}

/// The scalar value of member `k` at `i`, stored; returns what follows it.
#[inline(always)]
fn fast_scalar<'a>(caps: &mut Capabilities<'_>, k: Known, i: &'a [u8]) -> Option<&'a [u8]> {
    match k.kind() {
        Kind::Uint => {
            let (rest, n) = plain_uint(i)?;
            caps.set_uint(k, n);
            Some(rest)
        }
        Kind::Bool => {
            let (rest, b) = match i.strip_prefix(b"true") {
                Some(rest) => (rest, true),
                None => (i.strip_prefix(b"false")?, false),
            };
            caps.set_bool(k, b);
            Some(rest)
        }
        Kind::Object(_) => None,
    }
}

// ---------------------------------------------------------------------------------------------------
// Known keys.

/// The known members, in every object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Known {
    Capabilities,
    MaxMsgFds,
    MaxDataXferSize,
    MaxDmaMaps,
    Pgsizes,
    WriteMultiple,
    Migration,
    TwinSocket,
    Supported,
    FdIndex,
    Pgsize,
    MaxBitmapSize,
}

/// The JSON type a known member must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Uint,
    Bool,
    Object(Scope),
}

impl Known {
    fn name(self) -> &'static str {
        match self {
            Known::Capabilities => "capabilities",
            Known::MaxMsgFds => "max_msg_fds",
            Known::MaxDataXferSize => "max_data_xfer_size",
            Known::MaxDmaMaps => "max_dma_maps",
            Known::Pgsizes => "pgsizes",
            Known::WriteMultiple => "write_multiple",
            Known::Migration => "migration",
            Known::TwinSocket => "twin_socket",
            Known::Supported => "supported",
            Known::FdIndex => "fd_index",
            Known::Pgsize => "pgsize",
            Known::MaxBitmapSize => "max_bitmap_size",
        }
    }

    fn kind(self) -> Kind {
        match self {
            Known::Capabilities => Kind::Object(Scope::Capabilities),
            Known::Migration => Kind::Object(Scope::Migration),
            Known::TwinSocket => Kind::Object(Scope::TwinSocket),
            Known::WriteMultiple | Known::Supported => Kind::Bool,
            _ => Kind::Uint,
        }
    }

    /// The object this key belongs to.
    fn scope(self) -> Scope {
        match self {
            Known::Capabilities => Scope::TopLevel,
            Known::Supported | Known::FdIndex => Scope::TwinSocket,
            Known::Pgsize | Known::MaxBitmapSize => Scope::Migration,
            _ => Scope::Capabilities,
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }

    /// The known key `key` of `scope`, if it is one.
    fn lookup(scope: Scope, key: Key<'_>) -> Option<Known> {
        if key.escaped {
            let raw = core::str::from_utf8(key.body).ok()?;
            return scope
                .known()
                .iter()
                .copied()
                .find(|k| key_is(raw, k.name()));
        }
        Some(match (scope, key.body) {
            (Scope::TopLevel, b"capabilities") => Known::Capabilities,
            (Scope::Capabilities, b"max_msg_fds") => Known::MaxMsgFds,
            (Scope::Capabilities, b"max_data_xfer_size") => Known::MaxDataXferSize,
            (Scope::Capabilities, b"max_dma_maps") => Known::MaxDmaMaps,
            (Scope::Capabilities, b"pgsizes") => Known::Pgsizes,
            (Scope::Capabilities, b"write_multiple") => Known::WriteMultiple,
            (Scope::Capabilities, b"migration") => Known::Migration,
            (Scope::Capabilities, b"twin_socket") => Known::TwinSocket,
            (Scope::TwinSocket, b"supported") => Known::Supported,
            (Scope::TwinSocket, b"fd_index") => Known::FdIndex,
            (Scope::Migration, b"pgsize") => Known::Pgsize,
            (Scope::Migration, b"max_bitmap_size") => Known::MaxBitmapSize,
            _ => return None,
        })
    }
}

/// Whether the raw key `raw`, unescaped, is `name`.
fn key_is(raw: &str, name: &str) -> bool {
    if raw.contains('\\') {
        Units::new(raw).eq(name.encode_utf16())
    } else {
        raw == name
    }
}

/// Whether two raw keys are the same once unescaped (the same UTF-16 code units, as JSON defines).
fn keys_equal(a: &str, b: &str) -> bool {
    // Keys are short: a byte loop beats a call to `memcmp`.
    let same = a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y);
    same || ((a.contains('\\') || b.contains('\\')) && Units::new(a).eq(Units::new(b)))
}

/// The UTF-16 code units of a string body the lexer accepted, escapes decoded.
#[derive(Clone)]
struct Units<'a> {
    chars: core::str::Chars<'a>,
    pending: Option<u16>,
}

impl<'a> Units<'a> {
    fn new(raw: &'a str) -> Self {
        Units {
            chars: raw.chars(),
            pending: None,
        }
    }

    /// Decoded characters; a lone surrogate becomes U+FFFD.
    fn chars(self) -> impl Iterator<Item = char> + use<'a> {
        char::decode_utf16(self).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
    }
}

impl Iterator for Units<'_> {
    type Item = u16;

    fn next(&mut self) -> Option<u16> {
        if let Some(unit) = self.pending.take() {
            return Some(unit);
        }
        let c = self.chars.next()?;
        let c = if c == '\\' {
            match self.chars.next() {
                Some('b') => '\u{8}',
                Some('f') => '\u{c}',
                Some('n') => '\n',
                Some('r') => '\r',
                Some('t') => '\t',
                Some('u') => {
                    let hex = (0..4).try_fold(0u16, |acc, _| {
                        Some(acc << 4 | self.chars.next()?.to_digit(16)? as u16)
                    });
                    return Some(hex.unwrap_or(0xfffd));
                }
                Some(other) => other, // '"', '\\', '/'
                None => char::REPLACEMENT_CHARACTER,
            }
        } else {
            c
        };
        let mut buf = [0u16; 2];
        let units = c.encode_utf16(&mut buf);
        if let [first, second] = *units {
            self.pending = Some(second);
            return Some(first);
        }
        units.first().copied()
    }
}

// ---------------------------------------------------------------------------------------------------
// The parser: recursive descent over nom's complete byte-slice lexers. Non-ASCII bytes may only appear
// in strings, where the lexer checks they are UTF-8, so the keys and values it returns are `&str`.
// Every error is a `Failure` that records how much input was left, which gives the offset.

const EOF: &str = "unexpected end of input";
const EOF_RULE: Rule = Rule::JsonSyntax { reason: EOF };

/// A `&'static` [`Rule::JsonSyntax`] with this reason.
macro_rules! syn {
    ($reason:literal) => {
        &Rule::JsonSyntax { reason: $reason }
    };
}

/// A parse failure: the input left where it happened, and the rule (a reference, to keep the
/// parser's results small).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fail {
    left: usize,
    rule: &'static Rule,
}

impl<'a> ParseError<&'a [u8]> for Fail {
    fn from_error_kind(input: &'a [u8], _: ErrorKind) -> Self {
        Fail {
            left: input.len(),
            rule: syn!("unexpected character"),
        }
    }

    fn append(_: &'a [u8], _: ErrorKind, other: Self) -> Self {
        other
    }
}

type PResult<'a, T> = IResult<&'a [u8], T, Fail>;

/// An error at `at`.
fn fail<T>(at: &[u8], rule: &'static Rule) -> PResult<'static, T> {
    Err(nom::Err::Failure(Fail {
        left: at.len(),
        rule,
    }))
}

/// An error at `at`, or [`EOF`] when the text ended there.
fn fail_or_eof<T>(at: &[u8], rule: &'static Rule) -> PResult<'static, T> {
    fail(at, if at.is_empty() { &EOF_RULE } else { rule })
}

/// The bytes `start` lost to get to `rest`.
#[inline]
fn consumed<'a>(start: &'a [u8], rest: &[u8]) -> &'a [u8] {
    start
        .get(..start.len().saturating_sub(rest.len()))
        .unwrap_or(&[])
}

/// The bytes after the first.
#[inline]
fn skip1(i: &[u8]) -> &[u8] {
    i.get(1..).unwrap_or(&[])
}

/// Skips JSON whitespace (space, tab, LF, CR: exactly nom's multispace).
#[inline]
fn ws(i: &[u8]) -> &[u8] {
    match i.first() {
        Some(b' ' | b'\t' | b'\n' | b'\r') => multispace0::<_, Fail>(i).map_or(i, |(rest, _)| rest),
        _ => i,
    }
}

/// Consumes `c`, or fails with `reason`.
#[inline]
fn expect<'a>(i: &'a [u8], c: u8, rule: &'static Rule) -> PResult<'a, ()> {
    match i.split_first() {
        Some((&b, rest)) if b == c => Ok((rest, ())),
        _ => fail_or_eof(i, rule),
    }
}

/// Enters an array or object at `i`, one level below `depth`.
fn open(i: &[u8], depth: usize) -> Result<usize, nom::Err<Fail>> {
    if depth >= MAX_DEPTH {
        return fail::<()>(
            i,
            &Rule::JsonTooLarge {
                what: "nesting deeper than 16",
            },
        )
        .map(|_| 0);
    }
    Ok(depth + 1)
}

/// Any JSON value at `i` (whitespace already skipped), inside `depth` containers; returns its raw text.
fn value(i: &[u8], depth: usize) -> PResult<'_, &[u8]> {
    match i.first() {
        Some(b'{') => object(i, depth, |_, _, v, d| value(v, d).map(|(rest, _)| rest)),
        Some(b'[') => array(i, depth),
        Some(b'"') => string(i).map(|(rest, _)| (rest, consumed(i, rest))),
        Some(b't' | b'f' | b'n') => literal(i),
        Some(b'-' | b'0'..=b'9') => number(i),
        _ => fail_or_eof(i, syn!("expected a value")),
    }
}

/// A key as the lexer found it: the text between the quotes, and whether it has escapes.
#[derive(Clone, Copy)]
struct Key<'a> {
    body: &'a [u8],
    escaped: bool,
}

/// An object at `i`; `member(key, at_key, at_value, depth)` parses each member's value and returns
/// what follows it. Returns the object's raw text.
fn object<'a, F>(i: &'a [u8], depth: usize, mut member: F) -> PResult<'a, &'a [u8]>
where
    F: FnMut(Key<'a>, &'a [u8], &'a [u8], usize) -> Result<&'a [u8], nom::Err<Fail>>,
{
    let inner = open(i, depth)?;
    let (r, ()) = expect(i, b'{', syn!("expected an object"))?;
    let mut r = ws(r);
    if r.first() == Some(&b'}') {
        let rest = skip1(r);
        return Ok((rest, consumed(i, rest)));
    }
    loop {
        if r.first() != Some(&b'"') {
            return fail_or_eof(r, syn!("expected a string key"));
        }
        let at_key = r;
        let (after, (body, escaped)) = string(r)?;
        let (after, ()) = expect(ws(after), b':', syn!("expected ':' after a key"))?;
        let after = ws(member(Key { body, escaped }, at_key, ws(after), inner)?);
        match after.first() {
            Some(b',') => r = ws(skip1(after)),
            Some(b'}') => {
                let rest = skip1(after);
                return Ok((rest, consumed(i, rest)));
            }
            _ => return fail_or_eof(after, syn!("expected ',' or '}' after a member")),
        }
    }
}

/// An array at `i`; returns its raw text.
fn array(i: &[u8], depth: usize) -> PResult<'_, &[u8]> {
    let inner = open(i, depth)?;
    let (r, ()) = expect(i, b'[', syn!("expected an array"))?;
    let mut r = ws(r);
    if r.first() == Some(&b']') {
        let rest = skip1(r);
        return Ok((rest, consumed(i, rest)));
    }
    loop {
        let (after, _) = value(r, inner)?;
        let after = ws(after);
        match after.first() {
            Some(b',') => r = ws(skip1(after)),
            Some(b']') => {
                let rest = skip1(after);
                return Ok((rest, consumed(i, rest)));
            }
            _ => return fail_or_eof(after, syn!("expected ',' or ']' after an element")),
        }
    }
}

/// The bytes a string holds as they are: printable ASCII but `"` and `\`.
static PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0x20;
    while b < 0x80 {
        t[b] = b != b'"' as usize && b != b'\\' as usize;
        b += 1;
    }
    t
};

/// How many bytes at the start of `s` are plain (see [`PLAIN`]).
///
/// Eight bytes at a time: in a little-endian word, `(x - 0x01…01 * n) & !x & 0x80…80` marks the bytes
/// below `n` (exactly for the lowest one; a borrow only reaches bytes above a marked one), so XOR with
/// `"` and `\` and a test below 1 find those, a test below 0x20 finds control characters, and the top
/// bit finds non-ASCII. The lowest mark is the first byte that is not plain.
#[inline(always)]
fn plain_len(s: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    #[inline(always)]
    fn below(x: u64, n: u8) -> u64 {
        x.wrapping_sub(ONES * u64::from(n)) & !x
    }
    let mut chunks = s.chunks_exact(8);
    let mut n = 0;
    for chunk in &mut chunks {
        let w = u64::from_le_bytes(<[u8; 8]>::try_from(chunk).unwrap_or([0; 8]));
        let marks = (below(w ^ (ONES * u64::from(b'"')), 1)
            | below(w ^ (ONES * u64::from(b'\\')), 1)
            | below(w, 0x20)
            | w)
            & HIGH;
        if marks != 0 {
            return n + (marks.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    n + chunks
        .remainder()
        .iter()
        .take_while(|&&b| PLAIN[usize::from(b)])
        .count()
}

/// `s` split after its plain bytes.
#[inline(always)]
fn split_plain(s: &[u8]) -> (&[u8], &[u8]) {
    s.split_at(plain_len(s).min(s.len()))
}

/// A string at `i` (at its opening quote); returns the raw text between the quotes and whether it has
/// escapes.
#[inline(always)]
fn string(i: &[u8]) -> PResult<'_, (&[u8], bool)> {
    let (body, ()) = expect(i, b'"', syn!("expected a string"))?;
    // The common case, plain text up to the closing quote, inline; the rest out of line.
    let (plain, rest) = split_plain(body);
    match rest.split_first() {
        Some((b'"', after)) => Ok((after, (plain, false))),
        _ => string_rest(body, rest),
    }
}

/// The rest of the string whose text starts at `body`, from `r` (at a byte that is not plain).
#[inline(never)]
fn string_rest<'a>(body: &'a [u8], mut r: &'a [u8]) -> PResult<'a, (&'a [u8], bool)> {
    let mut escaped = false;
    loop {
        match r.first() {
            Some(b'"') => return Ok((skip1(r), (consumed(body, r), escaped))),
            Some(b'\\') => {
                escaped = true;
                r = escape(r)?.0;
            }
            Some(0x80..) => r = utf8(r)?.0,
            Some(_) => return fail(r, syn!("control character in string")),
            None => return fail(r, syn!("unterminated string")),
        }
        r = split_plain(r).1;
    }
}

/// A run of non-ASCII bytes in a string at `i`, which must be UTF-8 (an ASCII byte always starts a
/// character, so the run can be checked on its own).
fn utf8(i: &[u8]) -> PResult<'_, ()> {
    let (rest, run) = take_while::<_, _, Fail>(|b: u8| b >= 0x80)(i)?;
    match core::str::from_utf8(run) {
        Ok(_) => Ok((rest, ())),
        Err(e) => fail(i.get(e.valid_up_to()..).unwrap_or(&[]), syn!("not UTF-8")),
    }
}

/// One escape at `i` (at its backslash).
fn escape(i: &[u8]) -> PResult<'_, ()> {
    let (r, _) = tag::<_, _, Fail>(&b"\\"[..])(i)?;
    if r.is_empty() {
        return fail(r, syn!("unterminated string"));
    }
    if let Ok((rest, _)) = one_of::<_, _, Fail>("\"\\/bfnrt")(r) {
        return Ok((rest, ()));
    }
    let Ok((hex, _)) = tag::<_, _, Fail>(&b"u"[..])(r) else {
        return fail(i, syn!("invalid escape"));
    };
    let (rest, digits) = take_while_m_n::<_, _, Fail>(0, 4, |b: u8| b.is_ascii_hexdigit())(hex)?;
    if digits.len() == 4 {
        Ok((rest, ()))
    } else if rest.is_empty() {
        fail(rest, syn!("unterminated string"))
    } else {
        fail(i, syn!("invalid \\u escape (needs 4 hex digits)"))
    }
}

/// `true`, `false` or `null` at `i`; returns its text.
fn literal(i: &[u8]) -> PResult<'_, &[u8]> {
    for word in [&b"true"[..], b"false", b"null"] {
        if let Ok(ok) = tag::<_, _, Fail>(word)(i) {
            return Ok(ok);
        }
        if word.starts_with(i) {
            return fail(&[], &EOF_RULE);
        }
    }
    fail(i, syn!("invalid literal (expected true, false or null)"))
}

/// A number at `i`; returns its text.
fn number(i: &[u8]) -> PResult<'_, &[u8]> {
    fn digits(i: &[u8]) -> PResult<'_, &[u8]> {
        digit1::<_, Fail>(i).or_else(|_| fail_or_eof(i, syn!("invalid number (expected a digit)")))
    }
    let at_int = i.strip_prefix(b"-").unwrap_or(i);
    let (mut r, int) = digits(at_int)?;
    if int.len() > 1 && int.first() == Some(&b'0') {
        return fail(at_int, syn!("leading zero in number"));
    }
    if let Some(frac) = r.strip_prefix(b".") {
        r = digits(frac)?.0;
    }
    if let Some(exp) = r.strip_prefix(b"e").or_else(|| r.strip_prefix(b"E")) {
        let exp = exp
            .strip_prefix(b"+")
            .or_else(|| exp.strip_prefix(b"-"))
            .unwrap_or(exp);
        r = digits(exp)?.0;
    }
    Ok((r, consumed(i, r)))
}

/// A JSON unsigned integer: digits only (no sign, fraction or exponent) that fit a `u64`. The lexer
/// has already ruled out leading zeros.
fn uint(raw: &[u8]) -> Option<u64> {
    if raw.is_empty() {
        return None;
    }
    raw.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// An unsigned integer at `i` that ends the number (no fraction or exponent follows), has no leading
/// zero and fits a `u64`, in one pass: what follows it and its value. `None` for anything else, which
/// the general path then lexes (and reports, or keeps as ill-typed).
#[inline(always)]
fn plain_uint(i: &[u8]) -> Option<(&[u8], u64)> {
    // Up to 19 digits cannot overflow a u64: accumulate them as they are scanned.
    let mut n = 0u64;
    let mut len = 0usize;
    for &b in i.iter().take(19) {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        n = n * 10 + u64::from(d);
        len += 1;
    }
    let (digits, mut rest) = i.split_at_checked(len)?;
    if len == 0 || (len > 1 && digits.first() == Some(&b'0')) {
        return None;
    }
    if rest.first().is_some_and(u8::is_ascii_digit) {
        // 20 digits or more: the checked path.
        let more = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let (all, after) = i.split_at_checked(len + more)?;
        n = uint(all)?;
        rest = after;
    }
    if matches!(rest.first(), Some(b'.' | b'e' | b'E')) {
        return None;
    }
    Some((rest, n))
}

/// Parsing state: the value being built.
struct Doc<'a, 'c> {
    caps: &'c mut Capabilities<'a>,
}

/// `bytes` (a key or a value the lexer accepted, so UTF-8) as a `&str`.
fn text<'a>(bytes: &'a [u8], at: &[u8]) -> Result<&'a str, nom::Err<Fail>> {
    core::str::from_utf8(bytes).or_else(|_| fail(at, syn!("not UTF-8")).map(|(_, s)| s))
}

impl<'a> Doc<'a, '_> {
    /// The whole text: one object between optional whitespace.
    fn document(&mut self, json: &'a [u8]) -> Result<(), nom::Err<Fail>> {
        let i = ws(json);
        if i.first() != Some(&b'{') {
            return fail_or_eof::<()>(i, syn!("top level is not an object")).map(|_| ());
        }
        let mut seen = 0u16;
        let (rest, _) = object(i, 0, |key, at_key, v, depth| {
            self.member(Scope::TopLevel, &mut seen, key, at_key, v, depth)
        })?;
        let rest = ws(rest);
        if !rest.is_empty() {
            return fail::<()>(rest, syn!("trailing characters after the object")).map(|_| ());
        }
        Ok(())
    }

    /// One member of the object `scope` (whose keys so far are in `seen`): parses the value at `v` and
    /// stores it. Returns what follows the value.
    fn member(
        &mut self,
        scope: Scope,
        seen: &mut u16,
        key: Key<'a>,
        at_key: &'a [u8],
        v: &'a [u8],
        depth: usize,
    ) -> Result<&'a [u8], nom::Err<Fail>> {
        let Some(k) = Known::lookup(scope, key) else {
            let (rest, raw) = value(v, depth)?;
            let u = UnknownKey {
                scope,
                key: text(key.body, at_key)?,
                value: text(raw, v)?,
                ill_typed: false,
            };
            self.caps.record(u, at_key)?;
            return Ok(rest);
        };
        if *seen & k.bit() != 0 {
            self.caps.duplicate_keys = self.caps.duplicate_keys.saturating_add(1);
            self.caps.forget(k);
        }
        *seen |= k.bit();
        let kind = k.kind();
        if let Kind::Object(inner) = kind
            && v.first() == Some(&b'{')
        {
            match k {
                Known::Migration => self.caps.migration = Some(Migration::default()),
                Known::TwinSocket => self.caps.twin_socket = Some(TwinSocket::default()),
                _ => {}
            }
            let mut inner_seen = 0u16;
            let (rest, _) = object(v, depth, |key, at_key, v, d| {
                self.member(inner, &mut inner_seen, key, at_key, v, d)
            })?;
            return Ok(rest);
        }
        // The common cases, an unsigned integer or a boolean where one belongs, in one pass.
        match kind {
            Kind::Uint => {
                if let Some((rest, n)) = plain_uint(v) {
                    self.caps.set_uint(k, n);
                    return Ok(rest);
                }
            }
            Kind::Bool => {
                let (word, b) = match v.first() {
                    Some(b't') => (&b"true"[..], true),
                    _ => (&b"false"[..], false),
                };
                if let Some(rest) = v.strip_prefix(word)
                    && !rest.first().is_some_and(u8::is_ascii_alphanumeric)
                {
                    self.caps.set_bool(k, b);
                    return Ok(rest);
                }
            }
            Kind::Object(_) => {}
        }
        let (rest, raw) = value(v, depth)?;
        let typed = match (kind, raw) {
            (Kind::Bool, b"true" | b"false") => {
                self.caps.set_bool(k, raw == b"true");
                true
            }
            (Kind::Uint, _) => match uint(raw) {
                Some(n) => {
                    self.caps.set_uint(k, n);
                    true
                }
                None => false,
            },
            _ => false,
        };
        if !typed {
            let u = UnknownKey {
                scope,
                key: text(key.body, at_key)?,
                value: text(raw, v)?,
                ill_typed: true,
            };
            self.caps.record(u, at_key)?;
        }
        Ok(rest)
    }
}

// ---------------------------------------------------------------------------------------------------
// The emitter.

/// Output that counts what it could not write, so one walk gives both the bytes and the length.
struct Out<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl Out<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.len.saturating_add(bytes.len());
        if let Some(dst) = self.buf.get_mut(self.len..end) {
            dst.copy_from_slice(bytes);
        }
        self.len = end;
    }

    fn put_u64(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        loop {
            at -= 1;
            if let Some(d) = digits.get_mut(at) {
                *d = b'0' + (n % 10) as u8;
            }
            n /= 10;
            if n == 0 || at == 0 {
                break;
            }
        }
        self.put(digits.get(at..).unwrap_or(&[]));
    }
}

/// Writes the members of one object, with commas between them.
#[derive(Default)]
struct Members {
    any: bool,
}

impl Members {
    fn key(&mut self, w: &mut Out<'_>, raw: &str) {
        if self.any {
            w.put(b",");
        }
        self.any = true;
        w.put(b"\"");
        w.put(raw.as_bytes());
        w.put(b"\":");
    }

    fn uint(&mut self, w: &mut Out<'_>, name: &str, v: Option<u64>) {
        if let Some(n) = v {
            self.key(w, name);
            w.put_u64(n);
        }
    }

    fn boolean(&mut self, w: &mut Out<'_>, name: &str, v: Option<bool>) {
        if let Some(b) = v {
            self.key(w, name);
            w.put(if b { b"true" } else { b"false" });
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::string::String;
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;

    /// The fast path takes the texts real senders write and gives up on everything else, and either way
    /// the result is the general parser's.
    #[test]
    fn fast_path_takes_what_senders_write() {
        let mut scratch = Capabilities::default();
        for (text, fast) in [
            (LVU_REPLY, true),
            (QEMU_REQUEST, true),
            (&br#"{"capabilities":{"max_msg_fds":1}}"#[..], true),
            (
                br#"{"capabilities":{"write_multiple":false,"pgsizes":4096}}"#,
                true,
            ),
            (
                br#"{"capabilities":{"max_msg_fds":1,"max_msg_fds":2}}"#,
                false,
            ),
            (br#"{"capabilities":{"max_msg_fds": 1}}"#, false),
            (br#"{"capabilities":{"max_msg_fds":01}}"#, false),
            (br#"{"capabilities":{"max_msg_fds":1.0}}"#, false),
            (
                br#"{"capabilities":{"max_msg_fds":18446744073709551616}}"#,
                false,
            ),
            (
                br#"{"capabilities":{"max_msg_fds":18446744073709551615}}"#,
                true,
            ),
            (br#"{"capabilities":{"vendor":1}}"#, false),
            (br#"{"capabilities":{"migration":{}}}"#, false),
            (
                br#"{"capabilities":{"twin_socket":{"supported":truex}}}"#,
                false,
            ),
            (br#"{"capabilities":{"max_msg_fds":1}} "#, false),
            (br#"{"capabilities":{}}"#, false),
            (br#"{"capabilities":{"max\u005fmsg_fds":1}}"#, false),
        ] {
            let took = fast_document(text, &mut scratch).is_some();
            scratch = Capabilities::default();
            assert_eq!(took, fast, "{}", String::from_utf8_lossy(text));
            assert_eq!(parse_capabilities(text), parse_capabilities_general(text));
        }
    }

    /// The word-at-a-time scan stops exactly where a byte-at-a-time scan does: every byte value at
    /// every position of a 0- to 24-byte run of plain text, so each lane of a word and the tail are
    /// each tried with each stopping byte.
    #[test]
    fn plain_len_matches_a_byte_scan() {
        let reference = |s: &[u8]| s.iter().take_while(|&&b| PLAIN[usize::from(b)]).count();
        for len in 0..=24usize {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut s: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                    s[at] = b;
                    assert_eq!(
                        plain_len(&s),
                        reference(&s),
                        "byte {b:#04x} at {at} of {len}"
                    );
                }
            }
            let plain: Vec<u8> = (0..len).map(|i| b' ' + (i % 95) as u8).collect();
            assert_eq!(plain_len(&plain), reference(&plain), "plain run of {len}");
        }
    }

    /// The one-pass integer path agrees with the general lexer on every shape of number.
    #[test]
    fn plain_uint_agrees_with_the_lexer() {
        for text in [
            "0",
            "7",
            "10",
            "01",
            "1048576",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999",
            "1234567890123456789",
            "1.5",
            "1e3",
            "1E3",
            "12,",
            "12}",
            "-1",
            "",
            "x",
        ] {
            let general = number(text.as_bytes()).ok().and_then(|(rest, raw)| {
                let ends = !matches!(rest.first(), Some(b'.' | b'e' | b'E'));
                uint(raw).filter(|_| ends).map(|n| (rest, n))
            });
            assert_eq!(plain_uint(text.as_bytes()), general, "{text:?}");
        }
    }

    /// libvfio-user's VERSION reply with migration and twin-socket on (§2.1).
    static LVU_REPLY: &[u8] = br#"{"capabilities":{"max_msg_fds":8,"max_data_xfer_size":1048576,"migration":{"pgsize":4096},"twin_socket":{"supported":true,"fd_index":0}}}"#;

    /// QEMU 10.1's VERSION request (hw/vfio-user/proxy.c member order; §2.1).
    static QEMU_REQUEST: &[u8] = br#"{"capabilities":{"migration":{"pgsize":4096,"max_bitmap_size":268435456},"max_msg_fds":16,"max_data_xfer_size":1048576,"pgsizes":4096,"max_dma_maps":65535,"write_multiple":true}}"#;

    fn parse(json: &str) -> Capabilities<'_> {
        parse_capabilities(json.as_bytes()).expect("valid capabilities")
    }

    fn err(json: &[u8]) -> (usize, Rule) {
        parse_capabilities(json).expect_err("invalid capabilities")
    }

    fn syntax(at: usize, reason: &'static str) -> (usize, Rule) {
        (at, Rule::JsonSyntax { reason })
    }

    fn emit_string(caps: &Capabilities<'_>) -> String {
        let mut buf = std::vec![0xa5u8; caps.emitted_len() + 8];
        let n = caps.emit(&mut buf).expect("emit");
        assert_eq!(n, caps.emitted_len());
        assert!(buf[n..].iter().all(|&b| b == 0xa5), "wrote past the end");
        String::from_utf8(buf[..n].to_vec()).expect("UTF-8")
    }

    fn unknown<'a>(scope: Scope, key: &'a str, value: &'a str, ill_typed: bool) -> UnknownKey<'a> {
        UnknownKey {
            scope,
            key,
            value,
            ill_typed,
        }
    }

    #[test]
    fn parse_lvu_reply() {
        let caps = parse_capabilities(LVU_REPLY).expect("lvu reply");
        let want = Capabilities {
            max_msg_fds: Some(8),
            max_data_xfer_size: Some(1048576),
            migration: Some(Migration {
                pgsize: Some(4096),
                max_bitmap_size: None,
            }),
            twin_socket: Some(TwinSocket {
                supported: Some(true),
                fd_index: Some(0),
            }),
            ..Capabilities::default()
        };
        assert_eq!(caps, want);
        assert!(caps.effective_twin_socket());
        assert_eq!(caps.effective_max_msg_fds(), 8);
        assert_eq!(caps.effective_max_dma_maps(), DEFAULT_MAX_DMA_MAPS);
        assert_eq!(caps.effective_pgsizes(), DEFAULT_PGSIZES);
        assert!(!caps.effective_write_multiple());
    }

    #[test]
    fn emit_lvu_reply_byte_for_byte() {
        let caps = parse_capabilities(LVU_REPLY).expect("lvu reply");
        assert_eq!(emit_string(&caps).as_bytes(), LVU_REPLY);
    }

    #[test]
    fn parse_qemu_request() {
        let caps = parse_capabilities(QEMU_REQUEST).expect("qemu request");
        assert_eq!(
            caps,
            Capabilities {
                max_msg_fds: Some(16),
                max_data_xfer_size: Some(1048576),
                max_dma_maps: Some(65535),
                pgsizes: Some(4096),
                write_multiple: Some(true),
                migration: Some(Migration {
                    pgsize: Some(4096),
                    max_bitmap_size: Some(268435456),
                }),
                ..Capabilities::default()
            }
        );
        assert!(caps.effective_write_multiple());
        assert!(!caps.effective_twin_socket());
        // Re-emitted in this crate's order; the same value comes back.
        let text = emit_string(&caps);
        assert_eq!(
            text,
            r#"{"capabilities":{"max_msg_fds":16,"max_data_xfer_size":1048576,"max_dma_maps":65535,"pgsizes":4096,"write_multiple":true,"migration":{"pgsize":4096,"max_bitmap_size":268435456}}}"#
        );
        assert_eq!(parse(&text), caps);
    }

    #[test]
    fn defaults_when_absent() {
        for json in ["{}", r#"{"capabilities":{}}"#] {
            let caps = parse(json);
            assert_eq!(caps, Capabilities::default());
            assert_eq!(caps.effective_max_msg_fds(), 1);
            assert_eq!(caps.effective_max_data_xfer_size(), 1048576);
            assert_eq!(caps.effective_max_dma_maps(), 65535);
            assert_eq!(caps.effective_pgsizes(), 4096);
            assert!(!caps.effective_write_multiple());
            assert!(!caps.effective_twin_socket());
        }
        assert_eq!(
            emit_string(&Capabilities::default()),
            r#"{"capabilities":{}}"#
        );
        // An empty twin_socket object is kept as present.
        let caps = parse(r#"{"capabilities":{"twin_socket":{}}}"#);
        assert_eq!(caps.twin_socket, Some(TwinSocket::default()));
        assert!(!caps.effective_twin_socket());
    }

    #[test]
    fn whitespace_everywhere() {
        let json = " \t\r\n{ \"capabilities\" \n:\t{ \"max_msg_fds\" : 8 ,\r\n \"twin_socket\" : { \"supported\" : false } , \"x\" : [ 1 , { } , [ ] ] , \"y\" : { } } } \n";
        let caps = parse(json);
        assert_eq!(caps.max_msg_fds, Some(8));
        assert_eq!(
            caps.twin_socket,
            Some(TwinSocket {
                supported: Some(false),
                fd_index: None
            })
        );
        assert_eq!(
            &caps.unknown[..],
            &[
                unknown(Scope::Capabilities, "x", "[ 1 , { } , [ ] ]", false),
                unknown(Scope::Capabilities, "y", "{ }", false),
            ]
        );
        // The pytest corpus's spacing.
        let caps = parse(
            r#"{ "capabilities": { "max_msg_fds": 8, "max_data_xfer_size": 1048576, "migration": { "pgsize": 4096 } } }"#,
        );
        assert_eq!(caps.migration.and_then(|m| m.pgsize), Some(4096));
    }

    #[test]
    fn escapes_in_strings() {
        let json = r#"{"capabilities":{"max\u005fmsg_fds":4,"v\"q":"a\\b\/c\b\f\n\r\t\u00e9\uD83D\uDE00","\u00e9t\u00e9":"\ud800"}}"#;
        let caps = parse(json);
        assert_eq!(caps.max_msg_fds, Some(4));
        assert_eq!(caps.unknown.len(), 2);
        let q = caps.unknown[0];
        assert_eq!(q.key, r#"v\"q"#);
        assert!(q.key_eq("v\"q"));
        assert_eq!(q.value, r#""a\\b\/c\b\f\n\r\t\u00e9\uD83D\uDE00""#);
        assert!(caps.unknown[1].key_eq("été"));
        assert_eq!(caps.unknown[1].key_chars().collect::<String>(), "été");
        // Surrogate pairs decode; a lone surrogate is U+FFFD.
        let s = parse(r#"{"\uD83D\uDE00":1,"\udc00x":2,"\uD83Dx":3}"#);
        let keys: Vec<String> = s.unknown.iter().map(|u| u.key_chars().collect()).collect();
        assert_eq!(keys, ["\u{1F600}", "\u{FFFD}x", "\u{FFFD}x"]);
        // Keys compare as UTF-16 code units: a pair equals the raw character, two lone surrogates differ.
        let s = parse(r#"{"\uD83D\uDE00":1,"😀":2,"\udc00":3,"\ud800":4,"\/":5,"/":6}"#);
        assert_eq!(s.duplicate_keys, 2);
        assert_eq!(s.unknown.len(), 4);
        // Raw UTF-8 in strings is fine.
        let caps = parse("{\"ключ\":\"значение 😀\"}");
        assert_eq!(caps.unknown[0].key, "ключ");
    }

    #[test]
    fn nested_unknowns_any_shape() {
        let json = r#"{"capabilities":{"vendor":{"a":[1,-2.5e+3,true,false,null,"s",{"b":[[],{}]}],"c":{}},"max_dma_maps":10,"list":[0,1E9,-0,0.25e-2]},"extra":null,"n":-1}"#;
        let caps = parse(json);
        assert_eq!(caps.max_dma_maps, Some(10));
        assert_eq!(
            &caps.unknown[..],
            &[
                unknown(
                    Scope::Capabilities,
                    "vendor",
                    r#"{"a":[1,-2.5e+3,true,false,null,"s",{"b":[[],{}]}],"c":{}}"#,
                    false
                ),
                unknown(Scope::Capabilities, "list", "[0,1E9,-0,0.25e-2]", false),
                unknown(Scope::TopLevel, "extra", "null", false),
                unknown(Scope::TopLevel, "n", "-1", false),
            ]
        );
        // Known names outside their object are just unknown.
        let caps =
            parse(r#"{"max_msg_fds":1,"capabilities":{"pgsize":2,"migration":{"pgsizes":3}}}"#);
        assert_eq!(caps.max_msg_fds, None);
        assert_eq!(caps.migration, Some(Migration::default()));
        assert_eq!(caps.unknown.len(), 3);
        assert!(caps.unknown.iter().all(|u| !u.ill_typed));
        assert_eq!(caps.unknown[2].scope.path(), "capabilities.migration");
    }

    #[test]
    fn ill_typed_known_keys() {
        let json = r#"{"capabilities":{"max_msg_fds":"8","max_data_xfer_size":-1,"max_dma_maps":1.0,"pgsizes":18446744073709551616,"write_multiple":1,"twin_socket":{"supported":"yes","fd_index":1e2},"migration":23}}"#;
        let caps = parse(json);
        assert_eq!(caps.max_msg_fds, None);
        assert_eq!(caps.effective_max_msg_fds(), 1);
        assert_eq!(caps.twin_socket, Some(TwinSocket::default()));
        assert_eq!(caps.migration, None);
        let got: Vec<_> = caps
            .ill_typed()
            .map(|u| (u.scope, u.key, u.value))
            .collect();
        assert_eq!(
            got,
            [
                (Scope::Capabilities, "max_msg_fds", r#""8""#),
                (Scope::Capabilities, "max_data_xfer_size", "-1"),
                (Scope::Capabilities, "max_dma_maps", "1.0"),
                (Scope::Capabilities, "pgsizes", "18446744073709551616"),
                (Scope::Capabilities, "write_multiple", "1"),
                (Scope::TwinSocket, "supported", r#""yes""#),
                (Scope::TwinSocket, "fd_index", "1e2"),
                (Scope::Capabilities, "migration", "23"),
            ]
        );
        // u64::MAX itself fits.
        assert_eq!(
            parse(r#"{"capabilities":{"pgsizes":18446744073709551615}}"#).pgsizes,
            Some(u64::MAX)
        );
        // A non-object capabilities, as libvfio-user's tests send.
        let caps = parse(r#"{ "capabilities": "23" }"#);
        assert_eq!(
            &caps.unknown[..],
            &[unknown(Scope::TopLevel, "capabilities", r#""23""#, true)]
        );
        assert_eq!(emit_string(&caps), r#"{"capabilities":"23"}"#);
    }

    #[test]
    fn duplicate_keys_last_wins() {
        let caps = parse(r#"{"capabilities":{"max_msg_fds":1,"max_msg_fds":2,"x":1,"x":[2]}}"#);
        assert_eq!(caps.max_msg_fds, Some(2));
        assert_eq!(caps.duplicate_keys, 2);
        assert_eq!(
            &caps.unknown[..],
            &[unknown(Scope::Capabilities, "x", "[2]", false)]
        );

        // An ill-typed value, then a good one: the good one wins and the bad one is forgotten.
        let caps = parse(r#"{"capabilities":{"max_msg_fds":"a","max\u005fmsg_fds":3}}"#);
        assert_eq!((caps.max_msg_fds, caps.duplicate_keys), (Some(3), 1));
        assert!(caps.unknown.is_empty());
        // And the other way round.
        let caps = parse(r#"{"capabilities":{"max_msg_fds":3,"max_msg_fds":"a"}}"#);
        assert_eq!(caps.max_msg_fds, None);
        assert_eq!(caps.ill_typed().count(), 1);

        // A repeated object replaces the whole earlier one, its unknown members included.
        let caps = parse(
            r#"{"capabilities":{"migration":{"pgsize":1,"x":1},"migration":{"max_bitmap_size":2},"max_dma_maps":9},"capabilities":{"max_msg_fds":5,"twin_socket":{"y":0}},"t":0}"#,
        );
        assert_eq!(caps.max_dma_maps, None);
        assert_eq!(caps.migration, None);
        assert_eq!(caps.max_msg_fds, Some(5));
        assert_eq!(caps.twin_socket, Some(TwinSocket::default()));
        assert_eq!(caps.duplicate_keys, 2);
        assert_eq!(
            &caps.unknown[..],
            &[
                unknown(Scope::TwinSocket, "y", "0", false),
                unknown(Scope::TopLevel, "t", "0", false),
            ]
        );
        let caps = parse(
            r#"{"capabilities":{"migration":{"pgsize":1,"x":1},"migration":{"max_bitmap_size":2}}}"#,
        );
        assert_eq!(
            caps.migration,
            Some(Migration {
                pgsize: None,
                max_bitmap_size: Some(2)
            })
        );
        assert!(caps.unknown.is_empty());
    }

    #[test]
    fn too_many_unknown_keys() {
        let mut json = String::from("{");
        for n in 0..MAX_UNKNOWN_KEYS {
            json.push_str(&std::format!("\"k{n}\":{n},"));
        }
        // 16 unknown keys are fine, and a repeat takes no room.
        let ok = std::format!("{json}\"k0\":0}}");
        assert_eq!(parse(&ok).unknown.len(), MAX_UNKNOWN_KEYS);
        let at = json.len();
        json.push_str("\"k16\":16}");
        assert_eq!(
            err(json.as_bytes()),
            (
                at,
                Rule::JsonTooLarge {
                    what: "more than 16 unknown keys"
                }
            )
        );
    }

    #[test]
    fn syntax_errors_with_offsets() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 0, EOF),
            ("   ", 3, EOF),
            ("[]", 0, "top level is not an object"),
            ("\"s\"", 0, "top level is not an object"),
            (" 1", 1, "top level is not an object"),
            ("null", 0, "top level is not an object"),
            ("{", 1, EOF),
            ("{}x", 2, "trailing characters after the object"),
            ("{} {}", 3, "trailing characters after the object"),
            ("{,}", 1, "expected a string key"),
            ("{a:1}", 1, "expected a string key"),
            ("{'a':1}", 1, "expected a string key"),
            (r#"{"a":1,}"#, 7, "expected a string key"),
            (r#"{"a" 1}"#, 5, "expected ':' after a key"),
            (r#"{"a":}"#, 5, "expected a value"),
            (r#"{"a":1 "b":2}"#, 7, "expected ',' or '}' after a member"),
            (r#"{"a":1]"#, 6, "expected ',' or '}' after a member"),
            (r#"{"a":[1 2]}"#, 8, "expected ',' or ']' after an element"),
            (r#"{"a":[1,]}"#, 8, "expected a value"),
            (r#"{"a":[,]}"#, 6, "expected a value"),
            (
                r#"{"a":tru}"#,
                5,
                "invalid literal (expected true, false or null)",
            ),
            (
                r#"{"a":nul}"#,
                5,
                "invalid literal (expected true, false or null)",
            ),
            (r#"{"a":True}"#, 5, "expected a value"),
            (r#"{"a":01}"#, 5, "leading zero in number"),
            (r#"{"a":-01}"#, 6, "leading zero in number"),
            (r#"{"a":-}"#, 6, "invalid number (expected a digit)"),
            (r#"{"a":+1}"#, 5, "expected a value"),
            (r#"{"a":.5}"#, 5, "expected a value"),
            (r#"{"a":1.}"#, 7, "invalid number (expected a digit)"),
            (r#"{"a":1.e3}"#, 7, "invalid number (expected a digit)"),
            (r#"{"a":1e}"#, 7, "invalid number (expected a digit)"),
            (r#"{"a":1e+}"#, 8, "invalid number (expected a digit)"),
            (r#"{"a":0x10}"#, 6, "expected ',' or '}' after a member"),
            (r#"{"a":NaN}"#, 5, "expected a value"),
            (r#"{"a":"x\q"}"#, 7, "invalid escape"),
            (
                r#"{"a":"\u12G4"}"#,
                6,
                "invalid \\u escape (needs 4 hex digits)",
            ),
            (
                r#"{"a":"\u12"}"#,
                6,
                "invalid \\u escape (needs 4 hex digits)",
            ),
            ("{\"a\":\"x\ty\"}", 7, "control character in string"),
            ("{\"a\nb\":1}", 3, "control character in string"),
            (r#"{"a":"x}"#, 8, "unterminated string"),
            (r#"{"a":"x\"#, 8, "unterminated string"),
            (r#"{"a":"\u00"#, 10, "unterminated string"),
            (r#"{"a":t"#, 6, EOF),
            (r#"{"a":-"#, 6, EOF),
            (r#"{"a" "#, 5, EOF),
            ("{\"a\":1}\0", 7, "trailing characters after the object"),
            (
                r#"{"capabilities":{"max_msg_fds":8,}}"#,
                33,
                "expected a string key",
            ),
            (
                r#"{"capabilities":{"max_msg_fds":08}}"#,
                31,
                "leading zero in number",
            ),
            (
                r#"{"capabilities":{"migration":{"pgsize"}}}"#,
                38,
                "expected ':' after a key",
            ),
            (r#"{"capabilities" {}}"#, 16, "expected ':' after a key"),
        ];
        for &(json, at, reason) in cases {
            assert_eq!(err(json.as_bytes()), syntax(at, reason), "{json:?}");
        }
    }

    #[test]
    fn not_utf8() {
        // A bad byte inside a string: in a key, in a value, after good multi-byte characters.
        assert_eq!(err(b"{\"\xff\":1}"), syntax(2, "not UTF-8"));
        assert_eq!(err(b"{\"a\":\"\xff\"}"), syntax(6, "not UTF-8"));
        assert_eq!(
            err("{\"a\":\"é😀\u{7f}é"
                .as_bytes()
                .iter()
                .chain(b"\xe9\x80\"}")
                .copied()
                .collect::<Vec<u8>>()
                .as_slice()),
            syntax(15, "not UTF-8")
        );
        // A surrogate encoded in UTF-8, and an overlong encoding.
        assert_eq!(err(b"{\"a\":\"\xed\xa0\x80\"}"), syntax(6, "not UTF-8"));
        assert_eq!(err(b"{\"a\":\"\xc0\xaf\"}"), syntax(6, "not UTF-8"));
        // Outside strings a non-ASCII byte is just unexpected.
        assert_eq!(
            err(b"{\"a\":1\xc3}"),
            syntax(6, "expected ',' or '}' after a member")
        );
        assert_eq!(
            err(b"\xef\xbb\xbf{}"),
            syntax(0, "top level is not an object")
        );
        // A syntax error before a bad byte is reported first.
        assert_eq!(err(b"{\"a\":x,\"\xff\"}"), syntax(5, "expected a value"));
        // A multi-byte sequence cut by the end of the text.
        assert_eq!(err(b"{\"\xc3"), syntax(2, "not UTF-8"));
    }

    #[test]
    fn depth_bombs() {
        let bomb = |open: &str, n: usize| {
            let mut s = String::from(r#"{"x":"#);
            for _ in 0..n {
                s.push_str(open);
            }
            s
        };
        let too_deep = Rule::JsonTooLarge {
            what: "nesting deeper than 16",
        };
        // 10000 unclosed arrays: refused at the 16th, the 17th level.
        assert_eq!(err(bomb("[", 10_000).as_bytes()), (5 + 15, too_deep));
        let objects = bomb(r#"{"a":"#, 10_000);
        assert_eq!(err(objects.as_bytes()), (5 + 15 * 5, too_deep));
        // 15 levels inside the top-level object are fine.
        let mut ok = bomb("[", 15);
        ok.push_str(&"]".repeat(15));
        ok.push('}');
        assert_eq!(parse(&ok).unknown.len(), 1);
        // Known objects count too.
        let mut deep = String::from(r#"{"capabilities":{"migration":{"x":"#);
        deep.push_str(&"[".repeat(13));
        deep.push_str(&"]".repeat(13));
        deep.push_str("}}}");
        assert!(parse_capabilities(deep.as_bytes()).is_ok());
        let deeper = deep.replacen("[", "[[", 1).replacen("]", "]]", 1);
        assert_eq!(err(deeper.as_bytes()), (34 + 13, too_deep));
        // Top-level bombs that are not objects.
        assert_eq!(
            err("[".repeat(10_000).as_bytes()),
            syntax(0, "top level is not an object")
        );
        assert_eq!(
            err("{".repeat(10_000).as_bytes()),
            syntax(1, "expected a string key")
        );
    }

    #[test]
    fn truncated_at_every_length() {
        let docs: &[&[u8]] = &[
            LVU_REPLY,
            QEMU_REQUEST,
            br#"{ "k" : [ "a\"\u00e9" , -1.5e-3 , true , false , null , { } ] , "capabilities" : { "twin_socket" : { "supported" : true } } }"#,
        ];
        for doc in docs {
            for n in 0..doc.len() {
                let (at, rule) = err(&doc[..n]);
                assert!(at <= n, "offset {at} past the end of {n} bytes");
                assert_eq!(rule.id(), "version-json-syntax");
                if let Rule::JsonSyntax { reason } = rule {
                    assert!(
                        at == n && (reason == EOF || reason == "unterminated string"),
                        "{n}: {at} {reason}"
                    );
                }
            }
            assert!(parse_capabilities(doc).is_ok());
        }
    }

    #[test]
    fn emit_buffer_too_short() {
        let caps = parse_capabilities(LVU_REPLY).expect("lvu reply");
        assert_eq!(caps.emitted_len(), LVU_REPLY.len());
        let mut buf = [0xa5u8; 64];
        assert_eq!(
            caps.emit(&mut buf),
            Err(EncodeError::BufferTooShort {
                need: LVU_REPLY.len(),
                have: 64
            })
        );
        let mut exact = std::vec![0u8; LVU_REPLY.len()];
        assert_eq!(caps.emit(&mut exact), Ok(LVU_REPLY.len()));
        assert_eq!(&exact[..], LVU_REPLY);
    }

    #[test]
    fn emit_unknowns_in_their_objects() {
        let json = r#"{"v":[1, 2],"capabilities":{"z":{"q":"\u0041"},"twin_socket":{"fd_index":2,"t":1},"migration":{"m":null},"pgsizes":"x"}}"#;
        let caps = parse(json);
        let text = emit_string(&caps);
        assert_eq!(
            text,
            r#"{"capabilities":{"migration":{"m":null},"twin_socket":{"fd_index":2,"t":1},"z":{"q":"\u0041"},"pgsizes":"x"},"v":[1, 2]}"#
        );
        let again = parse(&text);
        assert_eq!(emit_string(&again), text);
        assert_eq!(again.ill_typed().count(), 1);
        assert_eq!(again.unknown.len(), caps.unknown.len());
    }

    /// Every VERSION payload in the captures: decoded as whole messages and their JSON parsed.
    #[test]
    fn corpus_version_payloads() {
        let captures: [&[u8]; 3] = [
            include_bytes!("../../../corpus/lvu-sample-client.pcapng"),
            include_bytes!("../../../corpus/lvu-sample-client-migrated.pcapng"),
            include_bytes!("../../../corpus/lvu-pytest-subset.pcapng"),
        ];
        let needle = b"\"capabilities\"";
        let mut seen = 0;
        let mut ill = 0;
        for cap in captures {
            let mut from = 0;
            while let Some(pos) = cap[from..].windows(needle.len()).position(|w| w == needle) {
                let key = from + pos;
                from = key + 1;
                let start = cap[..key]
                    .iter()
                    .rposition(|&b| b == b'{')
                    .expect("object start");
                let msg = start - 20; // 16-byte header + 4-byte version
                let size =
                    u32::from_le_bytes(cap[msg + 4..msg + 8].try_into().expect("4 bytes")) as usize;
                let m = crate::decode(&cap[msg..msg + size], crate::Direction::ClientToServer)
                    .expect("VERSION message");
                let crate::Body::Version(v) = m.body else {
                    panic!("not a VERSION body at {msg}");
                };
                let json = v.json.expect("capabilities text");
                let caps = parse_capabilities(json).expect("capabilities parse");
                ill += caps.ill_typed().count();
                // Emitting and parsing again gives the same value.
                let text = emit_string(&caps);
                assert_eq!(parse(&text), caps);
                seen += 1;
            }
        }
        assert_eq!(seen, 67);
        // "capabilities": "23", "max_msg_fds": "foo" and -1, "migration": "23", "pgsize": "foo".
        assert_eq!(ill, 5);
        let sample = parse(r#"{"capabilities":{"max_msg_fds":32,"max_data_xfer_size":1024}}"#);
        assert_eq!(sample.max_data_xfer_size, Some(1024));
    }

    // ---- emit/parse round trip ----

    const VALUES: &[&str] = &[
        "0",
        "-12",
        "1.5e3",
        "true",
        "null",
        r#""s\"\u00e9""#,
        "[]",
        r#"{"a":[1,{"b":null}]}"#,
    ];
    const ILL_VALUES: &[&str] = &[r#""8""#, "-1", "1.5", "18446744073709551616", "null", "[1]"];
    const NAMES: &[&str] = &[
        "x",
        "vendor_ext",
        "a\\u0062",
        "\\u00e9t\\u00e9",
        "with space",
        "max_msg_fds",
        "pgsize",
        "supported",
        "capabilities",
        "migration",
    ];

    fn scope_of(n: u8) -> Scope {
        match n % 4 {
            0 => Scope::Migration,
            1 => Scope::TwinSocket,
            2 => Scope::Capabilities,
            _ => Scope::TopLevel,
        }
    }

    fn rank(s: Scope) -> u8 {
        match s {
            Scope::Migration => 0,
            Scope::TwinSocket => 1,
            Scope::Capabilities => 2,
            Scope::TopLevel => 3,
        }
    }

    prop_compose! {
        fn arb_caps()(
            nums in proptest::array::uniform4(proptest::option::of(any::<u64>())),
            write_multiple in proptest::option::of(any::<bool>()),
            twin in proptest::option::of((proptest::option::of(any::<bool>()), proptest::option::of(any::<u64>()))),
            mig in proptest::option::of((proptest::option::of(any::<u64>()), proptest::option::of(any::<u64>()))),
            extra in proptest::collection::vec((any::<u8>(), 0..NAMES.len(), 0..VALUES.len()), 0..12),
            ill in proptest::collection::vec((0..7usize, 0..ILL_VALUES.len()), 0..4),
        ) -> Capabilities<'static> {
            let mut c = Capabilities {
                max_msg_fds: nums[0],
                max_data_xfer_size: nums[1],
                max_dma_maps: nums[2],
                pgsizes: nums[3],
                write_multiple,
                twin_socket: twin.map(|(supported, fd_index)| TwinSocket { supported, fd_index }),
                migration: mig.map(|(pgsize, max_bitmap_size)| Migration { pgsize, max_bitmap_size }),
                ..Capabilities::default()
            };
            let mut all: Vec<UnknownKey<'static>> = Vec::new();
            for (s, name, value) in extra {
                let scope = scope_of(s);
                let key = NAMES[name];
                if Known::lookup(scope, Key { body: key.as_bytes(), escaped: key.contains('\\') }).is_some() || all.iter().any(|u| u.scope == scope && keys_equal(u.key, key)) {
                    continue;
                }
                // Members of nested objects need the object.
                match scope {
                    Scope::Migration if c.migration.is_none() => continue,
                    Scope::TwinSocket if c.twin_socket.is_none() => continue,
                    _ => {}
                }
                all.push(unknown(scope, key, VALUES[value], false));
            }
            for (which, value) in ill {
                let k = Scope::Capabilities.known()[which];
                let unset = match k {
                    Known::MaxMsgFds => c.max_msg_fds.is_none(),
                    Known::MaxDataXferSize => c.max_data_xfer_size.is_none(),
                    Known::MaxDmaMaps => c.max_dma_maps.is_none(),
                    Known::Pgsizes => c.pgsizes.is_none(),
                    Known::WriteMultiple => c.write_multiple.is_none(),
                    Known::Migration => c.migration.is_none(),
                    _ => c.twin_socket.is_none(),
                };
                if unset && !all.iter().any(|u| u.scope == Scope::Capabilities && u.key == k.name()) {
                    all.push(unknown(Scope::Capabilities, k.name(), ILL_VALUES[value], true));
                }
            }
            all.sort_by_key(|u| rank(u.scope));
            for u in all.into_iter().take(MAX_UNKNOWN_KEYS) {
                let _ = c.unknown.push(u);
            }
            c
        }
    }

    proptest! {
        #[test]
        fn emit_then_parse_round_trips(caps in arb_caps()) {
            let mut buf = std::vec![0xa5u8; caps.emitted_len() + 3];
            let n = caps.emit(&mut buf).expect("emit");
            prop_assert_eq!(n, caps.emitted_len());
            prop_assert!(buf[n..].iter().all(|&b| b == 0xa5));
            let back = parse_capabilities(&buf[..n]).expect("parse emitted");
            prop_assert_eq!(back, caps);
        }

        #[test]
        fn fast_path_agrees_with_the_general_parser(caps in arb_caps(), cut in any::<prop::sample::Index>()) {
            let text = emit_string(&caps);
            prop_assert_eq!(parse_capabilities(text.as_bytes()), parse_capabilities_general(text.as_bytes()));
            // And on every prefix (where the fast path gives up part way through).
            let cut = cut.index(text.len() + 1);
            let part = &text.as_bytes()[..cut];
            prop_assert_eq!(parse_capabilities(part), parse_capabilities_general(part));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Err((at, _)) = parse_capabilities(&bytes) {
                prop_assert!(at <= bytes.len());
            }
        }

        #[test]
        fn never_panics_near_json(
            base in 0..3usize,
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let docs: [&[u8]; 3] = [LVU_REPLY, QEMU_REQUEST, br#"{"a":[1,{"b":"\u00e9"}],"capabilities":{"x":-1.5e3}}"#];
            let mut doc = docs[base].to_vec();
            for (at, byte) in edits {
                let at = at.index(doc.len());
                let set = b"{}[],:\"\\ 0-.eEtfnu";
                doc[at] = set[usize::from(byte) % set.len()];
            }
            prop_assert_eq!(parse_capabilities(&doc), parse_capabilities_general(&doc));
            match parse_capabilities(&doc) {
                Ok(caps) => {
                    // Whatever parses re-emits to text that parses to a value that re-emits the same.
                    let text = emit_string(&caps);
                    let again = parse(&text);
                    prop_assert_eq!(emit_string(&again), text.clone());
                }
                Err((at, _)) => prop_assert!(at <= doc.len()),
            }
        }
    }
}
