//! DEVICE_GET_INFO (§2.4), DEVICE_GET_REGION_INFO and its capability chain (§2.5),
//! DEVICE_GET_REGION_IO_FDS (§2.6), DEVICE_GET_IRQ_INFO (§2.7) and DEVICE_SET_IRQS (§2.8).
//!
//! The wire structs of each command with their constructors, the checked walk over the region
//! capability chain ([`CapIter`]), and the IO_FDS entries in either layout ([`IoFdEntries`]).

// One file per command (the capability chain beside the region info it belongs to); this file only
// gathers them, and none of them imports it.
mod chain;
mod info;
mod io_fds;
mod irq;
mod region;

#[cfg(test)]
mod tests;

pub use chain::*;
pub use info::*;
pub use io_fds::*;
pub use irq::*;
pub use region::*;
