//! The vfio-user command bodies: one module per group of commands, each struct citing its spec section.
//!
//! All fields are little-endian byte-order types with alignment 1 (see the crate docs on byte order), so a
//! view can be taken over any socket buffer.

pub mod caps;
pub mod device;
pub mod dma;
pub mod feature;
pub mod migration;
pub mod rw;

pub use device::*;
pub use dma::*;
pub use feature::*;
pub use rw::*;
