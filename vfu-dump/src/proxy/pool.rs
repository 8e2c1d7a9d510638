//! A bounded pool of chunk buffers shared by every forwarding thread and the recorder.
//!
//! A forwarder receives into a pool buffer, forwards from it, then hands the very same buffer to the
//! recorder and takes another one: the tap costs no copy and, once the pool has grown to what the
//! traffic needs, no allocation. The recorder gives buffers back when it has written their bytes.
//! When every buffer is out (the recorder is behind, which means the capture's disk is), `take`
//! waits: that is the capture's backpressure, the one place where recording may slow forwarding
//! (see the module documentation of [`super`]).

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// The size of one chunk buffer: the most one `recvmsg` reads. A UNIX stream socket rarely holds
/// more than its 208 KiB default send buffer, so one read usually empties it.
pub(crate) const CHUNK: usize = 256 << 10;

/// How many chunk buffers may exist at once.
pub(crate) const MAX_BUFFERS: usize = 64;

struct Free {
    buffers: Vec<Vec<u8>>,
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

    /// A buffer of [`CHUNK`] bytes (contents unspecified), waiting while all are in use.
    pub(crate) fn take(&self) -> Vec<u8> {
        let mut f = lock(&self.free);
        loop {
            if let Some(b) = f.buffers.pop() {
                return b;
            }
            if f.allocated < MAX_BUFFERS {
                f.allocated += 1;
                drop(f);
                // Zeroed memory comes from the kernel untouched: only the bytes a read fills cost
                // resident memory.
                return vec![0; CHUNK];
            }
            f.waiting += 1;
            f = self.ready.wait(f).unwrap_or_else(PoisonError::into_inner);
            f.waiting -= 1;
        }
    }

    /// Gives a buffer back.
    pub(crate) fn put(&self, buf: Vec<u8>) {
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
        p.put(a);
        let b = p.take();
        assert_eq!(b.as_ptr(), ptr);
        assert_eq!(b.len(), CHUNK);
    }
}
