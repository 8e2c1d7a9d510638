//! DMA_MAP and DMA_UNMAP against the live windows, and the server's DMA_READ/WRITE inside them.

use vfu_codec::Command;
use vfu_codec::vfio::dma::{
    DirtyBitmap, DmaMap, DmaUnmap, VFIO_DMA_UNMAP_FLAG_ALL, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
    VFIO_USER_F_DMA_REGION_FILE_IO, VFIO_USER_F_DMA_REGION_MMAP, VFIO_USER_F_DMA_REGION_READ,
    VFIO_USER_F_DMA_REGION_WRITE, dirty_bitmap_bytes,
};
use vfu_codec::vfio::rw::DmaAccess;

use crate::validate::finding::Sink;
use crate::validate::rules::Rule;
use crate::validate::types::{Event, Profile};

use super::state::{Op, Outcome, Overlap, Tracked, Window};
use super::{Conn, Ctx, LVU_MAX_DMA_SIZE, MIB, Req};

impl Conn {
    /// Checks DMA_UNMAP's flags against what the profile accepts; returns whether they are accepted.
    pub(super) fn unmap_flags(p: Profile, flags: u32, sink: &mut Sink<'_>) -> bool {
        let accepted: &[u32] = match p {
            Profile::Spec => &[0],
            Profile::LibvfioUser => &[
                0,
                VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
                VFIO_DMA_UNMAP_FLAG_ALL,
            ],
            Profile::Qemu => &[0, VFIO_DMA_UNMAP_FLAG_ALL],
        };
        if accepted.contains(&flags) {
            return true;
        }
        let why = match p {
            Profile::Spec => "the spec defines no DMA_UNMAP flags",
            Profile::LibvfioUser => {
                "libvfio-user accepts only GET_DIRTY_BITMAP (1) or UNMAP_ALL (2), alone"
            }
            Profile::Qemu => "QEMU uses only UNMAP_ALL (2)",
        };
        sink.emit(
            Rule::FlagsReserved,
            20,
            format_args!("DMA_UNMAP flags are {flags:#x}; {why}"),
        );
        false
    }

    /// What a DMA_UNMAP does to the windows.
    pub(super) fn unmap_op(flags: u32, addr: u64, size: u64) -> Op {
        if flags & VFIO_DMA_UNMAP_FLAG_ALL != 0 {
            Op::UnmapAll
        } else {
            Op::Unmap { addr, size }
        }
    }

    pub(super) fn req_dma_map(
        &mut self,
        p: Profile,
        d: &DmaMap,
        ev: &Event<'_>,
        sink: &mut Sink<'_>,
    ) -> Ctx {
        let (argsz, flags) = (d.argsz.get(), d.flags.get());
        let (offset, addr, size) = (d.offset.get(), d.address.get(), d.size.get());
        if argsz != 32 {
            sink.emit(
                Rule::ArgszMismatch,
                16,
                format_args!("DMA_MAP argsz is {argsz}; it must be 32, the size of the request"),
            );
        }
        let rw = VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE;
        let modes = VFIO_USER_F_DMA_REGION_MMAP | VFIO_USER_F_DMA_REGION_FILE_IO;
        let allowed = if p == Profile::LibvfioUser {
            rw | modes
        } else {
            rw
        };
        if flags & !allowed != 0 {
            sink.emit(
                Rule::FlagsReserved,
                20,
                format_args!(
                    "DMA_MAP flags {flags:#x} set the undefined bits {:#x}",
                    flags & !allowed
                ),
            );
        } else if flags & modes == modes {
            sink.emit(
                Rule::FlagsReserved,
                20,
                format_args!("DMA_MAP flags {flags:#x} set both access modes MMAP and FILE_IO"),
            );
        }
        if ev.fds > 1 {
            sink.emit(
                Rule::FdsUnexpected,
                0,
                format_args!(
                    "DMA_MAP carries {} file descriptors; it takes at most one",
                    ev.fds
                ),
            );
        }
        if ev.fds == 0 {
            if offset != 0 {
                sink.emit(
                    Rule::RequestFieldNonzero,
                    24,
                    format_args!("DMA_MAP without an fd has offset {offset:#x}; it must be 0"),
                );
            }
            if p == Profile::LibvfioUser && flags & modes != 0 {
                sink.emit(
                    Rule::FdsMissing,
                    0,
                    format_args!(
                        "DMA_MAP asks for an fd access mode ({flags:#x}) but carries no fd"
                    ),
                );
            }
        }
        let end = addr.checked_add(size);
        if size == 0 {
            sink.emit(Rule::DmaMapRange, 40, format_args!("DMA_MAP size is 0"));
        } else if end.is_none() {
            sink.emit(
                Rule::DmaMapRange,
                40,
                format_args!(
                    "DMA_MAP at {addr:#x} of size {size:#x} wraps past the end of the address space"
                ),
            );
        }
        let pgsizes = self.server.pgsizes.filter(|&s| s != 0).unwrap_or(4096);
        let page = 1u64 << pgsizes.trailing_zeros();
        if addr % page != 0 || size % page != 0 {
            let (what, at, v) = if addr % page != 0 {
                ("address", 32, addr)
            } else {
                ("size", 40, size)
            };
            sink.emit(
                Rule::DmaMapAlignment,
                at,
                format_args!(
                    "DMA_MAP {what} {v:#x} is not a multiple of the {page}-byte page size"
                ),
            );
        }
        if p == Profile::LibvfioUser && size > LVU_MAX_DMA_SIZE {
            sink.emit(
                Rule::DmaMapTooLarge,
                40,
                format_args!("DMA_MAP size {size:#x} exceeds libvfio-user's 8 TiB limit"),
            );
        }
        let w = Window {
            addr,
            end: end.unwrap_or(u64::MAX),
            offset,
            prot: flags & rw,
            fd: ev.fds > 0,
            index: ev.index,
        };
        let overlap = match self.now.overlapping(addr, w.end).filter(|_| size > 0) {
            None => Overlap::None,
            Some(o) => {
                let exact = Window {
                    index: o.index,
                    ..w
                } == *o;
                if !(exact && p == Profile::LibvfioUser) {
                    sink.emit(
                        Rule::DmaMapOverlap,
                        32,
                        format_args!(
                            "DMA_MAP [{addr:#x}, {:#x}) overlaps the live window [{:#x}, {:#x}) mapped by message {}",
                            w.end, o.addr, o.end, o.index
                        ),
                    );
                }
                if exact {
                    Overlap::Exact
                } else {
                    Overlap::Partial
                }
            }
        };
        if p != Profile::LibvfioUser && overlap == Overlap::None {
            let max = self.server.max_dma_maps.unwrap_or(65535);
            if self.now.windows.len() as u64 >= max {
                sink.emit(
                    Rule::DmaMapTooMany,
                    0,
                    format_args!(
                        "DMA_MAP would make {} live windows; the server's max_dma_maps is {max}",
                        self.now.windows.len() + 1
                    ),
                );
            }
        }
        Ctx::DmaMap { w, overlap }
    }

    pub(super) fn req_dma_unmap(
        &mut self,
        p: Profile,
        u: &DmaUnmap,
        bitmap: Option<&DirtyBitmap>,
        sink: &mut Sink<'_>,
    ) -> Ctx {
        let (argsz, flags, addr, size) =
            (u.argsz.get(), u.flags.get(), u.address.get(), u.size.get());
        let flags_ok = Self::unmap_flags(p, flags, sink);
        let mut need = 24u64;
        if flags_ok && flags == VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP {
            if let Some(b) = bitmap {
                let (pg, bytes) = (b.pgsize.get(), b.size.get());
                if !pg.is_power_of_two() {
                    sink.emit(
                        Rule::DmaUnmapBitmap,
                        40,
                        format_args!("the dirty bitmap page size {pg:#x} is not a power of two"),
                    );
                    need = 40;
                } else {
                    let want = dirty_bitmap_bytes(size, pg);
                    if want != Some(bytes) {
                        sink.emit(
                            Rule::DmaUnmapBitmap,
                            48,
                            format_args!(
                                "the dirty bitmap size is {bytes}; {size:#x} bytes at {pg:#x}-byte pages need {}",
                                want.unwrap_or(0)
                            ),
                        );
                        need = 40;
                    } else {
                        need = 40u64.saturating_add(bytes);
                    }
                }
            }
            if self.now.logging.is_none() {
                sink.emit(
                    Rule::LoggingNotStarted,
                    20,
                    format_args!(
                        "DMA_UNMAP asks for the dirty bitmap while dirty-page logging is not started"
                    ),
                );
            }
        }
        if u64::from(argsz) < need {
            sink.emit(
                Rule::ArgszTooSmall,
                16,
                format_args!("DMA_UNMAP argsz is {argsz}; its reply needs {need}"),
            );
        }
        if p == Profile::LibvfioUser && u64::from(argsz) > MIB {
            sink.emit(
                Rule::ArgszTooLarge,
                16,
                format_args!("DMA_UNMAP argsz is {argsz}; libvfio-user refuses more than {MIB}"),
            );
        }
        if flags & VFIO_DMA_UNMAP_FLAG_ALL != 0 {
            if flags_ok && (addr != 0 || size != 0) {
                sink.emit(
                    Rule::DmaUnmapAll,
                    24,
                    format_args!(
                        "DMA_UNMAP with UNMAP_ALL has address {addr:#x} and size {size:#x}; both must be 0"
                    ),
                );
            }
        } else if self.now.exact(addr, size).is_none() {
            sink.emit(
                Rule::DmaUnmapNoMatch,
                24,
                format_args!(
                    "DMA_UNMAP [{addr:#x}, +{size:#x}) matches no live window exactly ({} are mapped)",
                    self.now.windows.len()
                ),
            );
        }
        Ctx::DmaUnmap {
            argsz,
            flags,
            addr,
            size,
        }
    }

    /// Whether `[addr, addr + count)` lies in adjacent live windows that all have `prot`: the windows
    /// as every command seen has left them, or as they were before the commands still unanswered (the
    /// server may finish DMA already under way before it answers a DMA_UNMAP, §2.3).
    pub(super) fn dma_cover(&self, addr: u64, count: u64, prot: u32) -> Result<(), (Rule, u64)> {
        cover(&self.now, addr, count, prot)
            .or_else(|e| cover(self.journal.base(), addr, count, prot).map_err(|_| e))
    }

    pub(super) fn req_dma_rw(&mut self, cmd: Command, a: &DmaAccess, sink: &mut Sink<'_>) -> Ctx {
        let (addr, count) = (a.address.get(), a.count.get());
        if self.twin_active && !self.twin_conn {
            sink.emit(
                Rule::TwinSocketDmaOnMain,
                2,
                format_args!("{cmd} sent on the main socket though twin-socket mode is on"),
            );
        }
        let max = self.client_max_xfer();
        if count > max {
            sink.emit(
                Rule::XferSizeOverMax,
                24,
                format_args!("{cmd} count {count} exceeds the client's max_data_xfer_size {max}"),
            );
        }
        // A twin socket's windows were mapped on the main connection: not checked there.
        if !self.twin_conn && count > 0 {
            let (prot, what) = if cmd == Command::DMA_READ {
                (VFIO_USER_F_DMA_REGION_READ, "READ")
            } else {
                (VFIO_USER_F_DMA_REGION_WRITE, "WRITE")
            };
            match self.dma_cover(addr, count, prot) {
                Ok(()) => {}
                Err((Rule::DmaRwPermission, w)) => sink.emit(
                    Rule::DmaRwPermission,
                    16,
                    format_args!(
                        "{cmd} [{addr:#x}, +{count:#x}) touches the window at {w:#x}, mapped without {what}"
                    ),
                ),
                Err((rule, gap)) => sink.emit(
                    rule,
                    16,
                    format_args!(
                        "{cmd} [{addr:#x}, +{count:#x}) is not inside mapped DMA windows (nothing is mapped at {gap:#x})"
                    ),
                ),
            }
        }
        Ctx::DmaRw { addr, count }
    }

    /// A DMA_MAP success reply to a map that met the live windows as `overlap` when it was sent.
    pub(super) fn reply_dma_map(
        &mut self,
        p: Profile,
        overlap: Overlap,
        req: &Req,
        sink: &mut Sink<'_>,
    ) {
        let outcome = req.seq.and_then(|s| self.journal.outcome(s));
        match overlap {
            Overlap::None => {
                // A refused DMA_UNMAP before it left a window live that it overlaps.
                if let Some(Outcome::Clash(_, with)) = outcome {
                    sink.emit(
                        Rule::DmaMapOverlapReply,
                        0,
                        format_args!(
                            "the server accepted the DMA_MAP of message {}, which overlaps the window of message {} that a refused DMA_UNMAP left live",
                            req.index, with
                        ),
                    );
                }
            }
            Overlap::Exact if p == Profile::LibvfioUser => {}
            _ => sink.emit(
                Rule::DmaMapOverlapReply,
                0,
                format_args!(
                    "the server accepted the DMA_MAP of message {}, which overlaps a live window; it must refuse with EEXIST",
                    req.index
                ),
            ),
        }
    }

    /// A DMA_UNMAP success reply: checked against its request (`flags`, `addr`, `size`).
    pub(super) fn reply_dma_unmap(
        &mut self,
        unmap: &DmaUnmap,
        (flags, addr, size): (u32, u64, u64),
        payload: usize,
        cmd: Command,
        sink: &mut Sink<'_>,
    ) {
        if unmap.flags.get() != flags || unmap.address.get() != addr || unmap.size.get() != size {
            sink.emit(
                Rule::ReplyEchoMismatch,
                20,
                format_args!(
                    "the DMA_UNMAP reply has flags {:#x}, address {:#x}, size {:#x}; the request had {flags:#x}, {addr:#x}, {size:#x}",
                    unmap.flags.get(),
                    unmap.address.get(),
                    unmap.size.get()
                ),
            );
        }
        self.reply_argsz(unmap.argsz.get(), payload, cmd, sink);
    }

    /// A DMA_READ/WRITE reply with its 16-byte head: an echo of the request's `addr` and at most `count`.
    pub(super) fn reply_dma_rw(
        cmd: Command,
        access: &DmaAccess,
        addr: u64,
        count: u64,
        sink: &mut Sink<'_>,
    ) {
        if access.address.get() != addr {
            sink.emit(
                Rule::ReplyEchoMismatch,
                16,
                format_args!(
                    "the {cmd} reply is for address {:#x}; the request was {addr:#x}",
                    access.address.get()
                ),
            );
        }
        if access.count.get() > count {
            sink.emit(
                Rule::ReplyEchoMismatch,
                24,
                format_args!(
                    "the {cmd} reply reports {} bytes; the request asked for {count}",
                    access.count.get()
                ),
            );
        }
    }

    /// A DMA_READ/WRITE success reply without its head.
    pub(super) fn dma_rw_header_only(cmd: Command, sink: &mut Sink<'_>) {
        sink.emit(
            Rule::ReplyHeaderOnly,
            0,
            format_args!(
                "the {cmd} success reply is header-only; the spec echoes address and count"
            ),
        );
    }
}

/// Whether `[addr, addr + count)` lies in adjacent windows of `t` that all have `prot`; if not, the
/// rule broken and the address where it fails.
fn cover(t: &Tracked, addr: u64, count: u64, prot: u32) -> Result<(), (Rule, u64)> {
    let end = addr
        .checked_add(count)
        .ok_or((Rule::DmaRwOutsideWindow, addr))?;
    let mut i = t.windows.partition_point(|w| w.end <= addr);
    let mut at = addr;
    while at < end {
        let w = t
            .windows
            .get(i)
            .filter(|w| w.addr <= at)
            .ok_or((Rule::DmaRwOutsideWindow, at))?;
        if w.prot & prot == 0 {
            return Err((Rule::DmaRwPermission, w.addr));
        }
        at = w.end;
        i += 1;
    }
    Ok(())
}
