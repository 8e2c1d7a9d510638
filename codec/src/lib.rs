#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
//! # vfu-codec
//!
//! Zero-copy, allocation-free wire types for the **vfio-user** protocol (a VMM talking to a device
//! emulated in another process, over a UNIX socket) and for **VDUSE** (the Linux kernel talking to a
//! userspace virtio device daemon).
//!
//! The crate is `no_std`, has no `unsafe` code and never allocates while decoding: it runs in firmware
//! and device emulators as well as in the `vfu-dump` tool.
//!
//! ## Byte order
//!
//! The current vfio-user spec says messages are in host byte order; drafts up to 0.9.1 said
//! little-endian. Every known deployment is little-endian, so **all vfio-user wire types here are
//! little-endian byte-order types** (zerocopy's `little_endian::U32` and friends, alignment 1): a view
//! can be taken over any byte buffer at any alignment, and a big-endian host decodes a little-endian
//! peer correctly. VDUSE never leaves the machine, so its types are native-endian, as the kernel's.
//!
//! ## Layers
//!
//! - [`wire`]: the field tables every wire struct carries ([`wire::WireStruct::FIELDS`]).
//! - [`header`]: the 16-byte header, [`Command`] and the flag bits.
//! - [`vfio`]: every command's request and reply body, the VERSION capabilities, the region capability
//!   chain, IO_FDS entries, DEVICE_FEATURE data and the migration state machine.
//! - [`message`]: [`decode`] (bytes + direction → [`Message`]) and the encoders.
//! - [`frame`]: splitting a byte stream into messages.
//! - [`vduse`]: VDUSE requests, responses and ioctls.
//! - [`capture`]: the project's capture format (pcapng, link type 252): its conventions and a no-alloc
//!   encoder of its blocks.
//!
//! ## Example: emit a DMA_MAP and parse it back
//!
//! ```
//! use vfu_codec::{decode, encode, Body, Command, Direction, Header};
//! use vfu_codec::vfio::{DmaMap, VFIO_USER_F_DMA_REGION_READ, VFIO_USER_F_DMA_REGION_WRITE};
//!
//! let map = DmaMap::new(VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE, 0, 0x1_0000_0000, 0x20_0000);
//! let mut buf = [0u8; 64];
//! let n = encode(&Header::command(7, Command::DMA_MAP), &Body::DmaMap(&map), &mut buf).unwrap();
//! assert_eq!(n, 48); // 16-byte header + 32-byte body; msg_size is filled in
//!
//! let msg = decode(&buf[..n], Direction::ClientToServer).unwrap();
//! assert_eq!(msg.command(), Command::DMA_MAP);
//! assert_eq!(msg.header.msg_size.get(), 48);
//! let Body::DmaMap(m) = msg.body else { panic!("not a DMA_MAP") };
//! assert_eq!(m.address.get(), 0x1_0000_0000);
//! assert_eq!(m.argsz.get(), 32);
//!
//! // A short message is an error that names the offset and the rule.
//! let err = decode(&buf[..40], Direction::ClientToServer).unwrap_err();
//! assert_eq!(err.rule.id(), "msg-truncated");
//! assert_eq!(err.needed(), Some(8));
//! ```

#[cfg(feature = "alloc")]
extern crate alloc;

#[doc(hidden)]
pub use zerocopy as __zerocopy;

pub mod capture;
pub mod errno;
pub mod error;
pub mod frame;
pub mod header;
pub mod message;
pub mod vduse;
pub mod vfio;
pub mod wire;

pub use error::{DecodeError, EncodeError, Rule};
pub use header::{Command, HEADER_SIZE, Header, MessageType};
#[cfg(feature = "alloc")]
pub use message::encode_to_vec;
pub use message::{
    Argsz, Body, DataKind, Direction, FeatureData, Message, Part, VersionBody, decode, encode,
    encode_exact, encode_vec, encode_with,
};
