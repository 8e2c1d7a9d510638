//! The fast path: the capabilities text every known sender writes, read in one pass without nom.

use super::num::plain_uint;
use super::value::{Capabilities, Kind, Known, Migration, Scope, TwinSocket};

/// Parses the common shape of capabilities text in one pass: compact (no whitespace), every key known
/// and written without escapes, no key repeated, every value of its key's type (an unsigned integer
/// without sign, fraction or exponent, `true` or `false`, or for `migration` and `twin_socket` a
/// non-empty object of such members). That is what libvfio-user, QEMU and the `vfio_user` crate send.
/// Gives up (`None`) at the first thing outside that shape, and the general parser then reads the text
/// from the start; where the fast path succeeds, the general parser gives the same value (a test and
/// the `version_caps` fuzz target check this).
#[inline]
pub(super) fn fast_document<'a>(json: &'a [u8], caps: &mut Capabilities<'a>) -> Option<()> {
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
