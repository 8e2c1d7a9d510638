//! VDUSE: the control messages a userspace virtio device daemon reads and writes on `/dev/vduse/$NAME`,
//! and the ioctls on `/dev/vduse/control` and on the device node (`<linux/vduse.h>`).
//!
//! The kernel hands the daemon one [`VduseDevRequest`] (`struct vduse_dev_request`) per `read(2)` and
//! takes one [`VduseDevResponse`] (`struct vduse_dev_response`) per `write(2)`; both are exactly
//! [`VDUSE_MSG_SIZE`] (152) bytes. Their C union is kept as raw bytes (`payload`); [`RequestBody`] and
//! [`ResponseBody`] are the typed views chosen by the request `type`.
//!
//! ## Layout
//!
//! VDUSE never leaves the machine, so every field is **native-endian** (zerocopy's `native_endian`
//! types, which are the `little_endian` types on a little-endian host). The zerocopy types have
//! alignment 1, so the C compiler's natural-alignment padding is spelled out as explicit `pad` fields
//! (shown as [`Show::Reserved`](crate::wire::Show::Reserved)). The layouts are those of LP64
//! targets and 32-bit Arm (EABI), where a `__u64` is 8-byte aligned; `tests/layout.rs` compares every
//! size and offset with the C compiler applied to the real header.
//!
//! ## Modules
//!
//! The items below are all re-exported here (`vfu_codec::vduse::…`); they live in `structs.rs` (the
//! wire structs and the views of their unions), `message.rs` (requests and responses: decode, encode)
//! and `ioctl.rs` (ioctl numbers and arguments).
//!
//! ## Names
//!
//! Rust types are the C struct names in CamelCase (`struct vduse_vq_info` → [`VduseVqInfo`]) and fields
//! keep their C names, except:
//!
//! - `type` (a Rust keyword) of `struct vduse_dev_request` is `req_type`;
//! - the anonymous union of `vduse_dev_request` / `vduse_dev_response` is the raw `payload: [u8; 128]`
//!   (its C member spanning all of it is `__u32 padding[32]`);
//! - the anonymous `split`/`packed` union of `vduse_vq_state` / `vduse_vq_info` is the raw
//!   `state: [u8; 8]` (the size of its larger member, `packed`), read through `split()` and `packed()`;
//! - `pad` fields are alignment padding that C leaves unnamed.
//!
//! ## Example: answer a GET_VQ_STATE request
//!
//! ```
//! use vfu_codec::vduse::{
//!     decode_request, decode_response, encode_request, encode_response, RequestBody, ResponseBody,
//!     VduseVqState, VDUSE_REQ_RESULT_OK,
//! };
//!
//! // What the kernel would hand us (built here with the encoder).
//! let mut buf = [0u8; 152];
//! let ask = VduseVqState::new_split(3, 0);
//! encode_request(42, &RequestBody::GetVqState(&ask), &mut buf).unwrap();
//!
//! let req = decode_request(&buf).unwrap();
//! let RequestBody::GetVqState(vq) = req.body else { panic!("not GET_VQ_STATE") };
//! assert_eq!(vq.index.get(), 3);
//!
//! let state = VduseVqState::new_split(vq.index.get(), 17);
//! let mut out = [0u8; 152];
//! let n = encode_response(req.request_id(), VDUSE_REQ_RESULT_OK, &ResponseBody::GetVqState(&state), &mut out).unwrap();
//! assert_eq!(n, 152);
//! let resp = decode_response(&out).unwrap();
//! assert_eq!(resp.request_id.get(), 42);
//! assert_eq!(resp.vq_state().split().avail_index.get(), 17);
//!
//! // Anything but 152 bytes is refused, naming the rule.
//! assert_eq!(decode_request(&buf[..100]).unwrap_err().rule.id(), "vduse-size");
//! ```

mod consts;
mod ioctl;
mod message;
mod structs;
#[cfg(test)]
mod tests;

pub use consts::*;
pub use ioctl::*;
pub use message::*;
pub use structs::*;
