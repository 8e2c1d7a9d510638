//! Messages whose transfer data went by unread.
//!
//! On the splice path (see "Bulk data" in the module documentation of [`super`]) the proxy never sees
//! the opaque data of a large transfer. The recorder then holds such a message as the bytes it read
//! before the first spliced span (the header and the fixed part) and a count of the bytes after it.
//! Where the whole message is needed (to decode it, to print it, or to write it to a capture), it is
//! laid out here: the head, then zeros to the message's length. The buffer is kept from one message
//! to the next and only the bytes the previous head wrote are cleared again, so a spliced transfer
//! costs a copy of its head, not a fill of its whole length.

/// Above this size the buffer is given back once a smaller message is laid out, so that one huge
/// transfer does not pin its size for the rest of the session.
const KEEP: usize = 16 << 20;

/// A buffer that is zero beyond the bytes last copied into its front.
#[derive(Default)]
pub(crate) struct ZeroPad {
    buf: Vec<u8>,
    /// `buf[dirty..]` is all zeros.
    dirty: usize,
}

impl ZeroPad {
    /// `head` followed by `absent` zero bytes.
    pub(crate) fn with(&mut self, head: &[u8], absent: usize) -> &[u8] {
        let total = head.len() + absent;
        if self.buf.len() > KEEP && total <= KEEP {
            self.buf.truncate(KEEP);
            self.buf.shrink_to_fit();
            self.dirty = self.dirty.min(KEEP);
        }
        if self.buf.len() < total {
            self.buf.resize(total, 0);
        }
        if self.dirty > head.len() {
            self.buf[head.len()..self.dirty].fill(0);
        }
        self.buf[..head.len()].copy_from_slice(head);
        self.dirty = head.len();
        &self.buf[..total]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expect(head: &[u8], absent: usize) -> Vec<u8> {
        let mut v = head.to_vec();
        v.resize(head.len() + absent, 0);
        v
    }

    #[test]
    fn lays_out_head_then_zeros_whatever_came_before() {
        let mut p = ZeroPad::default();
        // Longer heads after shorter ones and the reverse, shorter and longer totals: the bytes an
        // earlier head left behind never show through.
        let cases: &[(usize, usize)] = &[
            (32, 1000),
            (100, 10),
            (8, 2000),
            (0, 50),
            (500, 0),
            (16, 600),
            (3, 3),
        ];
        for (i, &(h, absent)) in cases.iter().enumerate() {
            let head: Vec<u8> = (0..h).map(|k| (k as u8) ^ (i as u8) | 0x80).collect();
            assert_eq!(
                p.with(&head, absent),
                expect(&head, absent).as_slice(),
                "case {i}"
            );
        }
    }

    #[test]
    fn gives_back_a_huge_buffer() {
        let mut p = ZeroPad::default();
        assert_eq!(p.with(&[1, 2, 3], KEEP + 10).len(), KEEP + 13);
        assert_eq!(p.with(&[7; 40], 24), expect(&[7; 40], 24).as_slice());
        assert!(p.buf.capacity() <= KEEP);
        // The bytes past the old head that survived the truncation are zeros as well.
        assert!(p.buf[40..].iter().all(|&b| b == 0));
    }
}
