//! Splitting a byte stream into whole vfio-user messages without copying.

use crate::error::{DecodeError, Rule};
use crate::header::HEADER_SIZE;

/// What [`frame`] found at the start of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// One whole message (`msg_size` bytes) and the bytes after it.
    Complete {
        /// The message.
        message: &'a [u8],
        /// What follows it.
        rest: &'a [u8],
    },
    /// More bytes are needed before the next message is whole.
    Incomplete {
        /// How many more, at least.
        needed: usize,
    },
    /// The header's `msg_size` is below 16, so the stream cannot be framed past it. Receivers such as
    /// libvfio-user consume the 16 header bytes; `header` is those bytes and `rest` what follows.
    BadSize {
        /// The 16 header bytes.
        header: &'a [u8],
        /// What follows them.
        rest: &'a [u8],
        /// The error to report.
        error: DecodeError,
    },
}

/// The declared `msg_size` of the header at the start of `buf`, if 16 bytes are present.
pub fn msg_size(buf: &[u8]) -> Option<u32> {
    let b = buf.get(4..8)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Finds the first message in `buf`.
///
/// ```
/// use vfu_codec::frame::{frame, Frame};
/// let mut stream = [0u8; 20];
/// stream[4] = 16; // msg_size = 16: a header-only message
/// match frame(&stream) {
///     Frame::Complete { message, rest } => { assert_eq!(message.len(), 16); assert_eq!(rest.len(), 4); }
///     other => panic!("{other:?}"),
/// }
/// assert_eq!(frame(&stream[..10]), Frame::Incomplete { needed: 6 });
/// ```
pub fn frame(buf: &[u8]) -> Frame<'_> {
    let Some(size) = msg_size(buf).filter(|_| buf.len() >= HEADER_SIZE) else {
        return Frame::Incomplete {
            needed: HEADER_SIZE - buf.len().min(HEADER_SIZE),
        };
    };
    if (size as usize) < HEADER_SIZE {
        let (header, rest) = buf.split_at(HEADER_SIZE);
        return Frame::BadSize {
            header,
            rest,
            error: DecodeError::new(4, Rule::MsgSizeBelowHeader { msg_size: size }),
        };
    }
    let size = size as usize;
    if buf.len() < size {
        return Frame::Incomplete {
            needed: size - buf.len(),
        };
    }
    let (message, rest) = buf.split_at(size);
    Frame::Complete { message, rest }
}

/// An iterator over the whole messages of a buffer; it yields `Err` for a bad `msg_size` (skipping the
/// 16 header bytes, as receivers do) and stops at a trailing partial message, which [`Framer::remainder`]
/// returns.
#[derive(Clone, Debug)]
pub struct Framer<'a> {
    buf: &'a [u8],
    offset: usize,
}

/// One item of a [`Framer`]: the stream offset of the message and the message or the framing error.
pub type Framed<'a> = (usize, Result<&'a [u8], (&'a [u8], DecodeError)>);

impl<'a> Framer<'a> {
    /// Frames `buf` from its first byte.
    pub fn new(buf: &'a [u8]) -> Self {
        Framer { buf, offset: 0 }
    }

    /// The bytes not yet framed: after the iterator ends, a partial message (empty if none).
    pub fn remainder(&self) -> &'a [u8] {
        self.buf
    }

    /// The stream offset of [`Framer::remainder`].
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl<'a> Iterator for Framer<'a> {
    type Item = Framed<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let at = self.offset;
        match frame(self.buf) {
            Frame::Complete { message, rest } => {
                self.buf = rest;
                self.offset += message.len();
                Some((at, Ok(message)))
            }
            Frame::BadSize {
                header,
                rest,
                error,
            } => {
                self.buf = rest;
                self.offset += header.len();
                Some((at, Err((header, error))))
            }
            Frame::Incomplete { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three messages back to back: 16, 20 and 48 bytes.
    fn stream() -> [u8; 84] {
        let mut s = [0u8; 84];
        for (at, size) in [(0usize, 16u32), (16, 20), (36, 48)] {
            s[at + 4..at + 8].copy_from_slice(&size.to_le_bytes());
            s[at] = at as u8;
        }
        s
    }

    #[test]
    fn frames_every_message_and_stops_at_a_partial_one() {
        let s = stream();
        let got: heapless::Vec<(usize, usize), 4> = Framer::new(&s)
            .map(|(at, m)| (at, m.map(<[u8]>::len).unwrap_or(0)))
            .collect();
        assert_eq!(&got[..], &[(0, 16), (16, 20), (36, 48)]);
        let mut f = Framer::new(&s[..80]);
        assert_eq!(f.by_ref().count(), 2);
        assert_eq!(f.offset(), 36);
        assert_eq!(f.remainder().len(), 44);
    }

    #[test]
    fn every_truncation_point_asks_for_exactly_what_is_missing() {
        let s = stream();
        for cut in 0..16 {
            assert_eq!(frame(&s[..cut]), Frame::Incomplete { needed: 16 - cut });
        }
        for cut in 16..36 {
            // The first message is whole from 16 bytes on.
            assert!(matches!(frame(&s[..cut]), Frame::Complete { .. }));
        }
        for cut in 36..84 {
            let rest = &s[36..cut];
            let want = if rest.len() < 16 {
                16 - rest.len()
            } else {
                48 - rest.len()
            };
            if rest.len() < 48 {
                assert_eq!(frame(rest), Frame::Incomplete { needed: want }, "cut {cut}");
            }
        }
    }

    #[test]
    fn msg_size_below_header_consumes_the_header() {
        let mut s = [0u8; 20];
        s[4] = 3;
        match frame(&s) {
            Frame::BadSize {
                header,
                rest,
                error,
            } => {
                assert_eq!(header.len(), 16);
                assert_eq!(rest.len(), 4);
                assert_eq!(error.offset, 4);
                assert_eq!(error.rule, Rule::MsgSizeBelowHeader { msg_size: 3 });
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn huge_msg_size_is_incomplete_not_an_allocation() {
        let mut s = [0u8; 16];
        s[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            frame(&s),
            Frame::Incomplete {
                needed: u32::MAX as usize - 16
            }
        );
    }
}
