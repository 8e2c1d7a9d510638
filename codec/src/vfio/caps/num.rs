//! Unsigned integers in capabilities text, as both parsers read them.

/// A JSON unsigned integer: digits only (no sign, fraction or exponent) that fit a `u64`. The lexer
/// has already ruled out leading zeros.
pub(super) fn uint(raw: &[u8]) -> Option<u64> {
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
pub(super) fn plain_uint(i: &[u8]) -> Option<(&[u8], u64)> {
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
