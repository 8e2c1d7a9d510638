//! What commands change on the server: the live DMA windows, dirty-page logging and the migration
//! state, kept in the order the commands were sent on the connection.
//!
//! The server processes commands in the order they arrive (§1 rule 7), so a command takes effect when
//! it is seen, before its reply: a DMA_UNMAP pipelined ahead of DMA_MAPs of its pieces frees the range
//! for them, as QEMU's memory re-layouts expect. Each command that changes something stays in a
//! journal until it and every command before it are answered. An error reply marks it refused and the
//! state is rebuilt from the last point where everything was answered ([`Journal::base`]), applying
//! the journal again without it: later commands then meet the state the server gave them.
//!
//! Nothing here allocates once the vectors have grown to the session's size: a rebuild copies into
//! the existing window table. At most [`JOURNAL_MAX`] commands stay unsettled, so that one error
//! reply costs at most as much as that many commands.

use std::collections::VecDeque;

use vfu_codec::vfio::migration::{MigState, Support, transition};

use crate::validate::types::Profile;

/// Most commands kept unsettled. A refusal costs a rebuild of the state over them, so this bounds
/// what one error reply costs to that of this many commands; real clients pipeline far fewer (QEMU's
/// memory re-layouts: under ten).
pub(super) const JOURNAL_MAX: usize = 64;

/// A live DMA window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Window {
    pub(super) addr: u64,
    /// One past the last byte (saturated at `u64::MAX`).
    pub(super) end: u64,
    pub(super) offset: u64,
    /// READ and WRITE bits of DMA_MAP's flags.
    pub(super) prot: u32,
    pub(super) fd: bool,
    /// The DMA_MAP that created it.
    pub(super) index: u64,
}

/// How a DMA_MAP meets the live windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Overlap {
    None,
    /// The same window again (libvfio-user treats it as a no-op).
    Exact,
    Partial,
}

/// The state commands change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Tracked {
    /// Sorted by address, never overlapping.
    pub(super) windows: Vec<Window>,
    /// The page size of the dirty-page logging in progress.
    pub(super) logging: Option<u64>,
    /// The migration state, if known.
    pub(super) mig: Option<MigState>,
}

impl Tracked {
    /// A freshly started device: nothing mapped, no logging, RUNNING.
    pub(super) fn new() -> Self {
        Tracked {
            windows: Vec::new(),
            logging: None,
            mig: Some(MigState::RUNNING),
        }
    }

    /// The first live window that overlaps `[addr, end)`.
    pub(super) fn overlapping(&self, addr: u64, end: u64) -> Option<&Window> {
        let i = self.windows.partition_point(|w| w.end <= addr);
        self.windows.get(i).filter(|w| w.addr < end)
    }

    /// How a new window `w` meets the live ones, and the one it meets first.
    pub(super) fn overlap(&self, w: &Window) -> (Overlap, Option<&Window>) {
        match self.overlapping(w.addr, w.end) {
            None => (Overlap::None, None),
            Some(o)
                if Window {
                    index: o.index,
                    ..*w
                } == *o =>
            {
                (Overlap::Exact, Some(o))
            }
            Some(o) => (Overlap::Partial, Some(o)),
        }
    }

    /// The live window that starts at `addr` and ends at `addr + size`.
    pub(super) fn exact(&self, addr: u64, size: u64) -> Option<usize> {
        self.windows
            .iter()
            .position(|w| w.addr == addr && w.end == addr.saturating_add(size))
    }

    /// Applies `op` as the server would, given whether it was accepted, refused or is still
    /// unanswered; says what it did.
    fn apply(&mut self, op: Op, status: Status, p: Profile, support: Support) -> Outcome {
        if status == Status::Refused {
            return match op {
                // The uAPI's rule for a failed combined transition: the device may have stopped in
                // any state along the path. A refused single arc (or a forbidden one, refused before
                // any step) leaves it where it was.
                Op::MigSet(to) => match self.mig.map(|from| transition(from, to, support)) {
                    Some(Ok(path)) if path.as_slice().len() > 1 => {
                        self.mig = None;
                        Outcome::Applied
                    }
                    _ => Outcome::NoEffect,
                },
                _ => Outcome::NoEffect,
            };
        }
        match op {
            Op::Map(w) => match self.overlap(&w) {
                (Overlap::None, _) => {
                    let i = self.windows.partition_point(|x| x.addr < w.addr);
                    self.windows.insert(i, w);
                    Outcome::Applied
                }
                // An overlapping map must be refused; one accepted anyway is reported, not kept.
                (o, Some(with)) => Outcome::Clash(o, with.index),
                (_, None) => Outcome::NoEffect,
            },
            Op::Unmap { addr, size } => match self.exact(addr, size) {
                Some(i) => {
                    self.windows.remove(i);
                    Outcome::Applied
                }
                None => Outcome::NoEffect,
            },
            Op::UnmapAll => {
                self.windows.clear();
                Outcome::Applied
            }
            // libvfio-user refuses a START with another page size while logging runs.
            Op::LogStart(pg)
                if status == Status::Pending
                    && p == Profile::LibvfioUser
                    && self.logging.is_some_and(|q| q != pg) =>
            {
                Outcome::NoEffect
            }
            Op::LogStart(pg) => {
                self.logging = Some(pg);
                Outcome::Applied
            }
            Op::LogStop => {
                self.logging = None;
                Outcome::Applied
            }
            Op::MigSet(to) => {
                let from = self.mig.unwrap_or(to);
                if status == Status::Accepted || transition(from, to, support).is_ok() {
                    self.mig = Some(to);
                    Outcome::Applied
                } else {
                    Outcome::NoEffect
                }
            }
            Op::MigSeen(Some(s)) => {
                self.mig = Some(s);
                Outcome::Applied
            }
            Op::MigSeen(None) => Outcome::NoEffect,
            Op::Reset => {
                // libvfio-user's reset leaves the migration state alone, but for ERROR.
                if p != Profile::LibvfioUser || self.mig == Some(MigState::ERROR) {
                    self.mig = Some(MigState::RUNNING);
                }
                Outcome::Applied
            }
        }
    }
}

/// What a command does to [`Tracked`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    /// DMA_MAP: the window goes live unless it overlaps one.
    Map(Window),
    /// DMA_UNMAP of exactly this window.
    Unmap { addr: u64, size: u64 },
    /// DMA_UNMAP with UNMAP_ALL.
    UnmapAll,
    /// DMA_LOGGING_START SET with this page size.
    LogStart(u64),
    /// DMA_LOGGING_STOP SET.
    LogStop,
    /// MIG_DEVICE_STATE SET.
    MigSet(MigState),
    /// MIG_DEVICE_STATE GET: the state its reply reports, once it has come.
    MigSeen(Option<MigState>),
    /// DEVICE_RESET.
    Reset,
}

/// Whether a journalled command was answered, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Status {
    Pending,
    Accepted,
    Refused,
}

/// What a command did when it was last applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    Applied,
    NoEffect,
    /// A DMA_MAP that met the live window mapped by the given message.
    Clash(Overlap, u64),
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    seq: u64,
    op: Op,
    status: Status,
    outcome: Outcome,
}

/// The commands that changed something and are not yet settled, over the state before them.
#[derive(Debug)]
pub(super) struct Journal {
    /// The state after every command up to the oldest one still unanswered.
    base: Tracked,
    entries: VecDeque<Entry>,
    next: u64,
}

impl Journal {
    pub(super) fn new() -> Self {
        Journal {
            base: Tracked::new(),
            entries: VecDeque::new(),
            next: 0,
        }
    }

    /// Applies a new command's `op` to `now` and keeps it; returns its sequence number.
    pub(super) fn record(
        &mut self,
        now: &mut Tracked,
        op: Op,
        status: Status,
        p: Profile,
        support: Support,
    ) -> u64 {
        let seq = self.next;
        self.next += 1;
        let outcome = now.apply(op, status, p, support);
        self.entries.push_back(Entry {
            seq,
            op,
            status,
            outcome,
        });
        if self.entries.len() > JOURNAL_MAX {
            // Past the bound (an answer that never came, or a client with very many commands in
            // flight) the oldest counts as settled as it stands: a refusal of it is not undone.
            let e = self.entries.pop_front().expect("not empty");
            self.base.apply(e.op, e.status, p, support);
        }
        self.fold(p, support);
        seq
    }

    /// What command `seq` did when it was last applied (`None` once it is settled and folded).
    pub(super) fn outcome(&self, seq: u64) -> Option<Outcome> {
        self.find(seq).map(|i| self.entries[i].outcome)
    }

    /// Whether command `seq`, as the state stands now, was one the server had to refuse: a map
    /// onto a live window, an unmap of nothing, a transition the state machine forbids.
    pub(super) fn moot(&self, seq: u64) -> bool {
        self.find(seq).is_some_and(|i| {
            let e = &self.entries[i];
            !matches!(e.op, Op::MigSeen(_)) && e.outcome != Outcome::Applied
        })
    }

    /// The state after every command up to the oldest one still unanswered.
    pub(super) fn base(&self) -> &Tracked {
        &self.base
    }

    /// Command `seq` was answered; `seen` replaces its op with what the reply told (a GET's state).
    /// Rebuilds `now` when that changes what the command did.
    pub(super) fn settle(
        &mut self,
        now: &mut Tracked,
        seq: u64,
        status: Status,
        seen: Option<Op>,
        p: Profile,
        support: Support,
    ) {
        let Some(i) = self.find(seq) else { return };
        let e = &mut self.entries[i];
        let changes = match (status, e.op) {
            _ if seen.is_some() => true,
            (Status::Refused, Op::MigSet(_)) => true,
            (Status::Refused, _) => e.outcome == Outcome::Applied,
            // Accepted: only these take effect whatever the state said before.
            (_, Op::LogStart(_) | Op::MigSet(_)) => e.outcome != Outcome::Applied,
            _ => false,
        };
        e.status = status;
        if let Some(op) = seen {
            e.op = op;
        }
        if changes {
            now.clone_from(&self.base);
            for e in &mut self.entries {
                e.outcome = now.apply(e.op, e.status, p, support);
            }
        }
        self.fold(p, support);
    }

    /// Moves the answered commands at the front into `base`.
    fn fold(&mut self, p: Profile, support: Support) {
        while self
            .entries
            .front()
            .is_some_and(|e| e.status != Status::Pending)
        {
            let e = self.entries.pop_front().expect("not empty");
            self.base.apply(e.op, e.status, p, support);
        }
    }

    fn find(&self, seq: u64) -> Option<usize> {
        self.entries.binary_search_by_key(&seq, |e| e.seq).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(addr: u64, size: u64, index: u64) -> Window {
        Window {
            addr,
            end: addr + size,
            offset: 0,
            prot: 3,
            fd: true,
            index,
        }
    }

    const SUPPORT: Support = Support {
        pre_copy: true,
        p2p: false,
    };

    /// `now` after every settle equals a replay of the settled commands alone, in order.
    #[test]
    fn a_refused_unmap_in_a_burst_puts_its_window_back_and_the_maps_clash() {
        let p = Profile::Spec;
        let mut j = Journal::new();
        let mut now = Tracked::new();
        let a = j.record(
            &mut now,
            Op::Map(window(0, 0x4000, 0)),
            Status::Pending,
            p,
            SUPPORT,
        );
        j.settle(&mut now, a, Status::Accepted, None, p, SUPPORT);
        let u = j.record(
            &mut now,
            Op::Unmap {
                addr: 0,
                size: 0x4000,
            },
            Status::Pending,
            p,
            SUPPORT,
        );
        let m1 = j.record(
            &mut now,
            Op::Map(window(0, 0x2000, 2)),
            Status::Pending,
            p,
            SUPPORT,
        );
        let m2 = j.record(
            &mut now,
            Op::Map(window(0x2000, 0x2000, 3)),
            Status::Pending,
            p,
            SUPPORT,
        );
        assert_eq!(
            now.windows,
            vec![window(0, 0x2000, 2), window(0x2000, 0x2000, 3)]
        );
        assert_eq!(j.outcome(m1), Some(Outcome::Applied));
        j.settle(&mut now, u, Status::Refused, None, p, SUPPORT);
        assert_eq!(now.windows, vec![window(0, 0x4000, 0)]);
        assert_eq!(j.outcome(m1), Some(Outcome::Clash(Overlap::Partial, 0)));
        assert_eq!(j.outcome(m2), Some(Outcome::Clash(Overlap::Partial, 0)));
        j.settle(&mut now, m1, Status::Refused, None, p, SUPPORT);
        j.settle(&mut now, m2, Status::Refused, None, p, SUPPORT);
        assert!(j.entries.is_empty());
        assert_eq!(j.base, now);
    }

    #[test]
    fn a_refused_transition_leaves_the_state_or_loses_it_on_a_combined_path() {
        let p = Profile::Spec;
        let mut j = Journal::new();
        let mut now = Tracked::new();
        // RUNNING -> STOP, a single arc: refused, still RUNNING.
        let s = j.record(
            &mut now,
            Op::MigSet(MigState::STOP),
            Status::Pending,
            p,
            SUPPORT,
        );
        assert_eq!(now.mig, Some(MigState::STOP));
        j.settle(&mut now, s, Status::Refused, None, p, SUPPORT);
        assert_eq!(now.mig, Some(MigState::RUNNING));
        // RUNNING -> STOP_COPY goes through STOP: refused, the device may be in either.
        let s = j.record(
            &mut now,
            Op::MigSet(MigState::STOP_COPY),
            Status::Pending,
            p,
            SUPPORT,
        );
        j.settle(&mut now, s, Status::Refused, None, p, SUPPORT);
        assert_eq!(now.mig, None);
        // A GET's reply says where it is.
        let g = j.record(&mut now, Op::MigSeen(None), Status::Pending, p, SUPPORT);
        j.settle(
            &mut now,
            g,
            Status::Accepted,
            Some(Op::MigSeen(Some(MigState::STOP))),
            p,
            SUPPORT,
        );
        assert_eq!(now.mig, Some(MigState::STOP));
    }

    #[test]
    fn the_journal_is_bounded() {
        let p = Profile::Spec;
        let mut j = Journal::new();
        let mut now = Tracked::new();
        let first = j.record(&mut now, Op::LogStart(4096), Status::Pending, p, SUPPORT);
        for _ in 0..JOURNAL_MAX + 10 {
            j.record(&mut now, Op::MigSeen(None), Status::Pending, p, SUPPORT);
        }
        assert_eq!(j.entries.len(), JOURNAL_MAX);
        // The first was folded as it stood: its refusal, too late, changes nothing.
        assert_eq!(j.outcome(first), None);
        j.settle(&mut now, first, Status::Refused, None, p, SUPPORT);
        assert_eq!(now.logging, Some(4096));
        assert_eq!(j.base.logging, Some(4096));
    }
}
