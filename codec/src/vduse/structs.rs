//! The VDUSE wire structs (`<linux/vduse.h>`), their field tables and the typed views of their unions.

use zerocopy::native_endian::{I32, U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::consts::{
    IOTLB_PERM_NAMES, IOVA_CAP_FLAGS, REQUEST_TYPE_NAMES, RESULT_NAMES, VDUSE_NAME_MAX,
    VIRTIO_STATUS_FLAGS,
};
use crate::wire::{Layout, Show};

crate::wire::wire_struct! {
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

// Overlays private to this module tree: a union member followed by the rest of the union.
// `transmute_ref!` checks at compile time that each has exactly the union's size, so the typed views
// here and in `message.rs` cannot fail.
macro_rules! overlay {
    ($($name:ident { $t:ty, rest $n:literal })*) => {$(
        #[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
        #[repr(C)]
        pub(super) struct $name {
            pub(super) member: $t,
            pub(super) rest: [u8; $n],
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
