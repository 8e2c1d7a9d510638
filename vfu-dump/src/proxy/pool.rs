//! A bounded pool of chunk buffers shared by every forwarding thread and the recorder.
//!
//! A forwarder receives into a pool buffer, hands a second reference to the very same buffer to the
//! recorder, forwards from its own reference and drops it: the tap costs no copy and, once the pool
//! has grown to what the traffic needs, no allocation (cloning an `Arc` allocates nothing). The
//! recorder gives its reference back when it has written the bytes; a buffer is taken again only
//! once nobody else holds it. When every buffer is out (the recorder is behind, which means the
//! capture's disk is), `take` waits: that is the capture's backpressure, the one place where
//! recording may slow forwarding (see the module documentation of [`super`]).

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// The size of one chunk buffer: the most one `recvmsg` reads. A UNIX stream socket rarely holds
/// more than its 208 KiB default send buffer, so one read usually empties it.
pub(crate) const CHUNK: usize = 256 << 10;

/// How many chunk buffers may exist at once.
pub(crate) const MAX_BUFFERS: usize = 64;

/// A chunk buffer of [`CHUNK`] bytes.
pub(crate) type Buf = Arc<Vec<u8>>;

struct Free {
    buffers: Vec<Buf>,
    /// Buffers allocated so far (in the pool or out).
    allocated: usize,
    /// Threads waiting in `take`.
    waiting: usize,
}

/// The pool.
pub(crate) struct Pool {
    free: Mutex<Free>,
    ready: Condvar,
}

fn lock(m: &Mutex<Free>) -> MutexGuard<'_, Free> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Pool {
    pub(crate) fn new() -> Self {
        Pool {
            free: Mutex::new(Free {
                buffers: Vec::with_capacity(MAX_BUFFERS),
                allocated: 0,
                waiting: 0,
            }),
            ready: Condvar::new(),
        }
    }

    /// A buffer nobody else holds (contents unspecified), waiting while all are in use.
    pub(crate) fn take(&self) -> Buf {
        let mut f = lock(&self.free);
        loop {
            // A buffer given back by the recorder may still be held by its forwarder for a moment
            // (the count only goes down).
            if let Some(i) = f.buffers.iter().rposition(|b| Arc::strong_count(b) == 1) {
                return f.buffers.swap_remove(i);
            }
            if f.allocated < MAX_BUFFERS {
                f.allocated += 1;
                drop(f);
                // Zeroed memory comes from the kernel untouched: only the bytes a read fills cost
                // resident memory.
                return Arc::new(vec![0; CHUNK]);
            }
            f.waiting += 1;
            f = self
                .ready
                .wait_timeout(f, Duration::from_millis(1))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            f.waiting -= 1;
        }
    }

    /// Gives the recorder's reference back.
    pub(crate) fn put(&self, buf: Buf) {
        debug_assert_eq!(buf.len(), CHUNK);
        let mut f = lock(&self.free);
        f.buffers.push(buf);
        if f.waiting > 0 {
            self.ready.notify_one();
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
