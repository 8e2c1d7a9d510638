//! VDUSE: the 152-byte requests a daemon reads from `/dev/vduse/NAME` and the responses it writes
//! (one record each, no reassembly: the kernel hands over one struct per call), and its ioctls on
//! `/dev/vduse/control` and on the device node, as ioctl records ([`crate::capture::ioctl`]).
//!
//! Connections: one per device, `vduse:<n>:/dev/vduse/NAME`, opened by its `VDUSE_CREATE_DEV` (which
//! goes on the device's connection, as does `VDUSE_DESTROY_DEV`) or by the first traffic on its node
//! when the daemon was attached to later; and one `vduse:<n>:/dev/vduse/control` for the ioctls of
//! the control node that name no device (the API version).

use std::collections::HashMap;
use std::io;

use vfu_codec::Direction;
use vfu_codec::vduse::{
    IoctlDir, IoctlNumber, VDUSE_CREATE_DEV, VDUSE_DESTROY_DEV, VDUSE_DEV_SET_CONFIG,
    VDUSE_IOTLB_GET_FD, VDUSE_NAME_MAX, VDUSE_VQ_SETUP_KICKFD, VduseConfigData, VduseDevConfig,
};
use vfu_codec::wire::WireStruct;

use super::event::{Event, Ids, Sink};
use crate::capture::Protocol;
use crate::capture::ioctl::IoctlRecord;

/// The most argument bytes read for one ioctl (fixed part and tail).
pub(crate) const MAX_ARG: usize = 64 << 10;

/// The connection name of the control node.
const CONTROL: &str = "control";

/// How many bytes of an ioctl's argument to read: the size field of its number, plus the variable
/// tail of `VDUSE_CREATE_DEV` (`config_size`) and `VDUSE_DEV_SET_CONFIG` (`length`), read from the
/// fixed part `head` when it is already known. Capped at [`MAX_ARG`].
pub(crate) fn arg_len(request: u32, head: Option<&[u8]>) -> usize {
    let fixed = usize::from(IoctlNumber::decode(request).size);
    let tail = |at: usize| -> usize {
        head.and_then(|h| h.get(at..at + 4))
            .map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let tail = match request {
        VDUSE_CREATE_DEV => tail(VduseDevConfig::SIZE - 4),
        VDUSE_DEV_SET_CONFIG => tail(4),
        _ => 0,
    };
    fixed.saturating_add(tail).min(MAX_ARG)
}

/// Whether the kernel reads the argument (`_IOW`, `_IOWR`) and writes it back (`_IOR`, `_IOWR`).
pub(crate) fn arg_dirs(request: u32) -> (bool, bool) {
    let d = IoctlNumber::decode(request).dir.0;
    (d & IoctlDir::WRITE.0 != 0, d & IoctlDir::READ.0 != 0)
}

/// The device a `CREATE_DEV` or `DESTROY_DEV` argument names.
fn named_device(request: u32, arg: &[u8]) -> Option<String> {
    if request != VDUSE_CREATE_DEV && request != VDUSE_DESTROY_DEV {
        return None;
    }
    let name = arg.get(..VDUSE_NAME_MAX.min(arg.len()))?;
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Some(String::from_utf8_lossy(&name[..end]).into_owned())
}

/// The descriptor an ioctl passes in (the kick eventfd), if any.
pub(crate) fn fd_passed(request: u32, arg_in: Option<&[u8]>) -> Option<i32> {
    if request != VDUSE_VQ_SETUP_KICKFD {
        return None;
    }
    let b = arg_in?.get(4..8)?;
    Some(i32::from_ne_bytes([b[0], b[1], b[2], b[3]])).filter(|&fd| fd >= 0)
}

/// Whether a successful ioctl's result is a new descriptor.
pub(crate) fn returns_fd(request: u32) -> bool {
    request == VDUSE_IOTLB_GET_FD
}

/// VDUSE devices seen.
#[derive(Default)]
pub(crate) struct Devices {
    /// Device name (`control` for the control node) → (connection, messages).
    open: HashMap<String, (u32, u64)>,
}

impl Devices {
    fn conn(&mut self, device: &str, ids: &mut Ids, sink: &mut dyn Sink) -> io::Result<u32> {
        if let Some((id, _)) = self.open.get(device) {
            return Ok(*id);
        }
        let id = ids.next();
        self.open.insert(device.to_owned(), (id, 0));
        sink.event(&Event::Open {
            conn: id,
            name: &format!("vduse:{id}:/dev/vduse/{device}"),
            protocol: Protocol::Vduse,
            detail: "",
        })?;
        Ok(id)
    }

    /// A request read from (`Direction::ClientToServer`) or a response written to the device node.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn message(
        &mut self,
        device: &str,
        direction: Direction,
        ts_ns: u64,
        data: &[u8],
        ids: &mut Ids,
        sink: &mut dyn Sink,
    ) -> io::Result<()> {
        let conn = self.conn(device, ids, sink)?;
        if let Some(c) = self.open.get_mut(device) {
            c.1 += 1;
        }
        sink.event(&Event::Message {
            conn,
            direction,
            protocol: Protocol::Vduse,
            ts_ns,
            data,
            fds: &[],
            truncated: false,
        })
    }

    /// An ioctl on the control node (`device` `None`) or on a device node.
    pub(crate) fn ioctl(
        &mut self,
        device: Option<&str>,
        rec: &IoctlRecord<'_>,
        fds: &[String],
        ts_ns: u64,
        ids: &mut Ids,
        sink: &mut dyn Sink,
    ) -> io::Result<()> {
        let named = rec
            .arg_in
            .and_then(|a| named_device(rec.request, a))
            .filter(|n| !n.is_empty());
        let device = device.map(str::to_owned).or(named.clone());
        let device = device.as_deref().unwrap_or(CONTROL);
        let conn = self.conn(device, ids, sink)?;
        let mut data = Vec::new();
        rec.encode(&mut data);
        if let Some(c) = self.open.get_mut(device) {
            c.1 += 1;
        }
        sink.event(&Event::Message {
            conn,
            direction: Direction::ServerToClient,
            protocol: Protocol::VduseIoctl,
            ts_ns,
            data: &data,
            fds,
            truncated: false,
        })?;
        if rec.request == VDUSE_DESTROY_DEV
            && rec.result == 0
            && let Some((id, n)) = self.open.remove(device)
        {
            sink.event(&Event::Close {
                conn: id,
                messages: n,
            })?;
        }
        Ok(())
    }

    /// Reports every device still open as closed (the tracer is finishing).
    pub(crate) fn end_all(&mut self, sink: &mut dyn Sink) -> io::Result<()> {
        let mut open: Vec<(u32, u64)> = self.open.drain().map(|(_, v)| v).collect();
        open.sort_unstable();
        for (conn, messages) in open {
            sink.event(&Event::Close { conn, messages })?;
        }
        Ok(())
    }
}

/// `VduseConfigData` is the fixed part of `DEV_SET_CONFIG`'s argument (the tail's length is at its
/// offset 4).
const _: () = assert!(VduseConfigData::SIZE == 8);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::event::tests::Collect;
    use vfu_codec::vduse::{VDUSE_GET_API_VERSION, VDUSE_VQ_GET_INFO};

    #[test]
    fn argument_sizes_and_directions() {
        assert_eq!(arg_len(VDUSE_GET_API_VERSION, None), 8);
        assert_eq!(arg_dirs(VDUSE_GET_API_VERSION), (false, true));
        assert_eq!(arg_dirs(VDUSE_VQ_GET_INFO), (true, true));
        assert_eq!(arg_len(VDUSE_CREATE_DEV, None), 336);
        let mut cfg = vec![0u8; 336];
        cfg[332..336].copy_from_slice(&24u32.to_ne_bytes());
        assert_eq!(arg_len(VDUSE_CREATE_DEV, Some(&cfg)), 360);
        cfg[332..336].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert_eq!(arg_len(VDUSE_CREATE_DEV, Some(&cfg)), MAX_ARG);
        let mut set = [0u8; 8];
        set[4] = 6;
        assert_eq!(arg_len(VDUSE_DEV_SET_CONFIG, Some(&set)), 14);
        let mut kick = [0u8; 8];
        kick[4..].copy_from_slice(&5i32.to_ne_bytes());
        assert_eq!(fd_passed(VDUSE_VQ_SETUP_KICKFD, Some(&kick)), Some(5));
        kick[4..].copy_from_slice(&(-1i32).to_ne_bytes());
        assert_eq!(fd_passed(VDUSE_VQ_SETUP_KICKFD, Some(&kick)), None);
    }

    #[test]
    fn create_and_destroy_go_on_the_device_connection() {
        let mut d = Devices::default();
        let mut ids = Ids::default();
        let mut out = Collect::default();
        let api = 0u64.to_ne_bytes();
        d.ioctl(
            None,
            &IoctlRecord {
                request: VDUSE_GET_API_VERSION,
                result: 0,
                arg_in: None,
                arg_out: Some(&api),
            },
            &[],
            1,
            &mut ids,
            &mut out,
        )
        .unwrap();
        let mut cfg = vec![0u8; 336];
        cfg[..4].copy_from_slice(b"blk0");
        d.ioctl(
            None,
            &IoctlRecord {
                request: VDUSE_CREATE_DEV,
                result: 0,
                arg_in: Some(&cfg),
                arg_out: None,
            },
            &[],
            2,
            &mut ids,
            &mut out,
        )
        .unwrap();
        d.message(
            "blk0",
            Direction::ClientToServer,
            3,
            &[0; 152],
            &mut ids,
            &mut out,
        )
        .unwrap();
        d.ioctl(
            None,
            &IoctlRecord {
                request: VDUSE_DESTROY_DEV,
                result: 0,
                arg_in: Some(&cfg[..256]),
                arg_out: None,
            },
            &[],
            4,
            &mut ids,
            &mut out,
        )
        .unwrap();
        d.end_all(&mut out).unwrap();
        assert_eq!(
            out.lines(),
            [
                "open 0 vduse:0:/dev/vduse/control",
                "msg 0 s2c 24 fds=[] ioctl",
                "open 1 vduse:1:/dev/vduse/blk0",
                "msg 1 s2c 352 fds=[] ioctl",
                "msg 1 c2s 152 fds=[] vduse",
                "msg 1 s2c 272 fds=[] ioctl",
                "close 1 3",
                "close 0 1",
            ]
        );
    }
}
