//! VDUSE ioctl numbers: the `_IOC` encoding, every ioctl of `<linux/vduse.h>` and its argument.

use core::fmt;

use super::consts::*;
use super::structs::*;
use crate::wire::{Layout, WireStruct};

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
