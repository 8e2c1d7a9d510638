//! The VDUSE constants of `<linux/vduse.h>` and the virtio status bits, with their name tables.

use crate::wire::{FlagSpec, Named, named};

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
