//! Fresh descriptors for the messages the replay sends.

use std::io;
use std::os::fd::OwnedFd;

use super::plan;

/// New descriptors for a message the replay sends.
pub(crate) fn make_fds(f: plan::Fds) -> io::Result<Vec<OwnedFd>> {
    use rustix::event::{EventfdFlags, eventfd};
    use rustix::fs::{MemfdFlags, ftruncate, memfd_create};
    let mut v = Vec::new();
    match f {
        plan::Fds::None => {}
        plan::Fds::Memfd { count, size } => {
            for _ in 0..count {
                let fd = memfd_create("vfu-replay", MemfdFlags::CLOEXEC)?;
                ftruncate(&fd, size)?;
                v.push(fd);
            }
        }
        plan::Fds::Eventfds(n) => {
            for _ in 0..n {
                v.push(eventfd(0, EventfdFlags::CLOEXEC)?);
            }
        }
    }
    Ok(v)
}
