//! The general parser: any RFC 8259 JSON, by recursive descent over nom's complete byte-slice lexers.
//!
//! Non-ASCII bytes may only appear in strings, where the lexer checks they are UTF-8, so the keys and
//! values it returns are `&str`. Every error is a `Failure` that records how much input was left, which
//! gives the offset.

use nom::IResult;
use nom::bytes::complete::{tag, take_while, take_while_m_n};
use nom::character::complete::{digit1, multispace0, one_of};
use nom::error::{ErrorKind, ParseError};

use super::num::{plain_uint, uint};
use super::value::{
    Capabilities, Key, Kind, Known, MAX_DEPTH, Migration, Scope, TwinSocket, UnknownKey,
};
use crate::error::Rule;

/// The general parser: any JSON, into `caps`, which is empty.
pub(super) fn parse_general<'a>(
    json: &'a [u8],
    caps: &mut Capabilities<'a>,
) -> Result<(), (usize, Rule)> {
    match (Doc { caps }).document(json) {
        Ok(()) => Ok(()),
        Err(nom::Err::Error(f) | nom::Err::Failure(f)) => {
            Err((json.len().saturating_sub(f.left), *f.rule))
        }
        Err(nom::Err::Incomplete(_)) => Err((json.len(), Rule::JsonSyntax { reason: EOF })),
    }
}

pub(super) const EOF: &str = "unexpected end of input";
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
pub(super) struct Fail {
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

pub(super) type PResult<'a, T> = IResult<&'a [u8], T, Fail>;

/// An error at `at`.
fn fail<T>(at: &[u8], rule: &'static Rule) -> PResult<'static, T> {
    Err(nom::Err::Failure(Fail {
        left: at.len(),
        rule,
    }))
}

/// The failure at `at` (for `?`).
fn fail_at(at: &[u8], rule: &'static Rule) -> nom::Err<Fail> {
    nom::Err::Failure(Fail {
        left: at.len(),
        rule,
    })
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
pub(super) static PLAIN: [bool; 256] = {
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
pub(super) fn plain_len(s: &[u8]) -> usize {
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
pub(super) fn number(i: &[u8]) -> PResult<'_, &[u8]> {
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
            self.caps.record(u).map_err(|rule| fail_at(at_key, rule))?;
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
            self.caps.record(u).map_err(|rule| fail_at(at_key, rule))?;
        }
        Ok(rest)
    }
}
