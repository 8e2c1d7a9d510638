//! The capabilities value ([`Capabilities`] and what it holds), the known keys of each object and how
//! raw keys compare: what the fast path, the general parser and the emitter share.

use crate::error::Rule;

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
    pub(super) fn known(self) -> &'static [Known] {
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

    /// Sets a known unsigned member.
    #[inline]
    pub(super) fn set_uint(&mut self, k: Known, n: u64) {
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
    #[inline]
    pub(super) fn set_bool(&mut self, k: Known, b: bool) {
        match k {
            Known::WriteMultiple => self.write_multiple = Some(b),
            Known::Supported => self.twin_socket.get_or_insert_default().supported = Some(b),
            _ => {}
        }
    }

    /// Forgets all that an earlier member with key `k` set, before a duplicate replaces it.
    #[cold]
    #[inline(never)]
    pub(super) fn forget(&mut self, k: Known) {
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
    /// When [`MAX_UNKNOWN_KEYS`] are already kept, the rule that is broken.
    #[inline(never)]
    pub(super) fn record(&mut self, u: UnknownKey<'a>) -> Result<(), &'static Rule> {
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
        self.unknown.push(u).map_err(|_| &Rule::JsonTooLarge {
            what: "more than 16 unknown keys",
        })
    }
}

/// The known members, in every object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Known {
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
pub(super) enum Kind {
    Uint,
    Bool,
    Object(Scope),
}

impl Known {
    #[inline]
    pub(super) fn name(self) -> &'static str {
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

    #[inline]
    pub(super) fn kind(self) -> Kind {
        match self {
            Known::Capabilities => Kind::Object(Scope::Capabilities),
            Known::Migration => Kind::Object(Scope::Migration),
            Known::TwinSocket => Kind::Object(Scope::TwinSocket),
            Known::WriteMultiple | Known::Supported => Kind::Bool,
            _ => Kind::Uint,
        }
    }

    /// The object this key belongs to.
    pub(super) fn scope(self) -> Scope {
        match self {
            Known::Capabilities => Scope::TopLevel,
            Known::Supported | Known::FdIndex => Scope::TwinSocket,
            Known::Pgsize | Known::MaxBitmapSize => Scope::Migration,
            _ => Scope::Capabilities,
        }
    }

    #[inline]
    pub(super) fn bit(self) -> u16 {
        1 << (self as u16)
    }

    /// The known key `key` of `scope`, if it is one.
    #[inline]
    pub(super) fn lookup(scope: Scope, key: Key<'_>) -> Option<Known> {
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

/// A key as the lexer found it: the text between the quotes, and whether it has escapes.
#[derive(Clone, Copy)]
pub(super) struct Key<'a> {
    /// The raw text between the quotes.
    pub(super) body: &'a [u8],
    /// Whether it holds a backslash escape.
    pub(super) escaped: bool,
}

/// Whether the raw key `raw`, unescaped, is `name`.
pub(super) fn key_is(raw: &str, name: &str) -> bool {
    if raw.contains('\\') {
        Units::new(raw).eq(name.encode_utf16())
    } else {
        raw == name
    }
}

/// Whether two raw keys are the same once unescaped (the same UTF-16 code units, as JSON defines).
pub(super) fn keys_equal(a: &str, b: &str) -> bool {
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
