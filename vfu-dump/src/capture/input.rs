//! One reusable read buffer over any [`Read`], with the file offset of its first byte.
//!
//! The buffer grows only when a block does not fit, and then at most to twice the bytes it actually
//! holds, so a length field that claims 4 GiB in a 100-byte file never allocates more than the first
//! chunk: the growth is paid for by data that was really read.

use std::io::{self, Read};

/// The buffer's first size, and the smallest read.
const INITIAL: usize = 256 * 1024;

/// A read buffer: `buf[start..end]` holds the unconsumed bytes, the first of which is at file offset
/// `offset`.
pub(crate) struct Input<R> {
    reader: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    offset: u64,
    eof: bool,
}

impl<R: Read> Input<R> {
    pub(crate) fn new(reader: R) -> Self {
        Input {
            reader,
            buf: Vec::new(),
            start: 0,
            end: 0,
            offset: 0,
            eof: false,
        }
    }

    /// File offset of the first unconsumed byte.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// The unconsumed bytes read so far.
    pub(crate) fn data(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or(&[])
    }

    /// Drops `n` bytes from the front (at most what is buffered).
    pub(crate) fn consume(&mut self, n: usize) {
        let n = n.min(self.end - self.start);
        self.start += n;
        self.offset += n as u64;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads until at least `n` unconsumed bytes are buffered or the input ends; returns how many are
    /// buffered, at most `n`. Callers bound `n` (by [`super::MAX_RECORD_LEN`]) before calling.
    pub(crate) fn fill(&mut self, n: usize) -> io::Result<usize> {
        while self.end - self.start < n && !self.eof {
            if self.end == self.buf.len() {
                let have = self.end - self.start;
                if have == self.buf.len() {
                    // Full of real data: grow by at most doubling, and never past what is asked.
                    // A fresh zeroed allocation (calloc) is cheaper than `resize`'s fill.
                    let grown = self.buf.len().saturating_mul(2).max(INITIAL);
                    let mut bigger = vec![0u8; grown.min(n.max(INITIAL))];
                    bigger[..have].copy_from_slice(&self.buf[self.start..self.end]);
                    self.buf = bigger;
                } else {
                    self.buf.copy_within(self.start..self.end, 0);
                }
                self.start = 0;
                self.end = have;
            }
            let Some(free) = self.buf.get_mut(self.end..) else {
                break;
            };
            match self.reader.read(free) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k.min(free.len()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok((self.end - self.start).min(n))
    }

    /// The buffer's allocated size (for tests of the growth bound).
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that returns at most 3 bytes a call.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(out.len()).min(3);
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn fill_consume_and_offsets() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let mut input = Input::new(Trickle(&data));
        assert_eq!(input.fill(10).unwrap(), 10);
        assert_eq!(&input.data()[..10], &data[..10]);
        input.consume(7);
        assert_eq!(input.offset(), 7);
        assert_eq!(input.fill(500).unwrap(), 500);
        assert_eq!(&input.data()[..500], &data[7..507]);
        input.consume(500);
        assert_eq!(input.fill(10_000).unwrap(), 493);
        assert_eq!(input.data(), &data[507..]);
        input.consume(10_000);
        assert_eq!(input.offset(), 1000);
        assert_eq!(input.fill(1).unwrap(), 0);
    }

    #[test]
    fn growth_is_bounded_by_the_data_read() {
        let data = [0u8; 100];
        let mut input = Input::new(&data[..]);
        assert_eq!(input.fill(1 << 30).unwrap(), 100);
        assert!(input.capacity() <= INITIAL, "{}", input.capacity());
    }

    #[test]
    fn large_blocks_grow_the_buffer_then_reuse_it() {
        let data: Vec<u8> = (0..3 * INITIAL as u32).map(|i| i as u8).collect();
        let mut input = Input::new(&data[..]);
        assert_eq!(input.fill(INITIAL + 5).unwrap(), INITIAL + 5);
        input.consume(INITIAL + 5);
        assert_eq!(input.fill(INITIAL * 2 - 5).unwrap(), INITIAL * 2 - 5);
        assert_eq!(input.data()[0], data[INITIAL + 5]);
        assert!(input.capacity() <= 4 * INITIAL);
    }
}
