//! The migration v2 state machine (§3). (Transition logic being written.)

use crate::wire::{Named, named};

/// `enum vfio_device_mig_state` names.
pub const MIG_STATE_NAMES: &[Named] = &[
    named(0, "ERROR"),
    named(1, "STOP"),
    named(2, "RUNNING"),
    named(3, "STOP_COPY"),
    named(4, "RESUMING"),
    named(5, "RUNNING_P2P"),
    named(6, "PRE_COPY"),
    named(7, "PRE_COPY_P2P"),
];
