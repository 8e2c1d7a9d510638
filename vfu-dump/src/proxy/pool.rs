//! A pool of chunk buffers shared by every forwarding thread and the recorder.
//!
//! A forwarder receives into a pool buffer, hands a second reference to the very same buffer to the
//! recorder, forwards from its own reference and drops it: the tap costs no copy and, once the pool
//! has grown to what the traffic needs, no allocation (cloning an `Arc` allocates nothing). The
//! recorder gives its reference back when it has written the bytes; a buffer is taken again only
//! once nobody else holds it.
//!
//! The pool itself never makes anyone wait: a forwarder blocked in `recvmsg` on an idle connection
//! holds a buffer, so a bound on buffers would be a bound on connections. What bounds memory is the
//! recorder's channel ([`super::RECORDER_QUEUE`] chunks): when it is full, the forwarder waits for
//! the recorder, the capture's backpressure (see the module documentation of [`super`]). Beyond
//! [`KEEP`] free buffers, returned ones are freed.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The size of one chunk buffer: the most one `recvmsg` reads. A UNIX stream socket rarely holds
/// more than its 208 KiB default send buffer, so one read usually empties it.
pub(crate) const CHUNK: usize = 256 << 10;

/// How many free buffers are kept for reuse.
pub(crate) const KEEP: usize = 64;

/// A chunk buffer of [`CHUNK`] bytes.
pub(crate) type Buf = Arc<Vec<u8>>;

/// The pool.
pub(crate) struct Pool {
    free: Mutex<Vec<Buf>>,
}

impl Pool {
    pub(crate) fn new() -> Self {
        Pool {
            free: Mutex::new(Vec::with_capacity(KEEP)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Buf>> {
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A buffer nobody else holds (contents unspecified).
    pub(crate) fn take(&self) -> Buf {
        let mut f = self.lock();
        // A buffer given back by the recorder may still be held by its forwarder for a moment (the
        // count only goes down).
        if let Some(i) = f.iter().rposition(|b| Arc::strong_count(b) == 1) {
            return f.swap_remove(i);
        }
        drop(f);
        // Zeroed memory comes from the kernel untouched: only the bytes a read fills cost resident
        // memory.
        Arc::new(vec![0; CHUNK])
    }

    /// Gives a reference back.
    pub(crate) fn put(&self, buf: Buf) {
        debug_assert_eq!(buf.len(), CHUNK);
        let mut f = self.lock();
        if f.len() < KEEP {
            f.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_buffers() {
        let p = Pool::new();
        let a = p.take();
        let ptr = a.as_ptr();
        let shared = Arc::clone(&a);
        p.put(a);
        // Still held elsewhere: not handed out.
        let b = p.take();
        assert_ne!(b.as_ptr(), ptr);
        drop(shared);
        let c = p.take();
        assert_eq!(c.as_ptr(), ptr);
        assert_eq!(c.len(), CHUNK);
    }
}
