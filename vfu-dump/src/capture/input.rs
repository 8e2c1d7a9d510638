//! One reusable read buffer over any [`Read`], with the file offset of its first byte.
//!
//! The buffer grows only when a block does not fit, and then at most to twice the bytes it actually
//! holds, so a length field that claims 4 GiB in a 100-byte file never allocates more than the first
//! chunk: the growth is paid for by data that was really read.
//!
//! [`Input::read_ahead`] moves the reading to a thread of its own, so that the kernel's copy of the
//! next chunk runs while the caller parses this one (on a capture of small messages the copy is a
//! third of the time). The thread fills whole chunks with room in front of the data; the unconsumed
//! tail of one chunk is copied into that room of the next, so a block that straddles two chunks is
//! still one slice and the data itself is never copied again. At most [`AHEAD`] chunks wait, so
//! memory stays bounded whatever the input.

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, Sender, channel, sync_channel};

/// The buffer's first size, and the smallest read.
const INITIAL: usize = 256 * 1024;

/// Read-ahead: the bytes each chunk is filled with.
const CHUNK: usize = 256 * 1024;
/// Read-ahead: room in front of each chunk's data, for the tail of the chunk before it.
const ROOM: usize = 64 * 1024;
/// Read-ahead: chunks read and not yet taken.
const AHEAD: usize = 2;

/// Where the bytes come from.
enum Source<R> {
    /// Read on the caller's thread.
    Direct(R),
    /// Read by a thread: chunks (data at `ROOM..`; only `ROOM` long at the end of the input) arrive
    /// on `chunks`, and spent buffers go back on `spent`.
    Ahead {
        chunks: Receiver<io::Result<Vec<u8>>>,
        spent: Sender<Vec<u8>>,
    },
}

/// A read buffer: `buf[start..end]` holds the unconsumed bytes, the first of which is at file offset
/// `offset`.
pub(crate) struct Input<R> {
    source: Source<R>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    offset: u64,
    eof: bool,
}

impl<R> Input<R> {
    fn with(source: Source<R>) -> Self {
        Input {
            source,
            buf: Vec::new(),
            start: 0,
            end: 0,
            offset: 0,
            eof: false,
        }
    }
}

impl<R: Read + Send + 'static> Input<R> {
    /// An input whose reads run on a thread of its own (see the module documentation). The thread
    /// ends at the end of the input, at a read error, or when the input is dropped (once the read it
    /// is in returns).
    pub(crate) fn read_ahead(mut reader: R) -> Self {
        let (to_caller, chunks) = sync_channel::<io::Result<Vec<u8>>>(AHEAD);
        let (spent, from_caller) = channel::<Vec<u8>>();
        let spawned = std::thread::Builder::new()
            .name("vfu-read-ahead".into())
            .spawn(move || {
                loop {
                    let mut buf = from_caller.try_recv().unwrap_or_default();
                    buf.resize(ROOM + CHUNK, 0);
                    let got = loop {
                        match reader.read(&mut buf[ROOM..]) {
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            other => break other,
                        }
                    };
                    let last = !matches!(got, Ok(n) if n > 0);
                    let sent = match got {
                        Ok(n) => {
                            buf.truncate(ROOM + n.min(CHUNK));
                            to_caller.send(Ok(buf))
                        }
                        Err(e) => to_caller.send(Err(e)),
                    };
                    if last || sent.is_err() {
                        return;
                    }
                }
            });
        match spawned {
            Ok(_) => Input::with(Source::Ahead { chunks, spent }),
            // No thread to be had: the first fill reports why.
            Err(e) => {
                let (failed, failure) = sync_channel(1);
                let _ = failed.send(Err(e));
                Input::with(Source::Ahead {
                    chunks: failure,
                    spent,
                })
            }
        }
    }
}

impl<R: Read> Input<R> {
    pub(crate) fn new(reader: R) -> Self {
        Input::with(Source::Direct(reader))
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
            match &mut self.source {
                Source::Direct(_) => self.read_direct()?,
                Source::Ahead { .. } => self.take_chunk()?,
            }
        }
        Ok((self.end - self.start).min(n))
    }

    /// One read on this thread, into the free end of the buffer (made room for first).
    fn read_direct(&mut self) -> io::Result<()> {
        if self.end == self.buf.len() {
            let have = self.end - self.start;
            if have == self.buf.len() {
                // Full of real data: grow by at most doubling, and never past what is asked.
                // A fresh zeroed allocation (calloc) is cheaper than `resize`'s fill.
                let grown = self.buf.len().saturating_mul(2).max(INITIAL);
                let mut bigger = vec![0u8; grown];
                bigger[..have].copy_from_slice(&self.buf[self.start..self.end]);
                self.buf = bigger;
            } else {
                self.buf.copy_within(self.start..self.end, 0);
            }
            self.start = 0;
            self.end = have;
        }
        let Source::Direct(reader) = &mut self.source else {
            return Ok(());
        };
        let Some(free) = self.buf.get_mut(self.end..) else {
            self.eof = true;
            return Ok(());
        };
        match reader.read(free) {
            Ok(0) => self.eof = true,
            Ok(k) => self.end += k.min(free.len()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Takes the read-ahead thread's next chunk and puts the unconsumed bytes in front of its data
    /// (or, when they do not fit the room there, its data after them).
    fn take_chunk(&mut self) -> io::Result<()> {
        let Source::Ahead { chunks, spent } = &self.source else {
            return Ok(());
        };
        let mut chunk = match chunks.recv() {
            Ok(Ok(chunk)) => chunk,
            Ok(Err(e)) => {
                self.eof = true;
                return Err(e);
            }
            // The thread ended after the last chunk.
            Err(_) => {
                self.eof = true;
                return Ok(());
            }
        };
        let data = chunk.len().saturating_sub(ROOM);
        if data == 0 {
            self.eof = true;
            let _ = spent.send(chunk);
            return Ok(());
        }
        let have = self.end - self.start;
        if have <= ROOM {
            chunk[ROOM - have..ROOM].copy_from_slice(&self.buf[self.start..self.end]);
            let old = std::mem::replace(&mut self.buf, chunk);
            if old.capacity() == ROOM + CHUNK {
                let _ = spent.send(old);
            }
            self.start = ROOM - have;
            self.end = ROOM + data;
        } else {
            // A block longer than the room: gather it in a buffer of its own, grown by at most
            // doubling like the direct path's, so its size is paid for by data really read.
            let need = have + data;
            if self.start + need > self.buf.len() {
                if need <= self.buf.len() {
                    self.buf.copy_within(self.start..self.end, 0);
                } else {
                    let mut bigger = vec![0u8; need.max(self.buf.len().saturating_mul(2))];
                    bigger[..have].copy_from_slice(&self.buf[self.start..self.end]);
                    self.buf = bigger;
                }
                self.start = 0;
                self.end = have;
            }
            self.buf[self.end..self.end + data].copy_from_slice(&chunk[ROOM..]);
            self.end += data;
            let _ = spent.send(chunk);
        }
        Ok(())
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

    /// Walks `data` through an input with blocks of the given sizes, checking every byte and offset.
    fn walk<R: Read>(input: &mut Input<R>, data: &[u8], sizes: &[usize]) {
        let mut at = 0usize;
        for &n in sizes.iter().cycle() {
            let want = n.min(data.len() - at);
            assert_eq!(input.fill(n).unwrap(), want, "fill({n}) at {at}");
            assert_eq!(input.offset(), at as u64);
            assert!(input.data()[..want] == data[at..at + want], "bytes at {at}");
            input.consume(want);
            at += want;
            if at == data.len() {
                break;
            }
        }
        assert_eq!(input.fill(1).unwrap(), 0);
    }

    #[test]
    fn read_ahead_gives_the_bytes_and_offsets_of_a_direct_read() {
        let data: Vec<u8> = (0..3 * CHUNK as u32 + 12_345)
            .map(|i| (i * 7 + i / 251) as u8)
            .collect();
        // Small blocks straddle chunk ends (the tail goes into the room of the next chunk); blocks
        // longer than the room and than a chunk take the gathering path.
        for sizes in [
            &[28usize, 352, 4, 60_000][..],
            &[ROOM + 1, 17][..],
            &[CHUNK + ROOM + 3][..],
            &[1][..],
        ] {
            let mut ahead = Input::read_ahead(io::Cursor::new(data.clone()));
            walk(&mut ahead, &data, sizes);
            let mut direct = Input::new(&data[..]);
            walk(&mut direct, &data, sizes);
        }
    }

    #[test]
    fn read_ahead_growth_is_bounded_and_errors_arrive() {
        let mut input = Input::read_ahead(io::Cursor::new(vec![7u8; 100]));
        assert_eq!(input.fill(1 << 30).unwrap(), 100);
        assert!(input.capacity() <= ROOM + CHUNK, "{}", input.capacity());

        /// Gives 10 bytes, then fails.
        struct Failing(bool);
        impl Read for Failing {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                if std::mem::replace(&mut self.0, true) {
                    return Err(io::Error::other("disk on fire"));
                }
                out[..10].fill(1);
                Ok(10)
            }
        }
        let mut input = Input::read_ahead(Failing(false));
        assert_eq!(input.fill(10).unwrap(), 10);
        let err = input.fill(11).unwrap_err();
        assert_eq!(err.to_string(), "disk on fire");
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
