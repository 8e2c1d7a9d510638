//! The migration v2 state machine (vfio-user spec §3).
//!
//! The device state carried by the MIG_DEVICE_STATE feature (§2.15, feature 2) is a
//! [`MigState`]. A SET of that feature asks the server to move the device from its current state
//! to the requested one; [`transition`] says whether that request is legal and, if it is, which
//! *direct arcs* ([`direct_arc`]) the server walks through to get there. [`Support`] holds what the
//! MIGRATION feature (§2.15, feature 1) advertised, since the optional states change the graph.
//!
//! Migration data moves with MIG_DATA_READ (§2.16) in a saving state ([`allows_mig_data_read`])
//! and MIG_DATA_WRITE (§2.17) in RESUMING ([`allows_mig_data_write`]).
//!
//! vfio-user peers never use the P2P states (RUNNING_P2P, PRE_COPY_P2P): the kernel defines them in
//! `<linux/vfio.h>` and they are modelled here only so that the table is complete and a validator
//! can tell a kernel-style request apart from garbage. With [`Support::p2p`] false (every vfio-user
//! peer) they are rejected as unsupported.
//!
//! ```
//! use vfu_codec::vfio::migration::{transition, MigState, Support};
//!
//! // What libvfio-user advertises: STOP_COPY | PRE_COPY.
//! let support = Support::from_migration_flags(1 | 4);
//! let path = transition(MigState::RUNNING, MigState::STOP_COPY, support).unwrap();
//! assert_eq!(path, [MigState::STOP, MigState::STOP_COPY]);
//! assert_eq!(path.to_string(), "STOP -> STOP_COPY");
//!
//! // Once the device is stopped and copying, it cannot go back to pre-copy.
//! assert!(transition(MigState::STOP_COPY, MigState::PRE_COPY, support).is_err());
//! ```

use core::fmt;
use core::ops::Deref;

use crate::errno::lookup;
use crate::vfio::feature::{VFIO_MIGRATION_P2P, VFIO_MIGRATION_PRE_COPY};

// The state names live beside the MIG_DEVICE_STATE wire struct whose `device_state` they name; this
// module, the state machine above that layout, re-exports them (so neither file imports the other).
pub use crate::vfio::feature::MIG_STATE_NAMES;

/// A migration device state, `enum vfio_device_mig_state` (vfio-user spec §3), as carried in the
/// `device_state` field of the MIG_DEVICE_STATE feature (§2.15).
///
/// An open type: every `u32` from the wire is representable, and values without a name (8 and
/// above) print as raw numbers. [`MigState::is_known`] tells the two apart.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MigState(pub u32);

impl MigState {
    /// 0: the device failed an arc and could not restore a valid state (vfio-user spec §3).
    ///
    /// It can never be requested, and only DEVICE_RESET (§2.13) leaves it, after which the device is
    /// RUNNING.
    pub const ERROR: MigState = MigState(0);
    /// 1: the device is stopped and does not change its own state or touch memory (vfio-user spec §3).
    pub const STOP: MigState = MigState(1);
    /// 2: the device runs normally; the initial state (vfio-user spec §3).
    pub const RUNNING: MigState = MigState(2);
    /// 3: stopped, and saving its final state through MIG_DATA_READ; in the saving group (vfio-user
    /// spec §3).
    pub const STOP_COPY: MigState = MigState(3);
    /// 4: stopped, and loading a saved state through MIG_DATA_WRITE (vfio-user spec §3).
    pub const RESUMING: MigState = MigState(4);
    /// 5: running, but not initiating peer-to-peer DMA. Kernel only: never used in vfio-user
    /// (vfio-user spec §3).
    pub const RUNNING_P2P: MigState = MigState(5);
    /// 6: running, and saving an initial copy of its state through MIG_DATA_READ; in the saving
    /// group, and only if the MIGRATION feature advertised PRE_COPY (vfio-user spec §3).
    pub const PRE_COPY: MigState = MigState(6);
    /// 7: PRE_COPY without peer-to-peer DMA; in the saving group. Kernel only: never used in
    /// vfio-user (vfio-user spec §3).
    pub const PRE_COPY_P2P: MigState = MigState(7);

    /// Every named state, in numeric order (vfio-user spec §3).
    pub const ALL: [MigState; 8] = [
        MigState::ERROR,
        MigState::STOP,
        MigState::RUNNING,
        MigState::STOP_COPY,
        MigState::RESUMING,
        MigState::RUNNING_P2P,
        MigState::PRE_COPY,
        MigState::PRE_COPY_P2P,
    ];

    /// The state's name (`STOP_COPY`) from [`MIG_STATE_NAMES`], if the value is known (vfio-user
    /// spec §3).
    pub fn name(self) -> Option<&'static str> {
        lookup(MIG_STATE_NAMES, u64::from(self.0))
    }

    /// Whether the value names a state (0–7; vfio-user spec §3).
    ///
    /// libvfio-user rejects values above 8 but lets 8 itself through (an off-by-one); validators
    /// reject everything from 8 up, as this does.
    pub const fn is_known(self) -> bool {
        self.0 < 8
    }

    /// Whether this is one of the kernel's P2P states, RUNNING_P2P or PRE_COPY_P2P, which vfio-user
    /// never uses (vfio-user spec §3).
    pub const fn is_p2p(self) -> bool {
        self.0 == Self::RUNNING_P2P.0 || self.0 == Self::PRE_COPY_P2P.0
    }

    /// The index of a known state in a table of 8; `None` from 8 up.
    const fn index(self) -> Option<usize> {
        if self.is_known() {
            Some(self.0 as usize)
        } else {
            None
        }
    }
}

impl From<u32> for MigState {
    fn from(raw: u32) -> Self {
        MigState(raw)
    }
}

impl From<MigState> for u32 {
    fn from(state: MigState) -> Self {
        state.0
    }
}

/// Prints the name and the raw value, `STOP_COPY (3)`, or `MigState(9)` for an unknown value
/// (vfio-user spec §3).
impl fmt::Debug for MigState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n} ({})", self.0),
            None => write!(f, "MigState({})", self.0),
        }
    }
}

/// Prints the name, `STOP_COPY`, or `UNKNOWN(9)` for an unknown value (vfio-user spec §3).
impl fmt::Display for MigState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "UNKNOWN({})", self.0),
        }
    }
}

/// Which optional states the device supports, from the flags of the MIGRATION feature (vfio-user
/// spec §2.15 feature 1, and §3).
///
/// STOP, RUNNING, STOP_COPY, RESUMING and ERROR are always supported. The default (both `false`)
/// is a device that advertised only `VFIO_MIGRATION_STOP_COPY`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Support {
    /// `VFIO_MIGRATION_PRE_COPY` (4): PRE_COPY is available (and PRE_COPY_P2P, if `p2p` is too;
    /// vfio-user spec §2.15 and §3).
    pub pre_copy: bool,
    /// `VFIO_MIGRATION_P2P` (2): RUNNING_P2P is available (and PRE_COPY_P2P, if `pre_copy` is too).
    /// Always `false` for a vfio-user peer; the kernel's VFIO devices may set it (vfio-user spec §3).
    pub p2p: bool,
}

impl Support {
    /// Reads the `flags` u64 of the MIGRATION feature's GET reply (vfio-user spec §2.15): bit
    /// `VFIO_MIGRATION_P2P` (2) and bit `VFIO_MIGRATION_PRE_COPY` (4). Other bits are ignored; the
    /// required `VFIO_MIGRATION_STOP_COPY` (1) is not checked here.
    pub const fn from_migration_flags(flags: u64) -> Self {
        Support {
            pre_copy: flags & VFIO_MIGRATION_PRE_COPY != 0,
            p2p: flags & VFIO_MIGRATION_P2P != 0,
        }
    }

    /// Whether `state` is a known state this device supports (vfio-user spec §3). ERROR counts as
    /// supported (a device can be in it), though it can never be requested.
    pub const fn supports(self, state: MigState) -> bool {
        match state {
            MigState::RUNNING_P2P => self.p2p,
            MigState::PRE_COPY => self.pre_copy,
            MigState::PRE_COPY_P2P => self.p2p && self.pre_copy,
            s => s.is_known(),
        }
    }
}

/// The nine direct arcs a vfio-user server implements, `(from, to)` (vfio-user spec §3). The four
/// touching PRE_COPY exist only when PRE_COPY is supported.
///
/// They are the kernel's arcs ([`DIRECT_ARCS_P2P`]) with the P2P states collapsed away: the kernel
/// goes RUNNING→RUNNING_P2P→STOP where vfio-user goes RUNNING→STOP.
pub const DIRECT_ARCS: &[(MigState, MigState)] = &[
    (MigState::RUNNING, MigState::STOP),
    (MigState::STOP_COPY, MigState::STOP),
    (MigState::RESUMING, MigState::STOP),
    (MigState::PRE_COPY, MigState::RUNNING),
    (MigState::STOP, MigState::RUNNING),
    (MigState::RUNNING, MigState::PRE_COPY),
    (MigState::STOP, MigState::STOP_COPY),
    (MigState::PRE_COPY, MigState::STOP_COPY),
    (MigState::STOP, MigState::RESUMING),
];

/// The kernel's fifteen direct arcs when P2P and PRE_COPY are both supported, `(from, to)`
/// (vfio-user spec §3, "Kernel reference"). vfio-user peers never use them; the seven touching
/// PRE_COPY or PRE_COPY_P2P exist only when PRE_COPY is supported.
pub const DIRECT_ARCS_P2P: &[(MigState, MigState)] = &[
    (MigState::PRE_COPY, MigState::PRE_COPY_P2P),
    (MigState::PRE_COPY, MigState::RUNNING),
    (MigState::PRE_COPY_P2P, MigState::PRE_COPY),
    (MigState::PRE_COPY_P2P, MigState::RUNNING_P2P),
    (MigState::PRE_COPY_P2P, MigState::STOP_COPY),
    (MigState::RESUMING, MigState::STOP),
    (MigState::RUNNING, MigState::PRE_COPY),
    (MigState::RUNNING, MigState::RUNNING_P2P),
    (MigState::RUNNING_P2P, MigState::PRE_COPY_P2P),
    (MigState::RUNNING_P2P, MigState::RUNNING),
    (MigState::RUNNING_P2P, MigState::STOP),
    (MigState::STOP, MigState::RESUMING),
    (MigState::STOP, MigState::RUNNING_P2P),
    (MigState::STOP, MigState::STOP_COPY),
    (MigState::STOP_COPY, MigState::STOP),
];

/// Whether `from → to` is a direct arc, one step the device takes by itself (vfio-user spec §3).
///
/// With `support.p2p` false (every vfio-user peer) these are the nine arcs of [`DIRECT_ARCS`]; with
/// it true, the kernel's fifteen of [`DIRECT_ARCS_P2P`]. Without `support.pre_copy`, every arc
/// touching PRE_COPY or PRE_COPY_P2P disappears. No arc leaves or enters ERROR, and unknown values
/// have none.
pub fn direct_arc(from: MigState, to: MigState, support: Support) -> bool {
    if !support.supports(from) || !support.supports(to) {
        return false;
    }
    let arcs = if support.p2p {
        DIRECT_ARCS_P2P
    } else {
        DIRECT_ARCS
    };
    arcs.contains(&(from, to))
}

/// Whether `state` is in the saving group: PRE_COPY, STOP_COPY or PRE_COPY_P2P (vfio-user spec §3).
///
/// A saving state has an open data session; a combined transition never passes through one.
pub const fn is_saving(state: MigState) -> bool {
    matches!(
        state,
        MigState::PRE_COPY | MigState::STOP_COPY | MigState::PRE_COPY_P2P
    )
}

/// Whether MIG_DATA_READ is valid in `state`: PRE_COPY or STOP_COPY, and the kernel's PRE_COPY_P2P
/// (vfio-user spec §2.16 and §3).
pub const fn allows_mig_data_read(state: MigState) -> bool {
    is_saving(state)
}

/// Whether MIG_DATA_WRITE is valid in `state`: only RESUMING (vfio-user spec §2.17 and §3).
pub const fn allows_mig_data_write(state: MigState) -> bool {
    state.0 == MigState::RESUMING.0
}

/// The states a transition passes through after its starting state, ending in the requested one
/// (vfio-user spec §3). Empty for a no-op (the state requested is the current one); one state for
/// a direct arc.
///
/// A fixed array, so it never allocates: a shortest path over 8 states has at most 7 steps.
/// It dereferences to `&[MigState]` and compares equal to arrays and slices of states.
#[derive(Clone, Copy, Eq)]
pub struct Path {
    states: [MigState; Path::CAPACITY],
    len: u8,
}

impl Path {
    /// The longest possible path: 7 steps through the 8 states of vfio-user spec §3.
    pub const CAPACITY: usize = 7;

    /// The empty path of a no-op transition (vfio-user spec §3).
    pub const fn empty() -> Self {
        Path {
            states: [MigState::ERROR; Path::CAPACITY],
            len: 0,
        }
    }

    /// The states after the starting one, in order (vfio-user spec §3).
    pub fn as_slice(&self) -> &[MigState] {
        &self.states[..usize::from(self.len)]
    }

    /// Whether this is a single direct arc (vfio-user spec §3).
    pub fn is_direct(&self) -> bool {
        self.len == 1
    }

    /// Appends a state; callers never exceed [`Path::CAPACITY`] (a shortest path visits each state
    /// at most once), and an extra state would be dropped rather than panic.
    fn push(&mut self, state: MigState) {
        if let Some(slot) = self.states.get_mut(usize::from(self.len)) {
            *slot = state;
            self.len += 1;
        }
    }
}

impl Default for Path {
    fn default() -> Self {
        Path::empty()
    }
}

impl Deref for Path {
    type Target = [MigState];
    fn deref(&self) -> &[MigState] {
        self.as_slice()
    }
}

impl<'a> IntoIterator for &'a Path {
    type Item = &'a MigState;
    type IntoIter = core::slice::Iter<'a, MigState>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl PartialEq for Path {
    fn eq(&self, other: &Path) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl core::hash::Hash for Path {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl PartialEq<[MigState]> for Path {
    fn eq(&self, other: &[MigState]) -> bool {
        self.as_slice() == other
    }
}

impl PartialEq<&[MigState]> for Path {
    fn eq(&self, other: &&[MigState]) -> bool {
        self.as_slice() == *other
    }
}

impl<const N: usize> PartialEq<[MigState; N]> for Path {
    fn eq(&self, other: &[MigState; N]) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// Prints the steps joined by arrows, `STOP -> STOP_COPY`, or `(no-op)` when empty.
impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.len == 0 {
            return f.write_str("(no-op)");
        }
        for (i, s) in self.as_slice().iter().enumerate() {
            if i > 0 {
                f.write_str(" -> ")?;
            }
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

/// Why a requested transition is illegal; the server answers EINVAL (vfio-user spec §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransitionError {
    /// A state value of 8 or more, current or requested. (libvfio-user lets 8 itself through.)
    UnknownState(MigState),
    /// ERROR was requested; it can never be, not even while the device is in it.
    ErrorRequested,
    /// The device is in ERROR, which only DEVICE_RESET (§2.13) leaves, for RUNNING.
    LeaveError,
    /// A state the MIGRATION feature did not advertise: PRE_COPY without `VFIO_MIGRATION_PRE_COPY`,
    /// or a P2P state, which a vfio-user peer never supports.
    Unsupported(MigState),
    /// STOP_COPY to PRE_COPY (or PRE_COPY_P2P): a stop-copy session cannot go back to pre-copy.
    StopCopyToPreCopy(MigState),
    /// No path over the direct arcs. Cannot happen with the arcs of §3 between supported states;
    /// here so that the search never panics.
    NoPath {
        /// The current state.
        from: MigState,
        /// The requested state.
        to: MigState,
    },
}

impl TransitionError {
    /// A short stable identifier for the rule that was broken (`mig-stop-copy-to-pre-copy`), for
    /// validators' reports (vfio-user spec §3).
    pub fn id(&self) -> &'static str {
        match self {
            TransitionError::UnknownState(_) => "mig-state-unknown",
            TransitionError::ErrorRequested => "mig-error-requested",
            TransitionError::LeaveError => "mig-leave-error",
            TransitionError::Unsupported(_) => "mig-state-unsupported",
            TransitionError::StopCopyToPreCopy(_) => "mig-stop-copy-to-pre-copy",
            TransitionError::NoPath { .. } => "mig-no-path",
        }
    }
}

impl fmt::Display for TransitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransitionError::UnknownState(s) => {
                write!(f, "unknown migration state {} (valid states are 0-7)", s.0)
            }
            TransitionError::ErrorRequested => f.write_str("the ERROR state cannot be requested"),
            TransitionError::LeaveError => {
                f.write_str("the device is in ERROR; only DEVICE_RESET leaves it")
            }
            TransitionError::Unsupported(s) => {
                write!(f, "migration state {s:?} is not supported by the device")
            }
            TransitionError::StopCopyToPreCopy(s) => {
                write!(f, "STOP_COPY cannot go back to {s}")
            }
            TransitionError::NoPath { from, to } => {
                write!(f, "no path from {from} to {to} over the direct arcs")
            }
        }
    }
}

impl core::error::Error for TransitionError {}

/// Whether a SET of MIG_DEVICE_STATE from `from` to `to` is legal, and the path the device takes
/// (vfio-user spec §3).
///
/// The rules, in the order they are checked:
/// 1. an unknown value (8 and up) is [`TransitionError::UnknownState`];
/// 2. requesting ERROR is [`TransitionError::ErrorRequested`];
/// 3. a state `support` lacks (PRE_COPY without PRE_COPY support, P2P states on a vfio-user peer)
///    is [`TransitionError::Unsupported`];
/// 4. requesting the current state is a no-op success: an empty [`Path`];
/// 5. leaving ERROR is [`TransitionError::LeaveError`]: only DEVICE_RESET (§2.13) leaves ERROR,
///    and afterwards the device is RUNNING (libvfio-user does not reset its migration state on
///    DEVICE_RESET);
/// 6. STOP_COPY to PRE_COPY or PRE_COPY_P2P is [`TransitionError::StopCopyToPreCopy`];
/// 7. otherwise the path is the shortest one over [`direct_arc`]s that has no saving-group state
///    ([`is_saving`]) as an interior node. One exception keeps an open data session open: when
///    both ends are saving states, a path that stays inside the saving group is allowed, as the
///    kernel takes PRE_COPY→PRE_COPY_P2P→STOP_COPY with P2P. (Without P2P that arc is direct, so
///    vfio-user never needs the exception.)
///
/// The search is breadth-first over 8 states in numeric order, and never allocates.
///
/// ```
/// use vfu_codec::vfio::migration::{transition, MigState, Support, TransitionError};
///
/// let support = Support { pre_copy: true, p2p: false };
/// let path = transition(MigState::RUNNING, MigState::STOP_COPY, support).unwrap();
/// assert_eq!(path, [MigState::STOP, MigState::STOP_COPY]);
///
/// assert!(transition(MigState::RUNNING, MigState::RUNNING, support).unwrap().is_empty());
/// assert_eq!(
///     transition(MigState::RUNNING, MigState::ERROR, support),
///     Err(TransitionError::ErrorRequested)
/// );
/// ```
pub fn transition(from: MigState, to: MigState, support: Support) -> Result<Path, TransitionError> {
    for s in [to, from] {
        if !s.is_known() {
            return Err(TransitionError::UnknownState(s));
        }
    }
    if to == MigState::ERROR {
        return Err(TransitionError::ErrorRequested);
    }
    for s in [to, from] {
        if !support.supports(s) {
            return Err(TransitionError::Unsupported(s));
        }
    }
    if from == to {
        return Ok(Path::empty());
    }
    if from == MigState::ERROR {
        return Err(TransitionError::LeaveError);
    }
    if from == MigState::STOP_COPY && matches!(to, MigState::PRE_COPY | MigState::PRE_COPY_P2P) {
        return Err(TransitionError::StopCopyToPreCopy(to));
    }

    let general = shortest_path(from, to, support, |s| !is_saving(s));
    let session = if is_saving(from) && is_saving(to) {
        shortest_path(from, to, support, is_saving)
    } else {
        None
    };
    match (general, session) {
        (Some(g), Some(s)) if g.len() < s.len() => Ok(g),
        (_, Some(s)) => Ok(s),
        (Some(g), None) => Ok(g),
        (None, None) => Err(TransitionError::NoPath { from, to }),
    }
}

/// Breadth-first search from `from` to `to` (both known, distinct) over the direct arcs, where a
/// state other than `from` may be passed through only if `interior` allows it. `None` if `to` is
/// unreachable.
fn shortest_path(
    from: MigState,
    to: MigState,
    support: Support,
    interior: impl Fn(MigState) -> bool,
) -> Option<Path> {
    const N: usize = MigState::ALL.len();
    let (start, goal) = (from.index()?, to.index()?);
    // prev[s] = the state `s` was reached from; `start` marks the root, `N` "not reached yet".
    let mut prev = [N; N];
    prev[start] = start;
    let mut queue = [0usize; N];
    let (mut head, mut tail) = (0, 1);
    queue[0] = start;

    while head < tail {
        let here = queue[head];
        head += 1;
        if here != start && !interior(MigState::ALL[here]) {
            continue;
        }
        for (next, state) in MigState::ALL.iter().enumerate() {
            if prev[next] != N || !direct_arc(MigState::ALL[here], *state, support) {
                continue;
            }
            prev[next] = here;
            if next == goal {
                return Some(walk_back(&prev, start, goal));
            }
            queue[tail] = next;
            tail += 1;
        }
    }
    None
}

/// Rebuilds the path to `goal` from the search's predecessor table.
fn walk_back(prev: &[usize; 8], start: usize, goal: usize) -> Path {
    // Collect goal-first, then reverse into the path.
    let mut rev = [0usize; Path::CAPACITY];
    let mut n = 0;
    let mut at = goal;
    while at != start && n < rev.len() {
        rev[n] = at;
        n += 1;
        at = prev[at];
    }
    let mut path = Path::empty();
    for &s in rev[..n].iter().rev() {
        path.push(MigState::ALL[s]);
    }
    path
}

#[cfg(test)]
mod tests;
