//! The device and its regions: DEVICE_GET_INFO, DEVICE_GET_REGION_INFO, DEVICE_GET_REGION_IO_FDS,
//! REGION_READ/WRITE and REGION_WRITE_MULTI.

use vfu_codec::vfio::device::{
    DeviceInfo, IoFdEntries, RegionCap, RegionInfo, RegionIoFds, VFIO_DEVICE_FLAGS_PCI,
    VFIO_REGION_INFO_FLAG_CAPS, VFIO_REGION_INFO_FLAG_MMAP, VFIO_REGION_INFO_FLAG_READ,
    VFIO_REGION_INFO_FLAG_WRITE,
};
use vfu_codec::vfio::rw::{RegionAccess, RegionWriteEntry, RegionWriteMulti};
use vfu_codec::{Command, HEADER_SIZE, Message};

use crate::validate::finding::Sink;
use crate::validate::rules::Rule;
use crate::validate::types::{Event, Profile};

use super::{Conn, Ctx, DeviceSeen, MIB, PCI_MIN_REGIONS, PCI_NUM_IRQS, Region};

/// Checks one sparse mmap area of a region-info reply: inside the region, and its fd index (if any)
/// among the reply's fds.
fn sparse_area(
    n: usize,
    at: usize,
    (off, len, fd): (u64, u64, Option<u32>),
    size: u64,
    fds: u32,
    sink: &mut Sink<'_>,
) {
    if off.checked_add(len).is_none_or(|end| end > size) {
        sink.emit(
            Rule::RegionInfoCaps,
            at,
            format_args!(
                "sparse area {n} [{off:#x}, +{len:#x}) lies beyond the region's {size:#x} bytes"
            ),
        );
    }
    if let Some(f) = fd.filter(|&f| f >= fds) {
        sink.emit(
            Rule::RegionInfoCaps,
            at + 24,
            format_args!("sparse area {n} names fd_index {f}, but the reply carries {fds} fd(s)"),
        );
    }
}

impl Conn {
    pub(super) fn region(&self, index: u32) -> Option<&Region> {
        self.regions.iter().find(|r| r.index == index)
    }

    pub(super) fn req_device_info(&mut self, i: &DeviceInfo, sink: &mut Sink<'_>) -> Ctx {
        let argsz = i.argsz.get();
        if argsz < 16 {
            sink.emit(
                Rule::ArgszTooSmall,
                16,
                format_args!("DEVICE_GET_INFO argsz is {argsz}; the reply needs 16"),
            );
        }
        for (name, at, v) in [
            ("flags", 20, i.flags.get()),
            ("num_regions", 24, i.num_regions.get()),
            ("num_irqs", 28, i.num_irqs.get()),
        ] {
            if v != 0 {
                sink.emit(
                    Rule::RequestFieldNonzero,
                    at,
                    format_args!("DEVICE_GET_INFO request has {name} {v:#x}; it must be 0"),
                );
                break;
            }
        }
        Ctx::Info { argsz, index: 0 }
    }

    /// Checks a region index against the device's region count, or against libvfio-user's 9 regions
    /// before DEVICE_GET_INFO under its profile.
    pub(super) fn region_index(&self, p: Profile, index: u32, at: usize, sink: &mut Sink<'_>) {
        match self.device {
            Some(d) if index >= d.num_regions => sink.emit(
                Rule::RegionIndex,
                at,
                format_args!(
                    "region index {index:#x} is not below num_regions {}",
                    d.num_regions
                ),
            ),
            None if index >= PCI_MIN_REGIONS && p == Profile::LibvfioUser => sink.emit(
                Rule::RegionIndex,
                at,
                format_args!(
                    "region index {index:#x} is not below {PCI_MIN_REGIONS}, the number of regions a libvfio-user device has"
                ),
            ),
            None if index >= PCI_MIN_REGIONS => sink.emit(
                Rule::RegionIndexUnverified,
                at,
                format_args!(
                    "region index {index:#x} is beyond the {PCI_MIN_REGIONS} PCI regions and no DEVICE_GET_INFO reply has been seen"
                ),
            ),
            _ => {}
        }
    }

    pub(super) fn req_region_info(
        &mut self,
        p: Profile,
        i: &RegionInfo,
        sink: &mut Sink<'_>,
    ) -> Ctx {
        let (argsz, index) = (i.argsz.get(), i.index.get());
        if argsz < 32 {
            sink.emit(
                Rule::ArgszTooSmall,
                16,
                format_args!(
                    "DEVICE_GET_REGION_INFO argsz is {argsz}; the reply needs at least 32"
                ),
            );
        }
        self.region_index(p, index, 24, sink);
        for (name, at, v) in [
            ("flags", 20, u64::from(i.flags.get())),
            ("cap_offset", 28, u64::from(i.cap_offset.get())),
            ("size", 32, i.size.get()),
            ("offset", 40, i.offset.get()),
        ] {
            if v != 0 {
                sink.emit(
                    Rule::RequestFieldNonzero,
                    at,
                    format_args!("DEVICE_GET_REGION_INFO request has {name} {v:#x}; it must be 0"),
                );
                break;
            }
        }
        Ctx::Info { argsz, index }
    }

    pub(super) fn req_io_fds(&mut self, p: Profile, h: &RegionIoFds, sink: &mut Sink<'_>) -> Ctx {
        let (argsz, index) = (h.argsz.get(), h.index.get());
        if argsz < 16 {
            sink.emit(
                Rule::ArgszTooSmall,
                16,
                format_args!(
                    "DEVICE_GET_REGION_IO_FDS argsz is {argsz}; the reply needs at least 16"
                ),
            );
        }
        if p == Profile::LibvfioUser && u64::from(argsz) > MIB {
            sink.emit(
                Rule::ArgszTooLarge,
                16,
                format_args!(
                    "DEVICE_GET_REGION_IO_FDS argsz is {argsz}; libvfio-user refuses more than {MIB}"
                ),
            );
        }
        if h.flags.get() != 0 {
            sink.emit(
                Rule::FlagsReserved,
                20,
                format_args!(
                    "DEVICE_GET_REGION_IO_FDS flags are {:#x}; they must be 0",
                    h.flags.get()
                ),
            );
        }
        if h.count.get() != 0 {
            sink.emit(
                Rule::RequestFieldNonzero,
                28,
                format_args!(
                    "DEVICE_GET_REGION_IO_FDS request has count {}; it must be 0",
                    h.count.get()
                ),
            );
        }
        self.region_index(p, index, 24, sink);
        Ctx::Info { argsz, index }
    }

    pub(super) fn req_region_rw(
        &mut self,
        p: Profile,
        cmd: Command,
        a: &RegionAccess,
        sink: &mut Sink<'_>,
    ) -> Ctx {
        let (offset, region, count) = (a.offset.get(), a.region.get(), a.count.get());
        self.region_index(p, region, 24, sink);
        let max = self.server_max_xfer();
        if u64::from(count) > max {
            sink.emit(
                Rule::XferSizeOverMax,
                28,
                format_args!("{cmd} count {count} exceeds the server's max_data_xfer_size {max}"),
            );
        }
        self.region_range(region, offset, u64::from(count), 16, sink);
        if let Some(r) = self.region(region) {
            let (need, what) = if cmd == Command::REGION_READ {
                (VFIO_REGION_INFO_FLAG_READ, "readable")
            } else {
                (VFIO_REGION_INFO_FLAG_WRITE, "writable")
            };
            if r.flags & need == 0 {
                sink.emit(
                    Rule::RegionAccessFlags,
                    24,
                    format_args!(
                        "{cmd} on region {region}, which is not {what} (flags {:#x})",
                        r.flags
                    ),
                );
            }
        }
        Ctx::RegionRw {
            offset,
            region,
            count,
        }
    }

    pub(super) fn region_range(
        &self,
        region: u32,
        offset: u64,
        count: u64,
        at: usize,
        sink: &mut Sink<'_>,
    ) {
        // Overflow needs no region size: it is wrong whatever the region is.
        let Some(end) = offset.checked_add(count) else {
            sink.emit(
                Rule::RegionRange,
                at,
                format_args!("offset {offset:#x} + count {count} overflows"),
            );
            return;
        };
        if let Some(r) = self.region(region).filter(|r| end > r.size) {
            sink.emit(
                Rule::RegionRange,
                at,
                format_args!(
                    "[{offset:#x}, {end:#x}) ends beyond region {region}, which is {:#x} bytes",
                    r.size
                ),
            );
        }
    }

    pub(super) fn req_write_multi(
        &mut self,
        p: Profile,
        h: &RegionWriteMulti,
        entries: &[RegionWriteEntry],
        sink: &mut Sink<'_>,
    ) -> Ctx {
        if self.server.write_multiple != Some(true) {
            sink.emit(
                Rule::WriteMultiNotNegotiated,
                2,
                format_args!(
                    "REGION_WRITE_MULTI sent though the server did not advertise write_multiple"
                ),
            );
        }
        for (i, e) in entries.iter().enumerate() {
            let at = HEADER_SIZE + 8 + 24 * i;
            let (region, count) = (e.region.get(), e.count.get());
            self.region_index(p, region, at + 8, sink);
            if !(1..=8).contains(&count) {
                sink.emit(
                    Rule::RegionRange,
                    at + 12,
                    format_args!(
                        "REGION_WRITE_MULTI entry {i} has count {count}; it must be 1 to 8"
                    ),
                );
            } else {
                self.region_range(region, e.offset.get(), u64::from(count), at, sink);
            }
        }
        Ctx::WriteMulti {
            wr_cnt: h.wr_cnt.get(),
        }
    }

    /// A DEVICE_GET_INFO reply: the device's region and IRQ counts, remembered.
    pub(super) fn reply_device_info(
        &mut self,
        i: &DeviceInfo,
        payload: usize,
        cmd: Command,
        sink: &mut Sink<'_>,
    ) {
        self.reply_argsz(i.argsz.get(), payload, cmd, sink);
        let d = DeviceSeen {
            flags: i.flags.get(),
            num_regions: i.num_regions.get(),
            num_irqs: i.num_irqs.get(),
        };
        if d.flags & VFIO_DEVICE_FLAGS_PCI != 0
            && (d.num_regions < PCI_MIN_REGIONS || d.num_irqs < PCI_NUM_IRQS)
        {
            sink.emit(
                Rule::DeviceInfoPci,
                24,
                format_args!(
                    "a PCI device reports {} regions and {} IRQ indices; PCI has at least 9 and 5",
                    d.num_regions, d.num_irqs
                ),
            );
        }
        self.device = Some(d);
    }

    /// A REGION_READ/WRITE reply with its 16-byte head: an echo of the request's `offset` and `region`,
    /// and at most its `count`.
    pub(super) fn reply_region_rw(
        cmd: Command,
        access: &RegionAccess,
        (offset, region, count): (u64, u32, u32),
        sink: &mut Sink<'_>,
    ) {
        if access.offset.get() != offset || access.region.get() != region {
            sink.emit(
                Rule::ReplyEchoMismatch,
                16,
                format_args!(
                    "the {cmd} reply is for region {} offset {:#x}; the request was region {region} offset {offset:#x}",
                    access.region.get(),
                    access.offset.get()
                ),
            );
        }
        if access.count.get() > count {
            sink.emit(
                Rule::ReplyEchoMismatch,
                28,
                format_args!(
                    "the {cmd} reply reports {} bytes; the request asked for {count}",
                    access.count.get()
                ),
            );
        }
    }

    /// A REGION_READ/WRITE success reply without its head.
    pub(super) fn region_rw_header_only(cmd: Command, count: u32, sink: &mut Sink<'_>) {
        sink.emit(
            Rule::ReplyHeaderOnly,
            0,
            format_args!(
                "the {cmd} success reply is header-only; the spec echoes the 16-byte head (count {count})"
            ),
        );
    }

    /// A REGION_WRITE_MULTI reply: no more writes done than the request's `wr_cnt`.
    pub(super) fn reply_write_multi(head: &RegionWriteMulti, wr_cnt: u64, sink: &mut Sink<'_>) {
        if head.wr_cnt.get() > wr_cnt {
            sink.emit(
                Rule::ReplyEchoMismatch,
                16,
                format_args!(
                    "the REGION_WRITE_MULTI reply reports {} writes; the request had {wr_cnt}",
                    head.wr_cnt.get()
                ),
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn reply_region_info(
        &mut self,
        p: Profile,
        m: &Message<'_>,
        info: &RegionInfo,
        caps: &[u8],
        asked: u32,
        index: u32,
        ev: &Event<'_>,
        sink: &mut Sink<'_>,
    ) {
        let (full, flags, size) = (info.argsz.get(), info.flags.get(), info.size.get());
        let payload = 32 + caps.len();
        if info.index.get() != index {
            sink.emit(
                Rule::ReplyEchoMismatch,
                24,
                format_args!(
                    "the GET_REGION_INFO reply is for region {}; the request asked for {index}",
                    info.index.get()
                ),
            );
        }
        if full > asked {
            // Cut short: only the fixed part, no capabilities and no fd.
            if flags & VFIO_REGION_INFO_FLAG_CAPS != 0 {
                sink.emit(
                    Rule::RegionInfoCaps,
                    20,
                    format_args!(
                        "the reply is cut short (argsz {full} > the {asked} asked) but sets CAPS"
                    ),
                );
            }
            if ev.fds > 0 {
                sink.emit(
                    Rule::FdsUnexpected,
                    0,
                    format_args!(
                        "the cut-short GET_REGION_INFO reply (argsz {full} > {asked}) carries {} fd(s)",
                        ev.fds
                    ),
                );
            }
            let padded = p == Profile::LibvfioUser
                && payload <= asked as usize
                && caps.iter().all(|&b| b == 0);
            if !caps.is_empty() && !padded {
                sink.emit(
                    Rule::PayloadLength,
                    HEADER_SIZE + 32,
                    format_args!(
                        "the cut-short GET_REGION_INFO reply has {} bytes after its 32-byte fixed part",
                        caps.len()
                    ),
                );
            }
        } else {
            self.reply_argsz(full, payload, Command::DEVICE_GET_REGION_INFO, sink);
            if flags & VFIO_REGION_INFO_FLAG_CAPS != 0 {
                let at = info.cap_offset.get();
                if at < 32 || u64::from(at) + 8 > u64::from(full) {
                    sink.emit(
                        Rule::RegionInfoCaps,
                        28,
                        format_args!("cap_offset {at} is outside [32, argsz {full} - 8]"),
                    );
                }
            }
            for cap in m.body.region_caps().into_iter().flatten().flatten() {
                match cap {
                    RegionCap::SparseMmap { at, areas, .. } => {
                        for (n, a) in areas.iter().enumerate() {
                            let area = (a.offset.get(), a.size.get(), None);
                            sparse_area(
                                n,
                                HEADER_SIZE + at + 16 + 16 * n,
                                area,
                                size,
                                ev.fds,
                                sink,
                            );
                        }
                    }
                    RegionCap::SparseMmapFds { at, areas, .. } => {
                        for (n, a) in areas.iter().enumerate() {
                            let area = (a.offset.get(), a.size.get(), Some(a.fd_index.get()));
                            sparse_area(
                                n,
                                HEADER_SIZE + at + 16 + 32 * n,
                                area,
                                size,
                                ev.fds,
                                sink,
                            );
                        }
                    }
                    _ => {}
                }
            }
            if flags & VFIO_REGION_INFO_FLAG_MMAP != 0 && ev.fds == 0 {
                sink.emit(
                    Rule::FdsMissing,
                    0,
                    format_args!("region {index} is MMAP but the reply carries no fd"),
                );
            }
            if flags & VFIO_REGION_INFO_FLAG_MMAP == 0 && ev.fds > 0 {
                sink.emit(
                    Rule::FdsUnexpected,
                    0,
                    format_args!(
                        "region {index} is not MMAP but the reply carries {} fd(s)",
                        ev.fds
                    ),
                );
            }
        }
        let r = Region { index, size, flags };
        match self.regions.iter_mut().find(|x| x.index == index) {
            Some(x) => *x = r,
            None => self.regions.push(r),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn reply_io_fds(
        &mut self,
        p: Profile,
        head: &RegionIoFds,
        entries: IoFdEntries<'_>,
        asked: u32,
        index: u32,
        payload: usize,
        ev: &Event<'_>,
        sink: &mut Sink<'_>,
    ) {
        let (full, count) = (head.argsz.get(), head.count.get());
        if head.index.get() != index {
            sink.emit(
                Rule::ReplyEchoMismatch,
                24,
                format_args!(
                    "the GET_REGION_IO_FDS reply is for region {}; the request asked for {index}",
                    head.index.get()
                ),
            );
        }
        if head.flags.get() != 0 {
            sink.emit(
                Rule::FlagsReserved,
                20,
                format_args!(
                    "GET_REGION_IO_FDS reply flags are {:#x}; they must be 0",
                    head.flags.get()
                ),
            );
        }
        if full > asked {
            if !entries.is_empty() || payload > 16 {
                sink.emit(
                    Rule::PayloadLength,
                    HEADER_SIZE + 16,
                    format_args!(
                        "the cut-short GET_REGION_IO_FDS reply (argsz {full} > {asked}) carries entries"
                    ),
                );
            }
            if ev.fds > 0 {
                sink.emit(
                    Rule::FdsUnexpected,
                    0,
                    format_args!(
                        "the cut-short GET_REGION_IO_FDS reply carries {} fd(s)",
                        ev.fds
                    ),
                );
            }
            return;
        }
        self.reply_argsz(full, payload, Command::DEVICE_GET_REGION_IO_FDS, sink);
        if entries.layout().stride() == 48 && !entries.is_empty() && p != Profile::LibvfioUser {
            sink.emit(
                Rule::IoFdsStride48,
                HEADER_SIZE + 16,
                format_args!("the IO_FDS entries are 48 bytes apart; the spec's entry is 40"),
            );
        }
        // libvfio-user sends fd_index -1 for an ioeventfd registered without a descriptor.
        let no_fd = |fd: u32| fd == u32::MAX && p == Profile::LibvfioUser;
        let needs_fd = match entries {
            IoFdEntries::Spec(es) => es.iter().any(|e| !no_fd(e.fd_index.get())),
            IoFdEntries::Shadow(es) => es.iter().any(|e| !no_fd(e.fd_index.get())),
        };
        if count > 0 && ev.fds == 0 && (entries.is_empty() || needs_fd) {
            sink.emit(
                Rule::FdsMissing,
                0,
                format_args!("the GET_REGION_IO_FDS reply lists {count} entries but carries no fd"),
            );
        }
        let stride = entries.layout().stride();
        let size = self.region(index).map(|r| r.size);
        let mut check = |n: usize, off: u64, len: u64, fd: u32| {
            let at = HEADER_SIZE + 16 + n * stride;
            if no_fd(fd) {
                sink.emit(
                    Rule::IoFdsNoFd,
                    at + 16,
                    format_args!(
                        "IO_FDS entry {n} has fd_index 0xffffffff: an ioeventfd that libvfio-user has without a descriptor"
                    ),
                );
            } else if fd >= ev.fds && ev.fds > 0 {
                sink.emit(
                    Rule::IoFdsEntry,
                    at + 16,
                    format_args!(
                        "IO_FDS entry {n} names fd_index {fd}, but the reply carries {} fd(s)",
                        ev.fds
                    ),
                );
            }
            if let Some(s) = size
                && off.checked_add(len).is_none_or(|end| end > s)
            {
                sink.emit(
                    Rule::IoFdsEntry,
                    at,
                    format_args!("IO_FDS entry {n} [{off:#x}, +{len:#x}) lies beyond region {index}'s {s:#x} bytes"),
                );
            }
        };
        match entries {
            IoFdEntries::Spec(es) => {
                for (n, e) in es.iter().enumerate() {
                    check(n, e.offset.get(), e.size.get(), e.fd_index.get());
                }
            }
            IoFdEntries::Shadow(es) => {
                for (n, e) in es.iter().enumerate() {
                    check(n, e.gpa_offset.get(), e.size.get(), e.fd_index.get());
                }
            }
        }
    }
}
