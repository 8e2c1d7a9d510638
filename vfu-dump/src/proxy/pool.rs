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
//! the recorder, the capture's backpressure (see the module documentation of [`super`]). Beyond a
//! few free buffers, returned ones are freed.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A small buffer: what a read of ordinary messages needs.
pub(crate) const SMALL: usize = 8 << 10;

/// A large buffer: the most one `recvmsg` reads. A UNIX stream socket rarely holds more than its
/// 208 KiB default send buffer, so one read usually empties it. Forwarders use large buffers only
/// while data comes faster than small ones take it (a read filled its buffer, or a large message is
/// under way), so that a burst of small messages pins 8 KiB per read in flight, not 256 KiB.
pub(crate) const LARGE: usize = 256 << 10;

/// How many free buffers of each size are kept for reuse.
const KEEP_SMALL: usize = 256;
const KEEP_LARGE: usize = 16;

/// A chunk buffer of [`SMALL`] or [`LARGE`] bytes.
pub(crate) type Buf = Arc<Vec<u8>>;

/// The pool.
pub(crate) struct Pool {
    small: Mutex<Vec<Buf>>,
    large: Mutex<Vec<Buf>>,
}

fn lock(m: &Mutex<Vec<Buf>>) -> MutexGuard<'_, Vec<Buf>> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Pool {
    pub(crate) fn new() -> Self {
        Pool {
            small: Mutex::new(Vec::with_capacity(KEEP_SMALL)),
            large: Mutex::new(Vec::with_capacity(KEEP_LARGE)),
        }
    }

    /// A buffer nobody else holds (contents unspecified), large or small.
    pub(crate) fn take(&self, large: bool) -> Buf {
        let (list, size) = if large {
            (&self.large, LARGE)
        } else {
            (&self.small, SMALL)
        };
        let mut f = lock(list);
        // A buffer given back by the recorder may still be held by its forwarder for a moment (the
        // count only goes down).
        if let Some(i) = f.iter().rposition(|b| Arc::strong_count(b) == 1) {
            return f.swap_remove(i);
        }
        drop(f);
        Arc::new(vec![0; size])
    }

    /// Gives a reference back. Buffers of other sizes (one-off ones) are let go.
    pub(crate) fn put(&self, buf: Buf) {
        let (list, keep) = match buf.len() {
            LARGE => (&self.large, KEEP_LARGE),
            SMALL => (&self.small, KEEP_SMALL),
            _ => return,
        };
        let mut f = lock(list);
        if f.len() < keep {
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
        let a = p.take(false);
        let ptr = a.as_ptr();
        let shared = Arc::clone(&a);
        p.put(a);
        // Still held elsewhere: not handed out.
        let b = p.take(false);
        assert_ne!(b.as_ptr(), ptr);
        drop(shared);
        let c = p.take(false);
        assert_eq!(c.as_ptr(), ptr);
        assert_eq!(c.len(), SMALL);
        assert_eq!(p.take(true).len(), LARGE);
    }
}
