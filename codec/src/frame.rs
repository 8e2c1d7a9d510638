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
