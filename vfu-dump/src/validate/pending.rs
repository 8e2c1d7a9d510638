//! Commands waiting for their reply, in arrival order, bounded.
//!
//! A ring buffer: it grows to the largest number ever outstanding and is then reused, so steady-state
//! traffic allocates nothing. Matching a reply scans from the oldest entry, which is where the answer
//! to an in-order server almost always is.

use std::collections::VecDeque;

use super::types::MAX_PENDING;

#[derive(Debug)]
pub(crate) struct Pending<T> {
    queue: VecDeque<T>,
    /// Whether the bound was ever hit (reported once per connection).
    pub(crate) overflowed: bool,
}

impl<T> Pending<T> {
    pub(crate) fn new() -> Self {
        Pending {
            queue: VecDeque::new(),
            overflowed: false,
        }
    }

    /// Adds `item`; when [`MAX_PENDING`] are already waiting, the oldest is dropped and returned.
    pub(crate) fn push(&mut self, item: T) -> Option<T> {
        let dropped = if self.queue.len() >= MAX_PENDING {
            self.queue.pop_front()
        } else {
            None
        };
        self.queue.push_back(item);
        dropped
    }

    /// Removes and returns the oldest entry for which `pred` holds.
    pub(crate) fn take(&mut self, mut pred: impl FnMut(&T) -> bool) -> Option<T> {
        let i = self.queue.iter().position(&mut pred)?;
        self.queue.remove(i)
    }

    /// Whether some entry satisfies `pred`.
    pub(crate) fn any(&self, pred: impl FnMut(&T) -> bool) -> bool {
        self.queue.iter().any(pred)
    }

    /// Empties the queue, oldest first.
    pub(crate) fn drain(&mut self) -> std::collections::vec_deque::Drain<'_, T> {
        self.queue.drain(..)
    }
}
