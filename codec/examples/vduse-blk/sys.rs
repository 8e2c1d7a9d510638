//! Every `unsafe` block of the example: the VDUSE ioctls (which hand the kernel a pointer) and taking
//! ownership of the descriptor VDUSE_IOTLB_GET_FD returns. Each wrapper first checks, with the codec's
//! [`IoctlNumber`], that the argument's size and direction are the ones the request number encodes,
//! so the kernel never reads or writes past the buffer it is given.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use vfu_codec::vduse::{IoctlDir, IoctlNumber};
use vmm_sys_util::ioctl::{ioctl, ioctl_with_mut_ref, ioctl_with_ptr, ioctl_with_ref};
use zerocopy::{FromBytes, Immutable, IntoBytes};

fn check(req: u32, dir: IoctlDir, size: usize) -> io::Result<()> {
    let n = IoctlNumber::decode(req);
    if n.dir != dir || usize::from(n.size) != size {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "ioctl {req:#x} takes {} bytes ({:?}), the argument is {size} bytes ({dir:?})",
                n.size, n.dir
            ),
        ));
    }
    Ok(())
}

fn result(ret: i32) -> io::Result<i32> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// An ioctl without argument (`_IO`).
pub fn io_none(fd: &impl AsRawFd, req: u32) -> io::Result<i32> {
    check(req, IoctlDir::NONE, 0)?;
    // SAFETY: the request takes no argument (checked above), so the kernel touches no memory of ours.
    result(unsafe { ioctl(fd, req.into()) })
}

/// An ioctl that reads `arg` (`_IOW`): a wire struct or an integer, whose size the number encodes.
pub fn io_write<T: IntoBytes + Immutable>(fd: &impl AsRawFd, req: u32, arg: &T) -> io::Result<i32> {
    check(req, IoctlDir::WRITE, size_of::<T>())?;
    // SAFETY: `arg` is a live, initialised value of exactly the size the request number gives the
    // kernel (checked above); the kernel only reads it.
    result(unsafe { ioctl_with_ref(fd, req.into(), arg) })
}

/// An `_IOW` ioctl whose argument is a fixed part followed by a variable tail (VDUSE_CREATE_DEV,
/// VDUSE_DEV_SET_CONFIG): `bytes` holds both, and `tail` is the length the fixed part announces.
pub fn io_write_with_tail(
    fd: &impl AsRawFd,
    req: u32,
    bytes: &[u8],
    tail: usize,
) -> io::Result<i32> {
    let fixed = bytes.len().checked_sub(tail).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "tail longer than the argument")
    })?;
    check(req, IoctlDir::WRITE, fixed)?;
    // SAFETY: the kernel reads the fixed part (the size the request number gives, checked above) and
    // then the `tail` bytes its length field announces; `bytes` holds exactly both.
    result(unsafe { ioctl_with_ptr(fd, req.into(), bytes.as_ptr()) })
}

/// An ioctl that reads and writes `arg` (`_IOWR`), or only writes it (`_IOR`).
pub fn io_read_write<T: IntoBytes + FromBytes>(
    fd: &impl AsRawFd,
    req: u32,
    arg: &mut T,
) -> io::Result<i32> {
    let dir = IoctlNumber::decode(req).dir;
    if dir != IoctlDir::READ && dir != IoctlDir::READ_WRITE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a reading ioctl",
        ));
    }
    check(req, dir, size_of::<T>())?;
    // SAFETY: `arg` is exclusively borrowed, of exactly the size the request number gives the kernel
    // (checked above), and every bit pattern the kernel may write is a valid `T` (`FromBytes`).
    result(unsafe { ioctl_with_mut_ref(fd, req.into(), arg) })
}

/// Takes ownership of the descriptor an ioctl returned (VDUSE_IOTLB_GET_FD).
pub fn owned_fd(raw: i32) -> io::Result<OwnedFd> {
    if raw < 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "negative descriptor",
        ));
    }
    // SAFETY: the kernel has just installed `raw` in our descriptor table for us (the ioctl's return
    // value); nothing else owns it, so it is closed exactly once, when the `OwnedFd` drops.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}
