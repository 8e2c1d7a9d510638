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
//! (shown as [`Show::Reserved`]). The layouts are those of LP64 targets and 32-bit Arm (EABI), where a
//! `__u64` is 8-byte aligned; `tests/layout.rs` compares every size and offset with the C compiler
//! applied to the real header.
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

use core::fmt;

use zerocopy::native_endian::{I32, U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::error::{DecodeError, EncodeError, Rule};
use crate::wire::{FlagSpec, Layout, Named, Show, WireStruct, named};

// ---------------------------------------------------------------------------------------------------
// Constants and name tables
// ---------------------------------------------------------------------------------------------------

/// `VDUSE_BASE`: the ioctl type ("magic") of every VDUSE ioctl.
pub const VDUSE_BASE: u8 = 0x81;
/// `VDUSE_API_VERSION`: the API version of the Linux 6.1 header (0).
pub const VDUSE_API_VERSION: u64 = 0;
/// `VDUSE_NAME_MAX`: size of a device name buffer, NUL included.
pub const VDUSE_NAME_MAX: usize = 256;
/// Size of `struct vduse_dev_request` and `struct vduse_dev_response`.
pub const VDUSE_MSG_SIZE: usize = 152;
/// Size of the union at the end of a request or response (`__u32 padding[32]`).
pub const VDUSE_PAYLOAD_SIZE: usize = 128;
/// Offset of that union within a request or response.
pub const VDUSE_PAYLOAD_OFFSET: usize = 24;

/// `VDUSE_GET_VQ_STATE` (`enum vduse_req_type`): get a virtqueue's state from the daemon.
pub const VDUSE_GET_VQ_STATE: u32 = 0;
/// `VDUSE_SET_STATUS` (`enum vduse_req_type`): set the device status.
pub const VDUSE_SET_STATUS: u32 = 1;
/// `VDUSE_UPDATE_IOTLB` (`enum vduse_req_type`): re-read the mappings of an IOVA range with
/// `VDUSE_IOTLB_GET_FD`.
pub const VDUSE_UPDATE_IOTLB: u32 = 2;
/// SET_VQ_GROUP_ASID: bind a virtqueue group to an address space (API version 1; not in the 6.1 header).
pub const VDUSE_SET_VQ_GROUP_ASID: u32 = 3;

/// Request type names (`enum vduse_req_type`), for `vduse_dev_request.type`.
pub const REQUEST_TYPE_NAMES: &[Named] = &[
    named(VDUSE_GET_VQ_STATE as u64, "GET_VQ_STATE"),
    named(VDUSE_SET_STATUS as u64, "SET_STATUS"),
    named(VDUSE_UPDATE_IOTLB as u64, "UPDATE_IOTLB"),
    named(VDUSE_SET_VQ_GROUP_ASID as u64, "SET_VQ_GROUP_ASID"),
];

/// The name of a request type (`GET_VQ_STATE` …), or `None` for a type this crate does not know.
pub fn request_type_name(req_type: u32) -> Option<&'static str> {
    REQUEST_TYPE_NAMES
        .iter()
        .find(|n| n.value == u64::from(req_type))
        .map(|n| n.name)
}

/// `VDUSE_REQ_RESULT_OK`.
pub const VDUSE_REQ_RESULT_OK: u32 = 0;
/// `VDUSE_REQ_RESULT_FAILED`.
pub const VDUSE_REQ_RESULT_FAILED: u32 = 1;

/// Names of `vduse_dev_response.result`.
pub const RESULT_NAMES: &[Named] = &[
    named(VDUSE_REQ_RESULT_OK as u64, "OK"),
    named(VDUSE_REQ_RESULT_FAILED as u64, "FAILED"),
];

/// `VDUSE_ACCESS_RO`: the IOVA range is read-only for the device.
pub const VDUSE_ACCESS_RO: u8 = 1;
/// `VDUSE_ACCESS_WO`: the IOVA range is write-only for the device.
pub const VDUSE_ACCESS_WO: u8 = 2;
/// `VDUSE_ACCESS_RW`: the IOVA range is readable and writable.
pub const VDUSE_ACCESS_RW: u8 = 3;

/// Names of `vduse_iotlb_entry.perm`.
pub const IOTLB_PERM_NAMES: &[Named] = &[
    named(VDUSE_ACCESS_RO as u64, "RO"),
    named(VDUSE_ACCESS_WO as u64, "WO"),
    named(VDUSE_ACCESS_RW as u64, "RW"),
];

/// `VDUSE_IOVA_CAP_UMEM`: the IOVA range can be backed by userspace memory (`VDUSE_IOTLB_REG_UMEM`).
pub const VDUSE_IOVA_CAP_UMEM: u64 = 1;

/// Parts of `vduse_iova_info.capability`.
pub const IOVA_CAP_FLAGS: &[FlagSpec] = &[FlagSpec::bit(VDUSE_IOVA_CAP_UMEM, "UMEM")];

/// `VDUSE_EVENTFD_DEASSIGN`: `vduse_vq_eventfd.fd` value that removes the kick eventfd.
pub const VDUSE_EVENTFD_DEASSIGN: i32 = -1;

/// Virtio device status bit `ACKNOWLEDGE` (`VIRTIO_CONFIG_S_ACKNOWLEDGE`).
pub const VIRTIO_CONFIG_S_ACKNOWLEDGE: u8 = 1;
/// Virtio device status bit `DRIVER` (`VIRTIO_CONFIG_S_DRIVER`).
pub const VIRTIO_CONFIG_S_DRIVER: u8 = 2;
/// Virtio device status bit `DRIVER_OK` (`VIRTIO_CONFIG_S_DRIVER_OK`).
pub const VIRTIO_CONFIG_S_DRIVER_OK: u8 = 4;
/// Virtio device status bit `FEATURES_OK` (`VIRTIO_CONFIG_S_FEATURES_OK`).
pub const VIRTIO_CONFIG_S_FEATURES_OK: u8 = 8;
/// Virtio device status bit `NEEDS_RESET` (`VIRTIO_CONFIG_S_NEEDS_RESET`).
pub const VIRTIO_CONFIG_S_NEEDS_RESET: u8 = 0x40;
/// Virtio device status bit `FAILED` (`VIRTIO_CONFIG_S_FAILED`).
pub const VIRTIO_CONFIG_S_FAILED: u8 = 0x80;

/// Parts of the virtio device status byte (`vduse_dev_status.status`).
pub const VIRTIO_STATUS_FLAGS: &[FlagSpec] = &[
    FlagSpec::bit(VIRTIO_CONFIG_S_ACKNOWLEDGE as u64, "ACKNOWLEDGE"),
    FlagSpec::bit(VIRTIO_CONFIG_S_DRIVER as u64, "DRIVER"),
    FlagSpec::bit(VIRTIO_CONFIG_S_DRIVER_OK as u64, "DRIVER_OK"),
    FlagSpec::bit(VIRTIO_CONFIG_S_FEATURES_OK as u64, "FEATURES_OK"),
    FlagSpec::bit(VIRTIO_CONFIG_S_NEEDS_RESET as u64, "NEEDS_RESET"),
    FlagSpec::bit(VIRTIO_CONFIG_S_FAILED as u64, "FAILED"),
];

// ---------------------------------------------------------------------------------------------------
// Wire structs
// ---------------------------------------------------------------------------------------------------

crate::wire_struct! {
    /// Split virtqueue state (`struct vduse_vq_state_split`).
    pub struct VduseVqStateSplit("<linux/vduse.h> struct vduse_vq_state_split", size 2) {
        /// Available index: the next descriptor-chain head the device will read.
        avail_index: U16 = Show::Dec,
    }

    /// Packed virtqueue state (`struct vduse_vq_state_packed`).
    pub struct VduseVqStatePacked("<linux/vduse.h> struct vduse_vq_state_packed", size 8) {
        /// Last driver ring wrap counter observed by the device.
        last_avail_counter: U16 = Show::Dec,
        /// Device available index.
        last_avail_idx: U16 = Show::Dec,
        /// Device ring wrap counter.
        last_used_counter: U16 = Show::Dec,
        /// Used index.
        last_used_idx: U16 = Show::Dec,
    }

    /// Virtqueue state (`struct vduse_vq_state`): the GET_VQ_STATE member of the request and response union.
    pub struct VduseVqState("<linux/vduse.h> struct vduse_vq_state", size 12) {
        /// Virtqueue index; the only meaningful field in a request.
        index: U32 = Show::Dec,
        /// The C union `{ split; packed; }` as raw bytes: read it with `split()` or `packed()`.
        state: [u8; 8] = Show::Bytes,
    }

    /// Device status (`struct vduse_dev_status`): the SET_STATUS member of the request union.
    pub struct VduseDevStatus("<linux/vduse.h> struct vduse_dev_status", size 1) {
        /// Virtio device status bits: ACKNOWLEDGE, DRIVER, DRIVER_OK, FEATURES_OK, NEEDS_RESET, FAILED.
        status: u8 = Show::Flags(VIRTIO_STATUS_FLAGS),
    }

    /// An inclusive IOVA range `[start, last]` (`struct vduse_iova_range`): the UPDATE_IOTLB member of
    /// the request union.
    pub struct VduseIovaRange("<linux/vduse.h> struct vduse_iova_range", size 16) {
        /// First IOVA of the range.
        start: U64 = Show::Hex,
        /// Last IOVA of the range (inclusive).
        last: U64 = Show::Hex,
    }

    /// The SET_VQ_GROUP_ASID member of the request union (VDUSE API version 1): bind a virtqueue group
    /// to an address space. Not in the Linux 6.1 header; layout per the project's VDUSE wire reference.
    pub struct VduseVqGroupAsid("VDUSE API v1 SET_VQ_GROUP_ASID group/asid pair (not in <linux/vduse.h> 6.1)", size 8) {
        /// Virtqueue group.
        group: U32 = Show::Dec,
        /// Address space id.
        asid: U32 = Show::Dec,
    }

    /// A control request read from `/dev/vduse/$NAME` (`struct vduse_dev_request`).
    ///
    /// The C field `type` is called `req_type` here; the C union is the raw `payload`, viewed through
    /// [`VduseDevRequest::body`].
    pub struct VduseDevRequest("<linux/vduse.h> struct vduse_dev_request", size 152) {
        /// Request type (C name `type`): GET_VQ_STATE 0, SET_STATUS 1, UPDATE_IOTLB 2, SET_VQ_GROUP_ASID 3.
        req_type: U32 = Show::Enum(REQUEST_TYPE_NAMES),
        /// Request id, echoed in the response.
        request_id: U32 = Show::Dec,
        /// Reserved, zero.
        reserved: [U32; 4] = Show::Reserved,
        /// The C union (`vq_state`, `s`, `iova`, `padding[32]`) as raw bytes; the member in use is chosen by
        /// `req_type` and the rest is zero.
        payload: [u8; 128] = Show::Bytes,
    }

    /// A response written to `/dev/vduse/$NAME` (`struct vduse_dev_response`).
    ///
    /// The C union is the raw `payload`; for GET_VQ_STATE it holds a [`VduseVqState`]
    /// ([`VduseDevResponse::vq_state`]).
    pub struct VduseDevResponse("<linux/vduse.h> struct vduse_dev_response", size 152) {
        /// The request's `request_id`.
        request_id: U32 = Show::Dec,
        /// OK 0, FAILED 1.
        result: U32 = Show::Enum(RESULT_NAMES),
        /// Reserved, zero.
        reserved: [U32; 4] = Show::Reserved,
        /// The C union (`vq_state`, `padding[32]`) as raw bytes.
        payload: [u8; 128] = Show::Bytes,
    }

    /// VDUSE_CREATE_DEV argument, fixed part (`struct vduse_dev_config`); `config_size` bytes of
    /// configuration space (`config[]`) follow.
    pub struct VduseDevConfig("<linux/vduse.h> struct vduse_dev_config", size 336) {
        /// Device name, NUL-terminated.
        name: [u8; 256] = Show::Text,
        /// Virtio vendor id.
        vendor_id: U32 = Show::Hex,
        /// Virtio device id (1 net, 2 block, …).
        device_id: U32 = Show::Dec,
        /// Virtio feature bits the device offers.
        features: U64 = Show::Hex,
        /// Number of virtqueues.
        vq_num: U32 = Show::Dec,
        /// Allocation alignment of the virtqueues' metadata.
        vq_align: U32 = Show::Hex,
        /// Reserved, zero.
        reserved: [U32; 13] = Show::Reserved,
        /// Size of the configuration space that follows.
        config_size: U32 = Show::Dec,
    }

    /// VDUSE_IOTLB_GET_FD argument (`struct vduse_iotlb_entry`): one IOVA region `[start, last]`.
    pub struct VduseIotlbEntry("<linux/vduse.h> struct vduse_iotlb_entry", size 32) {
        /// Out: mmap offset into the returned fd.
        offset: U64 = Show::Hex,
        /// In: start of the range looked up; out: start of the region found.
        start: U64 = Show::Hex,
        /// In: last of the range looked up; out: last of the region found (inclusive).
        last: U64 = Show::Hex,
        /// Out: RO 1, WO 2, RW 3.
        perm: u8 = Show::Enum(IOTLB_PERM_NAMES),
        /// Tail padding to the struct's 8-byte alignment (unnamed in C).
        pad: [u8; 7] = Show::Reserved,
    }

    /// VDUSE_DEV_SET_CONFIG argument head (`struct vduse_config_data`); `length` bytes (`buffer[]`) follow.
    pub struct VduseConfigData("<linux/vduse.h> struct vduse_config_data", size 8) {
        /// Offset into the configuration space.
        offset: U32 = Show::Hex,
        /// Bytes to write.
        length: U32 = Show::Dec,
    }

    /// VDUSE_VQ_SETUP argument (`struct vduse_vq_config`).
    pub struct VduseVqConfig("<linux/vduse.h> struct vduse_vq_config", size 32) {
        /// Virtqueue index.
        index: U32 = Show::Dec,
        /// Largest queue size the device supports.
        max_size: U16 = Show::Dec,
        /// Reserved, zero.
        reserved: [U16; 13] = Show::Reserved,
    }

    /// VDUSE_VQ_GET_INFO argument (`struct vduse_vq_info`).
    pub struct VduseVqInfo("<linux/vduse.h> struct vduse_vq_info", size 48) {
        /// In: virtqueue index.
        index: U32 = Show::Dec,
        /// Queue size.
        num: U32 = Show::Dec,
        /// Address of the descriptor area.
        desc_addr: U64 = Show::Hex,
        /// Address of the driver area.
        driver_addr: U64 = Show::Hex,
        /// Address of the device area.
        device_addr: U64 = Show::Hex,
        /// The C union `{ split; packed; }` as raw bytes: read it with `split()` or `packed()`.
        state: [u8; 8] = Show::Bytes,
        /// Whether the driver has made the queue ready.
        ready: u8 = Show::Dec,
        /// Tail padding to the struct's 8-byte alignment (unnamed in C).
        pad: [u8; 7] = Show::Reserved,
    }

    /// VDUSE_VQ_SETUP_KICKFD argument (`struct vduse_vq_eventfd`).
    pub struct VduseVqEventfd("<linux/vduse.h> struct vduse_vq_eventfd", size 8) {
        /// Virtqueue index.
        index: U32 = Show::Dec,
        /// The kick eventfd; -1 (`VDUSE_EVENTFD_DEASSIGN`) removes it.
        fd: I32 = Show::Dec,
    }

    /// VDUSE_IOTLB_REG_UMEM and VDUSE_IOTLB_DEREG_UMEM argument (`struct vduse_iova_umem`).
    pub struct VduseIovaUmem("<linux/vduse.h> struct vduse_iova_umem", size 48) {
        /// Start of the userspace memory (page aligned).
        uaddr: U64 = Show::Hex,
        /// Start of the IOVA region.
        iova: U64 = Show::Hex,
        /// Size of the region.
        size: U64 = Show::Hex,
        /// Reserved, zero.
        reserved: [U64; 3] = Show::Reserved,
    }

    /// VDUSE_IOTLB_GET_INFO argument (`struct vduse_iova_info`).
    pub struct VduseIovaInfo("<linux/vduse.h> struct vduse_iova_info", size 48) {
        /// In: start of the range looked up; out: start of the region found.
        start: U64 = Show::Hex,
        /// In: last of the range looked up; out: last of the region found (inclusive).
        last: U64 = Show::Hex,
        /// Out: UMEM.
        capability: U64 = Show::Flags(IOVA_CAP_FLAGS),
        /// Reserved, zero.
        reserved: [U64; 3] = Show::Reserved,
    }
}

/// The layouts of every VDUSE wire struct, for tools that walk them (renderers, generators).
pub const LAYOUTS: &[Layout] = &[
    Layout::of::<VduseDevRequest>(),
    Layout::of::<VduseDevResponse>(),
    Layout::of::<VduseVqState>(),
    Layout::of::<VduseVqStateSplit>(),
    Layout::of::<VduseVqStatePacked>(),
    Layout::of::<VduseDevStatus>(),
    Layout::of::<VduseIovaRange>(),
    Layout::of::<VduseVqGroupAsid>(),
    Layout::of::<VduseDevConfig>(),
    Layout::of::<VduseIotlbEntry>(),
    Layout::of::<VduseConfigData>(),
    Layout::of::<VduseVqConfig>(),
    Layout::of::<VduseVqInfo>(),
    Layout::of::<VduseVqEventfd>(),
    Layout::of::<VduseIovaUmem>(),
    Layout::of::<VduseIovaInfo>(),
];

// Private overlays: a union member followed by the rest of the union. `transmute_ref!` checks at
// compile time that each has exactly the union's size, so the typed views below cannot fail.
macro_rules! overlay {
    ($($name:ident { $t:ty, rest $n:literal })*) => {$(
        #[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
        #[repr(C)]
        struct $name {
            member: $t,
            rest: [u8; $n],
        }
    )*};
}

overlay! {
    SplitIn8 { VduseVqStateSplit, rest 6 }
    VqStateIn128 { VduseVqState, rest 116 }
    StatusIn128 { VduseDevStatus, rest 127 }
    RangeIn128 { VduseIovaRange, rest 112 }
    GroupAsidIn128 { VduseVqGroupAsid, rest 120 }
}

fn split_view(state: &[u8; 8]) -> &VduseVqStateSplit {
    let o: &SplitIn8 = zerocopy::transmute_ref!(state);
    &o.member
}

fn packed_view(state: &[u8; 8]) -> &VduseVqStatePacked {
    zerocopy::transmute_ref!(state)
}

fn split_bytes(split: VduseVqStateSplit) -> [u8; 8] {
    zerocopy::transmute!(SplitIn8 {
        member: split,
        rest: [0; 6]
    })
}

fn packed_bytes(packed: VduseVqStatePacked) -> [u8; 8] {
    zerocopy::transmute!(packed)
}

impl VduseVqState {
    /// A split-virtqueue state: `index` and `avail_index`; the rest of the union is zero.
    pub fn new_split(index: u32, avail_index: u16) -> Self {
        VduseVqState {
            index: U32::new(index),
            state: split_bytes(VduseVqStateSplit {
                avail_index: U16::new(avail_index),
            }),
        }
    }

    /// A packed-virtqueue state.
    pub fn new_packed(index: u32, packed: VduseVqStatePacked) -> Self {
        VduseVqState {
            index: U32::new(index),
            state: packed_bytes(packed),
        }
    }

    /// The union read as split-virtqueue state. Whether the queue is split or packed is not in the
    /// message: the device knows it from the negotiated `VIRTIO_F_RING_PACKED` feature.
    pub fn split(&self) -> &VduseVqStateSplit {
        split_view(&self.state)
    }

    /// The union read as packed-virtqueue state (see [`VduseVqState::split`]).
    pub fn packed(&self) -> &VduseVqStatePacked {
        packed_view(&self.state)
    }
}

impl VduseVqInfo {
    /// The union read as split-virtqueue state (the device knows which applies).
    pub fn split(&self) -> &VduseVqStateSplit {
        split_view(&self.state)
    }

    /// The union read as packed-virtqueue state (the device knows which applies).
    pub fn packed(&self) -> &VduseVqStatePacked {
        packed_view(&self.state)
    }

    /// Whether `ready` is non-zero.
    pub fn is_ready(&self) -> bool {
        self.ready != 0
    }
}

impl VduseVqStatePacked {
    /// A packed state from its four counters.
    pub fn new(
        last_avail_counter: u16,
        last_avail_idx: u16,
        last_used_counter: u16,
        last_used_idx: u16,
    ) -> Self {
        VduseVqStatePacked {
            last_avail_counter: U16::new(last_avail_counter),
            last_avail_idx: U16::new(last_avail_idx),
            last_used_counter: U16::new(last_used_counter),
            last_used_idx: U16::new(last_used_idx),
        }
    }
}

/// The bytes of a NUL-terminated name up to (not including) its first NUL.
fn name_bytes(name: &[u8]) -> &[u8] {
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    name.get(..end).unwrap_or(name)
}

impl VduseDevConfig {
    /// The device name up to its first NUL (all 256 bytes if there is none, which the kernel refuses).
    pub fn name_bytes(&self) -> &[u8] {
        name_bytes(&self.name)
    }

    /// The device name as UTF-8, or `None` if it is not.
    pub fn name_str(&self) -> Option<&str> {
        core::str::from_utf8(self.name_bytes()).ok()
    }

    /// Copies `name` into the `name` array and NUL-terminates it; `false` (and nothing written) when
    /// `name` has a NUL or does not leave room for the terminator (255 bytes at most).
    pub fn set_name(&mut self, name: &[u8]) -> bool {
        if name.len() >= VDUSE_NAME_MAX || name.contains(&0) {
            return false;
        }
        self.name = [0; VDUSE_NAME_MAX];
        for (d, s) in self.name.iter_mut().zip(name) {
            *d = *s;
        }
        true
    }
}

// ---------------------------------------------------------------------------------------------------
// Requests and responses
// ---------------------------------------------------------------------------------------------------

/// The member of a request's union, chosen by its `type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestBody<'a> {
    /// `VDUSE_GET_VQ_STATE`: `vq_state`, only `index` meaningful.
    GetVqState(&'a VduseVqState),
    /// `VDUSE_SET_STATUS`: `s`, the new device status.
    SetStatus(&'a VduseDevStatus),
    /// `VDUSE_UPDATE_IOTLB`: `iova`, the range whose mappings changed.
    UpdateIotlb(&'a VduseIovaRange),
    /// SET_VQ_GROUP_ASID (API version 1): the group/asid pair.
    SetVqGroupAsid(&'a VduseVqGroupAsid),
    /// A type this crate does not know (newer kernels add types): the raw union.
    Unknown {
        /// The request's `type`.
        req_type: u32,
        /// The union's bytes.
        raw: &'a [u8; 128],
    },
}

impl RequestBody<'_> {
    /// The request `type` this body belongs to.
    pub fn req_type(&self) -> u32 {
        match *self {
            RequestBody::GetVqState(_) => VDUSE_GET_VQ_STATE,
            RequestBody::SetStatus(_) => VDUSE_SET_STATUS,
            RequestBody::UpdateIotlb(_) => VDUSE_UPDATE_IOTLB,
            RequestBody::SetVqGroupAsid(_) => VDUSE_SET_VQ_GROUP_ASID,
            RequestBody::Unknown { req_type, .. } => req_type,
        }
    }

    /// The union's bytes for this body: the member followed by zeros (or the raw bytes of `Unknown`).
    pub fn payload(&self) -> [u8; VDUSE_PAYLOAD_SIZE] {
        match *self {
            RequestBody::GetVqState(m) => zerocopy::transmute!(VqStateIn128 {
                member: *m,
                rest: [0; 116]
            }),
            RequestBody::SetStatus(m) => zerocopy::transmute!(StatusIn128 {
                member: *m,
                rest: [0; 127]
            }),
            RequestBody::UpdateIotlb(m) => zerocopy::transmute!(RangeIn128 {
                member: *m,
                rest: [0; 112]
            }),
            RequestBody::SetVqGroupAsid(m) => zerocopy::transmute!(GroupAsidIn128 {
                member: *m,
                rest: [0; 120]
            }),
            RequestBody::Unknown { raw, .. } => *raw,
        }
    }
}

impl VduseDevRequest {
    /// The typed view of the union, chosen by `req_type`.
    pub fn body(&self) -> RequestBody<'_> {
        let p = &self.payload;
        match self.req_type.get() {
            VDUSE_GET_VQ_STATE => {
                let o: &VqStateIn128 = zerocopy::transmute_ref!(p);
                RequestBody::GetVqState(&o.member)
            }
            VDUSE_SET_STATUS => {
                let o: &StatusIn128 = zerocopy::transmute_ref!(p);
                RequestBody::SetStatus(&o.member)
            }
            VDUSE_UPDATE_IOTLB => {
                let o: &RangeIn128 = zerocopy::transmute_ref!(p);
                RequestBody::UpdateIotlb(&o.member)
            }
            VDUSE_SET_VQ_GROUP_ASID => {
                let o: &GroupAsidIn128 = zerocopy::transmute_ref!(p);
                RequestBody::SetVqGroupAsid(&o.member)
            }
            req_type => RequestBody::Unknown { req_type, raw: p },
        }
    }

    /// A request with `request_id` and `body`; reserved words and unused union bytes are zero.
    pub fn new(request_id: u32, body: &RequestBody<'_>) -> Self {
        VduseDevRequest {
            req_type: U32::new(body.req_type()),
            request_id: U32::new(request_id),
            reserved: [U32::ZERO; 4],
            payload: body.payload(),
        }
    }
}

/// A decoded VDUSE request: the whole struct and the typed view of its union.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VduseRequest<'a> {
    /// The request as read, including reserved words and every union byte.
    pub raw: &'a VduseDevRequest,
    /// The union member chosen by `type`.
    pub body: RequestBody<'a>,
}

impl VduseRequest<'_> {
    /// The request `type`.
    pub fn req_type(&self) -> u32 {
        self.raw.req_type.get()
    }

    /// The request id, to echo in the response.
    pub fn request_id(&self) -> u32 {
        self.raw.request_id.get()
    }
}

impl fmt::Display for VduseRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.req_type();
        match request_type_name(t) {
            Some(n) => write!(f, "VDUSE_{n} ({t})")?,
            None => write!(f, "VDUSE request type {t}")?,
        }
        write!(f, " id {}", self.request_id())?;
        match self.body {
            RequestBody::GetVqState(s) => write!(f, " index {}", s.index.get()),
            RequestBody::SetStatus(s) => write!(f, " status {:#04x}", s.status),
            RequestBody::UpdateIotlb(r) => {
                write!(f, " [{:#x}, {:#x}]", r.start.get(), r.last.get())
            }
            RequestBody::SetVqGroupAsid(g) => {
                write!(f, " group {} asid {}", g.group.get(), g.asid.get())
            }
            RequestBody::Unknown { .. } => Ok(()),
        }
    }
}

/// The member of a response's union. Which applies depends on the request it answers (the response
/// carries only `request_id`): a GET_VQ_STATE answer holds the queue state, any other is padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResponseBody<'a> {
    /// The answer to `VDUSE_GET_VQ_STATE`: `vq_state`. Split or packed is not knowable from the bytes:
    /// read it with [`VduseVqState::split`] or [`VduseVqState::packed`].
    GetVqState(&'a VduseVqState),
    /// Any other answer: the union's raw bytes (zero when well formed).
    Raw(&'a [u8; 128]),
}

impl ResponseBody<'_> {
    /// The union's bytes for this body: the member followed by zeros, or the raw bytes.
    pub fn payload(&self) -> [u8; VDUSE_PAYLOAD_SIZE] {
        match *self {
            ResponseBody::GetVqState(m) => zerocopy::transmute!(VqStateIn128 {
                member: *m,
                rest: [0; 116]
            }),
            ResponseBody::Raw(raw) => *raw,
        }
    }
}

impl VduseDevResponse {
    /// The union read as a GET_VQ_STATE answer, whatever the request was.
    pub fn vq_state(&self) -> &VduseVqState {
        let o: &VqStateIn128 = zerocopy::transmute_ref!(&self.payload);
        &o.member
    }

    /// The typed view of the union for an answer to a request of type `req_type`.
    pub fn body(&self, req_type: u32) -> ResponseBody<'_> {
        if req_type == VDUSE_GET_VQ_STATE {
            ResponseBody::GetVqState(self.vq_state())
        } else {
            ResponseBody::Raw(&self.payload)
        }
    }

    /// Whether `result` is `VDUSE_REQ_RESULT_OK`.
    pub fn is_ok(&self) -> bool {
        self.result.get() == VDUSE_REQ_RESULT_OK
    }

    /// A response; reserved words and unused union bytes are zero.
    pub fn new(request_id: u32, result: u32, body: &ResponseBody<'_>) -> Self {
        VduseDevResponse {
            request_id: U32::new(request_id),
            result: U32::new(result),
            reserved: [U32::ZERO; 4],
            payload: body.payload(),
        }
    }
}

fn exact_size(bytes: &[u8]) -> Result<(), DecodeError> {
    if bytes.len() == VDUSE_MSG_SIZE {
        Ok(())
    } else {
        // Short: the error is where the data ended; long: at the first extra byte.
        Err(DecodeError::new(
            bytes.len().min(VDUSE_MSG_SIZE),
            Rule::VduseSize { have: bytes.len() },
        ))
    }
}

/// Decodes one request as read from `/dev/vduse/$NAME`; `bytes` must be exactly 152 bytes.
///
/// Unknown types decode to [`RequestBody::Unknown`]; reserved words and unused union bytes are not
/// checked (they stay visible in [`VduseRequest::raw`]).
pub fn decode_request(bytes: &[u8]) -> Result<VduseRequest<'_>, DecodeError> {
    exact_size(bytes)?;
    let raw = VduseDevRequest::ref_from_bytes(bytes)
        .map_err(|_| DecodeError::new(0, Rule::VduseSize { have: bytes.len() }))?;
    Ok(VduseRequest {
        raw,
        body: raw.body(),
    })
}

/// Decodes one response as written to `/dev/vduse/$NAME`; `bytes` must be exactly 152 bytes.
///
/// Use [`VduseDevResponse::body`] with the request's type (or [`VduseDevResponse::vq_state`]) to read
/// the union.
pub fn decode_response(bytes: &[u8]) -> Result<&VduseDevResponse, DecodeError> {
    exact_size(bytes)?;
    VduseDevResponse::ref_from_bytes(bytes)
        .map_err(|_| DecodeError::new(0, Rule::VduseSize { have: bytes.len() }))
}

fn put<T: IntoBytes + Immutable>(value: &T, buf: &mut [u8]) -> Result<usize, EncodeError> {
    value
        .write_to_prefix(buf)
        .map_err(|_| EncodeError::BufferTooShort {
            need: VDUSE_MSG_SIZE,
            have: buf.len(),
        })?;
    Ok(VDUSE_MSG_SIZE)
}

/// Encodes a request into the first 152 bytes of `buf`: the head, zero reserved words, and `body`'s
/// member in a zeroed union (or the raw union of [`RequestBody::Unknown`]). Returns 152.
pub fn encode_request(
    request_id: u32,
    body: &RequestBody<'_>,
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    put(&VduseDevRequest::new(request_id, body), buf)
}

/// Encodes a response into the first 152 bytes of `buf`: the head, zero reserved words, and `body`'s
/// member in a zeroed union (or the raw union of [`ResponseBody::Raw`]). Returns 152.
pub fn encode_response(
    request_id: u32,
    result: u32,
    body: &ResponseBody<'_>,
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    put(&VduseDevResponse::new(request_id, result, body), buf)
}

// ---------------------------------------------------------------------------------------------------
// Ioctl numbers
// ---------------------------------------------------------------------------------------------------

/// The direction bits of an ioctl number (`_IOC_NONE`, `_IOC_WRITE`, `_IOC_READ`), as an open newtype.
///
/// These are the values of the generic encoding (`<asm-generic/ioctl.h>`: x86, Arm, RISC-V, LoongArch,
/// s390). PowerPC, MIPS, SPARC and Alpha use other values and a 13-bit size; they are not supported.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct IoctlDir(pub u8);

impl IoctlDir {
    /// `_IOC_NONE`: no argument is transferred.
    pub const NONE: IoctlDir = IoctlDir(0);
    /// `_IOC_WRITE`: userspace writes the argument to the kernel (`_IOW`).
    pub const WRITE: IoctlDir = IoctlDir(1);
    /// `_IOC_READ`: the kernel writes the argument back to userspace (`_IOR`).
    pub const READ: IoctlDir = IoctlDir(2);
    /// `_IOC_READ | _IOC_WRITE` (`_IOWR`).
    pub const READ_WRITE: IoctlDir = IoctlDir(3);

    /// `"NONE"`, `"W"`, `"R"` or `"RW"` (the low two bits).
    pub const fn name(self) -> &'static str {
        match self.0 & 3 {
            0 => "NONE",
            1 => "W",
            2 => "R",
            _ => "RW",
        }
    }
}

impl fmt::Debug for IoctlDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

/// Bits 0–7 of an ioctl number: the command number (`_IOC_NRSHIFT` 0).
pub const IOC_NRBITS: u32 = 8;
/// Bits 8–15: the type, or magic (`_IOC_TYPESHIFT` 8).
pub const IOC_TYPEBITS: u32 = 8;
/// Bits 16–29: the argument size (`_IOC_SIZESHIFT` 16).
pub const IOC_SIZEBITS: u32 = 14;
/// Bits 30–31: the direction (`_IOC_DIRSHIFT` 30).
pub const IOC_DIRBITS: u32 = 2;
const IOC_TYPESHIFT: u32 = IOC_NRBITS;
const IOC_SIZESHIFT: u32 = IOC_TYPESHIFT + IOC_TYPEBITS;
const IOC_DIRSHIFT: u32 = IOC_SIZESHIFT + IOC_SIZEBITS;
const IOC_SIZEMASK: u32 = (1 << IOC_SIZEBITS) - 1;

/// `_IOC(dir, type, nr, size)`: builds an ioctl request number.
///
/// `size` is masked to its 14 bits (C rejects larger sizes at compile time; no VDUSE argument comes
/// close).
///
/// ```
/// use vfu_codec::vduse::{ioc, IoctlDir, VDUSE_BASE, VDUSE_GET_API_VERSION};
/// assert_eq!(ioc(IoctlDir::READ, VDUSE_BASE, 0x00, 8), VDUSE_GET_API_VERSION);
/// assert_eq!(VDUSE_GET_API_VERSION, 0x8008_8100);
/// ```
pub const fn ioc(dir: IoctlDir, ty: u8, nr: u8, size: usize) -> u32 {
    (((dir.0 as u32) & 3) << IOC_DIRSHIFT)
        | (((size as u32) & IOC_SIZEMASK) << IOC_SIZESHIFT)
        | ((ty as u32) << IOC_TYPESHIFT)
        | (nr as u32)
}

/// `_IO(type, nr)`: no argument.
pub const fn io(ty: u8, nr: u8) -> u32 {
    ioc(IoctlDir::NONE, ty, nr, 0)
}

/// `_IOR(type, nr, T)` with `size` = `sizeof(T)`.
pub const fn ior(ty: u8, nr: u8, size: usize) -> u32 {
    ioc(IoctlDir::READ, ty, nr, size)
}

/// `_IOW(type, nr, T)` with `size` = `sizeof(T)`.
pub const fn iow(ty: u8, nr: u8, size: usize) -> u32 {
    ioc(IoctlDir::WRITE, ty, nr, size)
}

/// `_IOWR(type, nr, T)` with `size` = `sizeof(T)`.
pub const fn iowr(ty: u8, nr: u8, size: usize) -> u32 {
    ioc(IoctlDir::READ_WRITE, ty, nr, size)
}

/// An ioctl request number taken apart (`_IOC_DIR`, `_IOC_TYPE`, `_IOC_NR`, `_IOC_SIZE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct IoctlNumber {
    /// Bits 30–31.
    pub dir: IoctlDir,
    /// Bits 8–15: the type ("magic"), 0x81 for VDUSE.
    pub ty: u8,
    /// Bits 0–7: the command number.
    pub nr: u8,
    /// Bits 16–29: the argument size in bytes.
    pub size: u16,
}

impl IoctlNumber {
    /// Takes `number` apart; every `u32` is a valid input.
    pub const fn decode(number: u32) -> Self {
        IoctlNumber {
            dir: IoctlDir((number >> IOC_DIRSHIFT) as u8 & 3),
            ty: (number >> IOC_TYPESHIFT) as u8,
            nr: number as u8,
            size: ((number >> IOC_SIZESHIFT) & IOC_SIZEMASK) as u16,
        }
    }

    /// Puts it back together; `IoctlNumber::decode(n).encode() == n` for every `n`.
    pub const fn encode(self) -> u32 {
        ioc(self.dir, self.ty, self.nr, self.size as usize)
    }
}

/// `VDUSE_GET_API_VERSION`: `_IOR(0x81, 0x00, __u64)` on `/dev/vduse/control`.
pub const VDUSE_GET_API_VERSION: u32 = ior(VDUSE_BASE, 0x00, 8);
/// `VDUSE_SET_API_VERSION`: `_IOW(0x81, 0x01, __u64)` on `/dev/vduse/control`.
pub const VDUSE_SET_API_VERSION: u32 = iow(VDUSE_BASE, 0x01, 8);
/// `VDUSE_CREATE_DEV`: `_IOW(0x81, 0x02, struct vduse_dev_config)` on `/dev/vduse/control`.
pub const VDUSE_CREATE_DEV: u32 = iow(VDUSE_BASE, 0x02, VduseDevConfig::SIZE);
/// `VDUSE_DESTROY_DEV`: `_IOW(0x81, 0x03, char[VDUSE_NAME_MAX])` on `/dev/vduse/control`.
pub const VDUSE_DESTROY_DEV: u32 = iow(VDUSE_BASE, 0x03, VDUSE_NAME_MAX);
/// `VDUSE_IOTLB_GET_FD`: `_IOWR(0x81, 0x10, struct vduse_iotlb_entry)`.
pub const VDUSE_IOTLB_GET_FD: u32 = iowr(VDUSE_BASE, 0x10, VduseIotlbEntry::SIZE);
/// `VDUSE_DEV_GET_FEATURES`: `_IOR(0x81, 0x11, __u64)`.
pub const VDUSE_DEV_GET_FEATURES: u32 = ior(VDUSE_BASE, 0x11, 8);
/// `VDUSE_DEV_SET_CONFIG`: `_IOW(0x81, 0x12, struct vduse_config_data)`.
pub const VDUSE_DEV_SET_CONFIG: u32 = iow(VDUSE_BASE, 0x12, VduseConfigData::SIZE);
/// `VDUSE_DEV_INJECT_CONFIG_IRQ`: `_IO(0x81, 0x13)`.
pub const VDUSE_DEV_INJECT_CONFIG_IRQ: u32 = io(VDUSE_BASE, 0x13);
/// `VDUSE_VQ_SETUP`: `_IOW(0x81, 0x14, struct vduse_vq_config)`.
pub const VDUSE_VQ_SETUP: u32 = iow(VDUSE_BASE, 0x14, VduseVqConfig::SIZE);
/// `VDUSE_VQ_GET_INFO`: `_IOWR(0x81, 0x15, struct vduse_vq_info)`.
pub const VDUSE_VQ_GET_INFO: u32 = iowr(VDUSE_BASE, 0x15, VduseVqInfo::SIZE);
/// `VDUSE_VQ_SETUP_KICKFD`: `_IOW(0x81, 0x16, struct vduse_vq_eventfd)`.
pub const VDUSE_VQ_SETUP_KICKFD: u32 = iow(VDUSE_BASE, 0x16, VduseVqEventfd::SIZE);
/// `VDUSE_VQ_INJECT_IRQ`: `_IOW(0x81, 0x17, __u32)`.
pub const VDUSE_VQ_INJECT_IRQ: u32 = iow(VDUSE_BASE, 0x17, 4);
/// `VDUSE_IOTLB_REG_UMEM`: `_IOW(0x81, 0x18, struct vduse_iova_umem)`.
pub const VDUSE_IOTLB_REG_UMEM: u32 = iow(VDUSE_BASE, 0x18, VduseIovaUmem::SIZE);
/// `VDUSE_IOTLB_DEREG_UMEM`: `_IOW(0x81, 0x19, struct vduse_iova_umem)`.
pub const VDUSE_IOTLB_DEREG_UMEM: u32 = iow(VDUSE_BASE, 0x19, VduseIovaUmem::SIZE);
/// `VDUSE_IOTLB_GET_INFO`: `_IOWR(0x81, 0x1a, struct vduse_iova_info)`.
pub const VDUSE_IOTLB_GET_INFO: u32 = iowr(VDUSE_BASE, 0x1a, VduseIovaInfo::SIZE);

/// The argument of an ioctl.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IoctlArg {
    /// No argument (`_IO`).
    None,
    /// A plain integer.
    Int {
        /// Its C type (`__u64`, `__u32`).
        c_type: &'static str,
        /// Its size in bytes.
        size: usize,
    },
    /// A device name, `char[VDUSE_NAME_MAX]`.
    Name,
    /// A wire struct.
    Struct {
        /// Its layout (fixed part).
        layout: Layout,
        /// The field giving the length of a variable tail after the fixed part, if any.
        tail_len: Option<&'static str>,
    },
}

impl IoctlArg {
    const fn of<T: WireStruct>(tail_len: Option<&'static str>) -> Self {
        IoctlArg::Struct {
            layout: Layout::of::<T>(),
            tail_len,
        }
    }

    /// The name of the argument's layout: a struct's Rust name, a C integer type, `char[256]` or `none`.
    pub const fn name(&self) -> &'static str {
        match self {
            IoctlArg::None => "none",
            IoctlArg::Int { c_type, .. } => c_type,
            IoctlArg::Name => "char[256]",
            IoctlArg::Struct { layout, .. } => layout.name,
        }
    }

    /// Size of the argument (of its fixed part for a struct), which is the ioctl number's size field.
    pub const fn size(&self) -> usize {
        match self {
            IoctlArg::None => 0,
            IoctlArg::Int { size, .. } => *size,
            IoctlArg::Name => VDUSE_NAME_MAX,
            IoctlArg::Struct { layout, .. } => layout.size,
        }
    }
}

/// One VDUSE ioctl: its number, name and argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VduseIoctl {
    /// The request number.
    pub number: u32,
    /// The C macro name (`VDUSE_CREATE_DEV`).
    pub name: &'static str,
    /// The argument.
    pub arg: IoctlArg,
}

const U64_ARG: IoctlArg = IoctlArg::Int {
    c_type: "__u64",
    size: 8,
};
const U32_ARG: IoctlArg = IoctlArg::Int {
    c_type: "__u32",
    size: 4,
};

/// Every VDUSE ioctl of `<linux/vduse.h>`, in the header's order.
pub const VDUSE_IOCTLS: &[VduseIoctl] = &[
    VduseIoctl {
        number: VDUSE_GET_API_VERSION,
        name: "VDUSE_GET_API_VERSION",
        arg: U64_ARG,
    },
    VduseIoctl {
        number: VDUSE_SET_API_VERSION,
        name: "VDUSE_SET_API_VERSION",
        arg: U64_ARG,
    },
    VduseIoctl {
        number: VDUSE_CREATE_DEV,
        name: "VDUSE_CREATE_DEV",
        arg: IoctlArg::of::<VduseDevConfig>(Some("config_size")),
    },
    VduseIoctl {
        number: VDUSE_DESTROY_DEV,
        name: "VDUSE_DESTROY_DEV",
        arg: IoctlArg::Name,
    },
    VduseIoctl {
        number: VDUSE_IOTLB_GET_FD,
        name: "VDUSE_IOTLB_GET_FD",
        arg: IoctlArg::of::<VduseIotlbEntry>(None),
    },
    VduseIoctl {
        number: VDUSE_DEV_GET_FEATURES,
        name: "VDUSE_DEV_GET_FEATURES",
        arg: U64_ARG,
    },
    VduseIoctl {
        number: VDUSE_DEV_SET_CONFIG,
        name: "VDUSE_DEV_SET_CONFIG",
        arg: IoctlArg::of::<VduseConfigData>(Some("length")),
    },
    VduseIoctl {
        number: VDUSE_DEV_INJECT_CONFIG_IRQ,
        name: "VDUSE_DEV_INJECT_CONFIG_IRQ",
        arg: IoctlArg::None,
    },
    VduseIoctl {
        number: VDUSE_VQ_SETUP,
        name: "VDUSE_VQ_SETUP",
        arg: IoctlArg::of::<VduseVqConfig>(None),
    },
    VduseIoctl {
        number: VDUSE_VQ_GET_INFO,
        name: "VDUSE_VQ_GET_INFO",
        arg: IoctlArg::of::<VduseVqInfo>(None),
    },
    VduseIoctl {
        number: VDUSE_VQ_SETUP_KICKFD,
        name: "VDUSE_VQ_SETUP_KICKFD",
        arg: IoctlArg::of::<VduseVqEventfd>(None),
    },
    VduseIoctl {
        number: VDUSE_VQ_INJECT_IRQ,
        name: "VDUSE_VQ_INJECT_IRQ",
        arg: U32_ARG,
    },
    VduseIoctl {
        number: VDUSE_IOTLB_REG_UMEM,
        name: "VDUSE_IOTLB_REG_UMEM",
        arg: IoctlArg::of::<VduseIovaUmem>(None),
    },
    VduseIoctl {
        number: VDUSE_IOTLB_DEREG_UMEM,
        name: "VDUSE_IOTLB_DEREG_UMEM",
        arg: IoctlArg::of::<VduseIovaUmem>(None),
    },
    VduseIoctl {
        number: VDUSE_IOTLB_GET_INFO,
        name: "VDUSE_IOTLB_GET_INFO",
        arg: IoctlArg::of::<VduseIovaInfo>(None),
    },
];

/// Looks an ioctl request number up in [`VDUSE_IOCTLS`].
///
/// ```
/// use vfu_codec::vduse::{vduse_ioctl, VDUSE_VQ_GET_INFO};
/// let i = vduse_ioctl(VDUSE_VQ_GET_INFO).unwrap();
/// assert_eq!((i.name, i.arg.name()), ("VDUSE_VQ_GET_INFO", "VduseVqInfo"));
/// assert!(vduse_ioctl(0x1234).is_none());
/// ```
pub fn vduse_ioctl(number: u32) -> Option<&'static VduseIoctl> {
    VDUSE_IOCTLS.iter().find(|i| i.number == number)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    extern crate std;

    use super::*;
    use crate::wire::{Endian, Scalar};
    use proptest::prelude::*;

    /// A GET_VQ_STATE request for queue 2, id 7, as the kernel lays it out on a little-endian host.
    static GET_VQ_STATE_LE: [u8; 152] = {
        let mut b = [0u8; 152];
        b[4] = 7; // request_id
        b[24] = 2; // vq_state.index
        b
    };

    #[test]
    #[cfg(target_endian = "little")]
    fn parse_get_vq_state() {
        let r = decode_request(&GET_VQ_STATE_LE).unwrap();
        assert_eq!(r.req_type(), VDUSE_GET_VQ_STATE);
        assert_eq!(r.request_id(), 7);
        let RequestBody::GetVqState(s) = r.body else {
            panic!("wrong body {:?}", r.body)
        };
        assert_eq!(s.index.get(), 2);
        assert_eq!(std::format!("{r}"), "VDUSE_GET_VQ_STATE (0) id 7 index 2");
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn emit_get_vq_state_sets_every_byte() {
        let mut buf = [0xa5u8; 160];
        let s = VduseVqState {
            index: U32::new(2),
            state: [0; 8],
        };
        let n = encode_request(7, &RequestBody::GetVqState(&s), &mut buf).unwrap();
        assert_eq!(n, 152);
        assert_eq!(&buf[..152], &GET_VQ_STATE_LE[..]);
        assert_eq!(&buf[152..], &[0xa5; 8]);
    }

    #[test]
    fn wrong_sizes() {
        let e = decode_request(&GET_VQ_STATE_LE[..151]).unwrap_err();
        assert_eq!(e.rule, Rule::VduseSize { have: 151 });
        assert_eq!(e.offset, 151);
        let mut long = [0u8; 153];
        long[..152].copy_from_slice(&GET_VQ_STATE_LE);
        let e = decode_response(&long).unwrap_err();
        assert_eq!(e.rule, Rule::VduseSize { have: 153 });
        assert_eq!(e.offset, 152);
        assert!(decode_request(&[]).is_err());
        let s = VduseDevStatus { status: 1 };
        assert_eq!(
            encode_request(1, &RequestBody::SetStatus(&s), &mut [0u8; 151]),
            Err(EncodeError::BufferTooShort {
                need: 152,
                have: 151
            })
        );
    }

    #[test]
    fn views_of_the_unions() {
        let packed = VduseVqStatePacked::new(1, 0x1234, 0, 0x5678);
        let s = VduseVqState::new_packed(9, packed);
        assert_eq!(*s.packed(), packed);
        assert_eq!(s.split().avail_index.get(), 1);
        let s = VduseVqState::new_split(9, 0xbeef);
        assert_eq!(s.split().avail_index.get(), 0xbeef);
        assert_eq!(s.packed().last_avail_idx.get(), 0);
        assert_eq!(s.state[2..], [0; 6]);

        let info = VduseVqInfo {
            state: s.state,
            ..Default::default()
        };
        assert_eq!(info.split().avail_index.get(), 0xbeef);
        assert!(!info.is_ready());
    }

    #[test]
    fn unknown_type_is_kept_raw() {
        let mut raw = [0u8; 128];
        raw[0] = 0xff;
        raw[127] = 1;
        let body = RequestBody::Unknown {
            req_type: 77,
            raw: &raw,
        };
        let mut buf = [0u8; 152];
        encode_request(5, &body, &mut buf).unwrap();
        let r = decode_request(&buf).unwrap();
        assert_eq!(r.body, body);
        assert_eq!(std::format!("{r}"), "VDUSE request type 77 id 5");
    }

    #[test]
    fn dev_config_name() {
        let mut c = VduseDevConfig::default();
        assert!(c.set_name(b"vduse-blk0"));
        assert_eq!(c.name_str(), Some("vduse-blk0"));
        assert!(!c.set_name(&[b'a'; 256]));
        assert!(!c.set_name(b"a\0b"));
        assert!(c.set_name(&[b'a'; 255]));
        assert_eq!(c.name_bytes().len(), 255);
    }

    #[test]
    fn ioctl_numbers() {
        // Worked by hand from _IOC: dir << 30 | size << 16 | 0x81 << 8 | nr.
        assert_eq!(VDUSE_GET_API_VERSION, 0x8008_8100);
        assert_eq!(VDUSE_SET_API_VERSION, 0x4008_8101);
        assert_eq!(VDUSE_CREATE_DEV, 0x4150_8102);
        assert_eq!(VDUSE_DESTROY_DEV, 0x4100_8103);
        assert_eq!(VDUSE_IOTLB_GET_FD, 0xc020_8110);
        assert_eq!(VDUSE_DEV_INJECT_CONFIG_IRQ, 0x0000_8113);
        assert_eq!(VDUSE_VQ_GET_INFO, 0xc030_8115);
        assert_eq!(VDUSE_IOTLB_GET_INFO, 0xc030_811a);
        let d = IoctlNumber::decode(VDUSE_VQ_SETUP);
        assert_eq!(
            d,
            IoctlNumber {
                dir: IoctlDir::WRITE,
                ty: 0x81,
                nr: 0x14,
                size: 32
            }
        );
        for i in VDUSE_IOCTLS {
            let d = IoctlNumber::decode(i.number);
            assert_eq!(d.ty, VDUSE_BASE, "{}", i.name);
            assert_eq!(usize::from(d.size), i.arg.size(), "{}", i.name);
            assert_eq!(vduse_ioctl(i.number), Some(i), "numbers are unique");
        }
        assert_eq!(VDUSE_IOCTLS.len(), 15);
    }

    #[test]
    fn field_tables_are_native_endian() {
        let native = if cfg!(target_endian = "little") {
            Endian::Little
        } else {
            Endian::Big
        };
        for l in LAYOUTS {
            for f in l.fields {
                if let Scalar::U16(e) | Scalar::U32(e) | Scalar::U64(e) | Scalar::I32(e) = f.scalar
                {
                    assert_eq!(e, native, "{}.{}", l.name, f.name);
                }
            }
        }
        assert_eq!(VduseVqEventfd::FIELDS[1].scalar, Scalar::I32(native));
    }

    fn vq_state() -> impl Strategy<Value = VduseVqState> {
        (any::<u32>(), any::<[u8; 8]>()).prop_map(|(i, s)| VduseVqState {
            index: U32::new(i),
            state: s,
        })
    }

    #[derive(Debug, Clone)]
    enum OwnedBody {
        GetVqState(VduseVqState),
        SetStatus(VduseDevStatus),
        UpdateIotlb(VduseIovaRange),
        SetVqGroupAsid(VduseVqGroupAsid),
        Unknown(u32, [u8; 128]),
    }

    impl OwnedBody {
        fn view(&self) -> RequestBody<'_> {
            match self {
                OwnedBody::GetVqState(s) => RequestBody::GetVqState(s),
                OwnedBody::SetStatus(s) => RequestBody::SetStatus(s),
                OwnedBody::UpdateIotlb(r) => RequestBody::UpdateIotlb(r),
                OwnedBody::SetVqGroupAsid(g) => RequestBody::SetVqGroupAsid(g),
                OwnedBody::Unknown(t, raw) => RequestBody::Unknown { req_type: *t, raw },
            }
        }
    }

    fn owned_body() -> impl Strategy<Value = OwnedBody> {
        prop_oneof![
            vq_state().prop_map(OwnedBody::GetVqState),
            any::<u8>().prop_map(|status| OwnedBody::SetStatus(VduseDevStatus { status })),
            (any::<u64>(), any::<u64>()).prop_map(|(s, l)| OwnedBody::UpdateIotlb(
                VduseIovaRange {
                    start: U64::new(s),
                    last: U64::new(l)
                }
            )),
            (any::<u32>(), any::<u32>()).prop_map(|(g, a)| OwnedBody::SetVqGroupAsid(
                VduseVqGroupAsid {
                    group: U32::new(g),
                    asid: U32::new(a)
                }
            )),
            (4u32.., proptest::collection::vec(any::<u8>(), 128)).prop_map(|(t, v)| {
                let mut raw = [0u8; 128];
                raw.copy_from_slice(&v);
                OwnedBody::Unknown(t, raw)
            }),
        ]
    }

    proptest! {
        #[test]
        fn request_roundtrip(id in any::<u32>(), body in owned_body()) {
            let body = body.view();
            let mut buf = [0xa5u8; 152];
            prop_assert_eq!(encode_request(id, &body, &mut buf), Ok(152));
            let r = decode_request(&buf).unwrap();
            prop_assert_eq!(r.request_id(), id);
            prop_assert_eq!(r.req_type(), body.req_type());
            prop_assert_eq!(r.body, body);
            prop_assert_eq!(r.raw.reserved, [U32::ZERO; 4]);
            prop_assert_eq!(r.raw.payload, body.payload());
        }

        #[test]
        fn response_roundtrip(id in any::<u32>(), result in 0u32..3, s in vq_state(),
                              raw in proptest::collection::vec(any::<u8>(), 128), get in any::<bool>()) {
            let mut bytes = [0u8; 128];
            bytes.copy_from_slice(&raw);
            let body = if get { ResponseBody::GetVqState(&s) } else { ResponseBody::Raw(&bytes) };
            let mut buf = [0xa5u8; 152];
            prop_assert_eq!(encode_response(id, result, &body, &mut buf), Ok(152));
            let r = decode_response(&buf).unwrap();
            prop_assert_eq!(r.request_id.get(), id);
            prop_assert_eq!(r.result.get(), result);
            prop_assert_eq!(r.is_ok(), result == VDUSE_REQ_RESULT_OK);
            let t = if get { VDUSE_GET_VQ_STATE } else { VDUSE_SET_STATUS };
            prop_assert_eq!(r.body(t), body);
            if get {
                prop_assert_eq!(r.vq_state(), &s);
                prop_assert_eq!(&r.payload[12..], &[0u8; 116][..]);
            }
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let ok = bytes.len() == 152;
            prop_assert_eq!(decode_request(&bytes).is_ok(), ok);
            prop_assert_eq!(decode_response(&bytes).is_ok(), ok);
            if let Ok(r) = decode_request(&bytes) {
                // Re-encoding the raw struct gives the input back.
                prop_assert_eq!(r.raw.as_bytes(), &bytes[..]);
            }
        }

        #[test]
        fn ioctl_number_roundtrip(n in any::<u32>()) {
            prop_assert_eq!(IoctlNumber::decode(n).encode(), n);
        }

        #[test]
        fn ioc_fields_roundtrip(dir in 0u8..4, ty in any::<u8>(), nr in any::<u8>(), size in 0usize..(1 << 14)) {
            let n = ioc(IoctlDir(dir), ty, nr, size);
            prop_assert_eq!(IoctlNumber::decode(n), IoctlNumber { dir: IoctlDir(dir), ty, nr, size: size as u16 });
        }
    }
}
