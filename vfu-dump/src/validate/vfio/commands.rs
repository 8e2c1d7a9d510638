//! The path of a command: decoded, checked by its topic's file, its effect journalled, and
//! remembered until its reply.

use super::state::{Op, Status};
use super::{Conn, Ctx, Nego, RECENT_NO_REPLY, Req, le_u16, le_u32};
use crate::validate::caps::{Caps, JSON_AT};
use crate::validate::finding::Sink;
use crate::validate::rules::Rule;
use crate::validate::types::{Event, MAX_PENDING, Profile};
use vfu_codec::vfio::device::VFIO_IRQ_SET_DATA_BOOL;
use vfu_codec::{Body, Command, Direction, HEADER_SIZE, Header, Message, decode};

/// Whether a request's `extra` last bytes are zeros that pad its payload to exactly its `argsz`, for the
/// commands whose `argsz` is the reply buffer offered.
fn zero_padded_to_argsz(cmd: Command, bytes: &[u8], extra: usize) -> bool {
    let argsz_is_buffer = matches!(
        cmd,
        Command::DMA_UNMAP
            | Command::DEVICE_GET_INFO
            | Command::DEVICE_GET_REGION_INFO
            | Command::DEVICE_GET_REGION_IO_FDS
            | Command::DEVICE_GET_IRQ_INFO
    );
    let payload = bytes.len() - HEADER_SIZE;
    argsz_is_buffer
        && le_u32(bytes, HEADER_SIZE).is_some_and(|a| a as usize == payload)
        && bytes[bytes.len() - extra..].iter().all(|&b| b == 0)
}

impl Conn {
    pub(super) fn command(
        &mut self,
        p: Profile,
        h: &Header,
        ev: &Event<'_>,
        sink: &mut Sink<'_>,
        start: usize,
    ) {
        let cmd = h.cmd();
        let ctx = match decode(ev.bytes, ev.direction) {
            Ok(m) => self.command_body(p, &m, ev, sink),
            Err(e) => {
                sink.decode(&e);
                if cmd == Command::VERSION && ev.direction == Direction::ClientToServer {
                    // The JSON may be what failed: the version numbers can still be read.
                    if let Some(major) = le_u16(ev.bytes, 16).filter(|&m| m != 0)
                        && e.offset >= JSON_AT
                    {
                        sink.emit(
                            Rule::VersionMajor,
                            16,
                            format_args!(
                                "the client proposes major version {major}; only 0 exists"
                            ),
                        );
                    }
                    if self.nego != Nego::Done {
                        self.nego = Nego::Requested;
                        self.client = Caps::default();
                    }
                }
                if cmd == Command::DMA_UNMAP
                    && let Some(flags) = le_u32(ev.bytes, 20)
                {
                    // GET_DIRTY_BITMAP makes the body longer: bad flags often show as a short body.
                    Self::unmap_flags(p, flags, sink);
                }
                Ctx::None
            }
        };
        self.expect_reply(p, h, ev, sink.len() > start, ctx, sink);
    }

    /// Remembers a command until its reply comes (`flagged`: whether it raised a finding), or as one
    /// that gets none when it has NO_REPLY, and journals what it changes.
    pub(super) fn expect_reply(
        &mut self,
        p: Profile,
        h: &Header,
        ev: &Event<'_>,
        flagged: bool,
        ctx: Ctx,
        sink: &mut Sink<'_>,
    ) {
        let cmd = h.cmd();
        let op = Self::op(cmd, &ctx);
        if h.no_reply() {
            // No answer will come: the command stands as sent.
            if let Some(op) = op {
                self.record(p, op, Status::Accepted);
            }
            self.no_reply[self.no_reply_at] = Some((ev.direction, h.msg_id.get(), cmd));
            self.no_reply_at = (self.no_reply_at + 1) % RECENT_NO_REPLY;
            return;
        }
        let req = Req {
            dir: ev.direction,
            id: h.msg_id.get(),
            cmd,
            index: ev.index,
            flagged,
            ctx,
            seq: op.map(|op| self.record(p, op, Status::Pending)),
        };
        let Some(dropped) = self.pending.push(req) else {
            return;
        };
        // Its reply can no longer be matched: it stands as sent.
        self.settle(p, dropped.seq, Status::Accepted, None);
        if !self.pending.overflowed {
            self.pending.overflowed = true;
            sink.emit(
                Rule::PendingOverflow,
                0,
                format_args!(
                    "more than {MAX_PENDING} commands are waiting for replies; the oldest are no longer tracked"
                ),
            );
        }
    }

    /// What a command does to the state, from what its reply is checked against.
    pub(super) fn op(cmd: Command, ctx: &Ctx) -> Option<Op> {
        match *ctx {
            Ctx::DmaMap { w, .. } => Some(Op::Map(w)),
            Ctx::DmaUnmap {
                flags, addr, size, ..
            } => Some(Self::unmap_op(flags, addr, size)),
            Ctx::Feature(f) => Self::feature_op(&f),
            _ if cmd == Command::DEVICE_RESET => Some(Op::Reset),
            _ => None,
        }
    }

    /// Applies a command's `op` to the state and journals it.
    pub(super) fn record(&mut self, p: Profile, op: Op, status: Status) -> u64 {
        let support = self.support();
        self.journal.record(&mut self.now, op, status, p, support)
    }

    /// The command journalled as `seq` was answered (`seen`: what its reply reports).
    pub(super) fn settle(
        &mut self,
        p: Profile,
        seq: Option<u64>,
        status: Status,
        seen: Option<Op>,
    ) {
        if let Some(seq) = seq {
            let support = self.support();
            self.journal
                .settle(&mut self.now, seq, status, seen, p, support);
        }
    }

    pub(super) fn command_body(
        &mut self,
        p: Profile,
        m: &Message<'_>,
        ev: &Event<'_>,
        sink: &mut Sink<'_>,
    ) -> Ctx {
        let cmd = m.command();
        let mut fds_checked = false;
        let mut extra = m.trailing.len();
        let ctx = match m.body {
            Body::Version(v) if ev.direction == Direction::ClientToServer => {
                self.req_version(p, v, ev, sink)
            }
            Body::DmaMap(d) => {
                fds_checked = true;
                self.req_dma_map(p, d, ev, sink)
            }
            Body::DmaUnmap { unmap, bitmap, .. } => self.req_dma_unmap(p, unmap, bitmap, sink),
            Body::DeviceInfo(i) => self.req_device_info(i, sink),
            Body::RegionInfo { info, caps } => {
                extra = caps.len();
                self.req_region_info(p, info, sink)
            }
            Body::RegionIoFds { head, .. } => self.req_io_fds(p, head, sink),
            Body::IrqInfo(i) => self.req_irq_info(i, sink),
            Body::SetIrqs { set, .. } => {
                fds_checked = true;
                if set.flags.get() & VFIO_IRQ_SET_DATA_BOOL != 0 {
                    extra = 0; // reported as set-irqs-bool-payload
                }
                self.req_set_irqs(set, m.trailing.len(), ev, sink)
            }
            Body::RegionRw { access, .. } => self.req_region_rw(p, cmd, access, sink),
            Body::DmaRw { access, .. } => self.req_dma_rw(cmd, access, sink),
            Body::WriteMulti { head, entries } => self.req_write_multi(p, head, entries, sink),
            Body::DeviceFeature { head, data } => self.req_feature(p, head, data, ev, sink),
            Body::MigData { head, .. } => self.req_mig_data(p, cmd, head, sink),
            _ => Ctx::None,
        };
        if extra > 0 && p == Profile::LibvfioUser && zero_padded_to_argsz(cmd, ev.bytes, extra) {
            // The libvfio-user client sends info requests as big as the reply buffer they offer.
            extra = 0;
        }
        if extra > 0 {
            let len = ev.bytes.len();
            sink.emit(
                Rule::PayloadLength,
                len - extra,
                format_args!(
                    "the {cmd} command has {extra} byte(s) after its layout, which ends at payload byte {}",
                    len - extra - HEADER_SIZE
                ),
            );
        }
        if !fds_checked && ev.fds > 0 {
            sink.emit(
                Rule::FdsUnexpected,
                0,
                format_args!(
                    "the {cmd} command carries {} file descriptor(s); it takes none",
                    ev.fds
                ),
            );
        }
        ctx
    }
}
