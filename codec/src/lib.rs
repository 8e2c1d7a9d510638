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
//! ## Example: a VERSION exchange
//!
//! ```
//! use vfu_codec::{decode, encode, Body, Command, Direction, Header, VersionBody};
//! use vfu_codec::vfio::caps::{parse_capabilities, Capabilities, Version};
//!
//! // The client offers version 0.1 and two capabilities, written as JSON without allocating.
//! let offer = Capabilities {
//!     max_msg_fds: Some(8),
//!     max_data_xfer_size: Some(1 << 20),
//!     ..Capabilities::default()
//! };
//! let mut json = [0u8; 128];
//! let len = offer.emit(&mut json).unwrap();
//! assert_eq!(&json[..len], br#"{"capabilities":{"max_msg_fds":8,"max_data_xfer_size":1048576}}"#);
//! let version = Version::new(0, 1);
//! let body = Body::Version(VersionBody::new(&version, Some(&json[..len])));
//! let mut request = [0u8; 256];
//! let n = encode(&Header::command(1, Command::VERSION), &body, &mut request).unwrap();
//! assert_eq!(n, 16 + 4 + len + 1); // header, major and minor, the JSON, its NUL
//!
//! // The server decodes it and reads the capabilities; absent ones take the spec's defaults.
//! let msg = decode(&request[..n], Direction::ClientToServer).unwrap();
//! let Body::Version(v) = msg.body else { panic!("not a VERSION") };
//! assert_eq!((v.version.major.get(), v.version.minor.get()), (0, 1));
//! let caps = parse_capabilities(v.json.unwrap_or_default()).unwrap();
//! assert_eq!((caps.effective_max_msg_fds(), caps.effective_max_dma_maps()), (8, 65535));
//!
//! // It answers with the same id, the version it speaks, and its own capabilities.
//! let answer = br#"{"capabilities":{"max_msg_fds":1,"pgsizes":4096}}"#;
//! let body = Body::Version(VersionBody::new(&version, Some(answer)));
//! let mut reply = [0u8; 256];
//! let n = encode(&Header::reply(msg.header.msg_id.get(), Command::VERSION), &body, &mut reply).unwrap();
//! let back = decode(&reply[..n], Direction::ServerToClient).unwrap();
//! assert!(back.is_reply());
//! let Body::Version(v) = back.body else { panic!("not a VERSION") };
//! assert_eq!(parse_capabilities(v.json.unwrap_or_default()).unwrap().pgsizes, Some(4096));
//! ```
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

/// The README's examples, run as doc tests so that what crates.io shows compiles and holds.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

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
