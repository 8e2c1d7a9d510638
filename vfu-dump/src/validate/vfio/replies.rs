//! The path of a reply: matched with the command it answers, checked against it by the command's
//! topic, and the command's effect settled (kept, or undone for an error reply).

use super::state::{Op, Outcome, Overlap, Status};
use super::{
    Conn, Ctx, EEXIST, EINVAL, Nego, Orphan, RECENT_STRAY, Req, errno_label, le_u32, le_u64, side,
};
use crate::validate::caps::Caps;
use crate::validate::finding::Sink;
use crate::validate::rules::Rule;
use crate::validate::types::{Event, Profile};
use vfu_codec::{Body, Command, HEADER_SIZE, Header, Message, decode};

impl Conn {
    pub(super) fn reply(&mut self, p: Profile, h: &Header, ev: &Event<'_>, sink: &mut Sink<'_>) {
        let cmd = h.cmd();
        let id = h.msg_id.get();
        let from = ev.direction.reverse();
        let Some(req) = self.pending.take(|r| r.dir == from && r.id == id) else {
            let to_no_reply = self
                .no_reply
                .iter()
                .flatten()
                .any(|&(d, i, _)| d == from && i == id);
            if to_no_reply {
                sink.emit(
                    Rule::ReplyToNoReply,
                    0,
                    format_args!("{cmd} reply to msg_id {id}, a command sent with NO_REPLY"),
                );
            } else if h.is_error()
                && p == Profile::LibvfioUser
                && self.stray.contains(&Some((from, id)))
            {
                // libvfio-user answers every message that is not a command, an unsolicited reply
                // included, with EINVAL under its msg_id: the stray reply was the violation.
            } else if h.is_error() {
                // Perhaps the answer to a header the server rejected before the rest of its message
                // came: that command is written last, as the stream's truncated tail. Judged at the
                // connection's next message.
                self.orphans.push(Orphan {
                    index: ev.index,
                    id,
                    cmd,
                    from,
                });
            } else {
                sink.emit(
                    Rule::ReplyUnexpected,
                    0,
                    format_args!(
                        "{cmd} reply with msg_id {id}, which no outstanding command from the {} has",
                        side(from)
                    ),
                );
                self.stray[self.stray_at] = Some((ev.direction, id));
                self.stray_at = (self.stray_at + 1) % RECENT_STRAY;
            }
            if let Err(e) = decode(ev.bytes, ev.direction) {
                sink.decode(&e);
            }
            return;
        };
        let status = if h.is_error() {
            Status::Refused
        } else {
            Status::Accepted
        };
        let seen = self.answer(p, h, &req, ev, sink);
        self.settle(p, req.seq, status, seen);
    }

    /// Settles the error replies that matched no command, at the next message of the connection (or
    /// its end, `ev` `None`): the truncated tail of the stream they answer takes them, and any other
    /// message shows they answer nothing.
    pub(super) fn orphans(&mut self, ev: Option<&Event<'_>>, sink: &mut Sink<'_>) {
        if let Some(ev) = ev.filter(|ev| ev.truncated) {
            if let Some(h) = Header::peek(ev.bytes).filter(|h| !h.is_reply()) {
                let id = h.msg_id.get();
                self.orphans
                    .retain(|o| !(o.from == ev.direction && o.id == id));
            }
            // Both streams may end inside a message: the other tail may follow.
            return;
        }
        for o in self.orphans.drain(..) {
            sink.emit_at(
                Rule::ReplyUnexpected,
                o.index,
                0,
                format_args!(
                    "{} reply with msg_id {}, which no outstanding command from the {} has",
                    o.cmd,
                    o.id,
                    side(o.from)
                ),
            );
        }
    }

    /// Checks a reply against the command `req` it answers; returns what it reports of the state.
    pub(super) fn answer(
        &mut self,
        p: Profile,
        h: &Header,
        req: &Req,
        ev: &Event<'_>,
        sink: &mut Sink<'_>,
    ) -> Option<Op> {
        let cmd = h.cmd();
        let id = h.msg_id.get();
        if req.cmd != cmd {
            if p != Profile::Qemu {
                sink.emit(
                    Rule::ReplyCommandMismatch,
                    2,
                    format_args!(
                        "the reply to msg_id {id} says {cmd}; the command (message {}) was {}",
                        req.index, req.cmd
                    ),
                );
            }
            if let Err(e) = decode(ev.bytes, ev.direction) {
                sink.decode(&e);
            }
            return None;
        }
        if h.is_error() {
            self.error_reply(p, h, req, ev, sink);
            return None;
        }
        if p == Profile::Qemu
            && cmd == Command::DMA_READ
            && let Ctx::DmaRw { addr, count } = req.ctx
            && let Some(c) = le_u32(ev.bytes, 24)
            && u64::from(c) == count
            && ev.bytes.len() as u64 == 16 + 12 + count
        {
            // QEMU 10.1's DMA_READ reply: a u32 count, data from payload offset 12.
            if le_u64(ev.bytes, 16) != Some(addr) {
                sink.emit(
                    Rule::ReplyEchoMismatch,
                    16,
                    format_args!("the DMA_READ reply does not echo address {addr:#x}"),
                );
            }
            return None;
        }
        match decode(ev.bytes, ev.direction) {
            Ok(m) => self.reply_body(p, &m, req, ev, sink),
            Err(e) => {
                sink.decode(&e);
                if cmd == Command::VERSION {
                    // Carry on with the defaults rather than flag every later message.
                    self.nego = Nego::Done;
                    self.server = Caps::default();
                }
                None
            }
        }
    }

    pub(super) fn error_reply(
        &mut self,
        p: Profile,
        h: &Header,
        req: &Req,
        ev: &Event<'_>,
        sink: &mut Sink<'_>,
    ) {
        let errno = h.error_no.get();
        let payload = ev.bytes.len() - HEADER_SIZE;
        if payload > 0 && p != Profile::LibvfioUser {
            sink.emit(
                Rule::ErrorReplyPayload,
                HEADER_SIZE,
                format_args!(
                    "the {} error reply carries {payload} payload bytes",
                    req.cmd
                ),
            );
        }
        if ev.fds > 0 {
            sink.emit(
                Rule::FdsUnexpected,
                0,
                format_args!("the {} error reply carries {} fd(s)", req.cmd, ev.fds),
            );
        }
        let mut expected = req.flagged || req.seq.is_some_and(|s| self.journal.moot(s));
        // A map that did not overlap when sent may meet a window that a refused unmap left live.
        let clash = match req.seq.and_then(|s| self.journal.outcome(s)) {
            Some(Outcome::Clash(o, _)) => o,
            _ => Overlap::None,
        };
        match req.ctx {
            Ctx::DmaMap { overlap, .. } if overlap != Overlap::None || clash != Overlap::None => {
                let overlap = if overlap == Overlap::None {
                    clash
                } else {
                    overlap
                };
                expected = true;
                let lvu_einval =
                    p == Profile::LibvfioUser && overlap == Overlap::Partial && errno == EINVAL;
                if errno != EEXIST && !lvu_einval {
                    sink.emit(
                        Rule::DmaMapOverlapReply,
                        12,
                        format_args!(
                            "the overlapping DMA_MAP (message {}) was refused with {}; the spec says EEXIST",
                            req.index,
                            errno_label(errno)
                        ),
                    );
                }
            }
            // A refused first VERSION may be retried; a refused repeat leaves the session as it was.
            Ctx::Version { .. } if self.nego == Nego::Requested => {
                self.nego = Nego::Start;
            }
            _ => {}
        }
        if !expected {
            sink.emit(
                Rule::RequestRejected,
                12,
                format_args!(
                    "the server refused {} (message {}) with {}",
                    req.cmd,
                    req.index,
                    errno_label(errno)
                ),
            );
        }
    }

    pub(super) fn reply_body(
        &mut self,
        p: Profile,
        m: &Message<'_>,
        req: &Req,
        ev: &Event<'_>,
        sink: &mut Sink<'_>,
    ) -> Option<Op> {
        let cmd = req.cmd;
        let len = ev.bytes.len();
        let mut seen = None;
        let payload = len - HEADER_SIZE;
        let mut fds_checked = false;
        let mut extra = m.trailing.len();
        let mut asked: Option<u32> = None;
        match (req.ctx, m.body) {
            (
                Ctx::Version {
                    major,
                    minor,
                    msg_size,
                },
                Body::Version(v),
            ) => {
                fds_checked = true;
                self.reply_version(p, v, (major, minor, msg_size), ev, sink);
            }
            (Ctx::DmaMap { overlap, .. }, Body::Empty) => self.reply_dma_map(p, overlap, req, sink),
            (
                Ctx::DmaUnmap {
                    argsz,
                    flags,
                    addr,
                    size,
                },
                Body::DmaUnmap { unmap, .. },
            ) => {
                asked = Some(argsz);
                self.reply_dma_unmap(unmap, (flags, addr, size), payload - extra, cmd, sink);
            }
            (Ctx::Info { argsz, .. }, Body::DeviceInfo(i)) => {
                asked = Some(argsz);
                self.reply_device_info(i, payload - extra, cmd, sink);
            }
            (Ctx::Info { argsz, index }, Body::RegionInfo { info, caps }) => {
                asked = Some(argsz);
                fds_checked = true;
                extra = 0;
                self.reply_region_info(p, m, info, caps, argsz, index, ev, sink);
            }
            (Ctx::Info { argsz, index }, Body::RegionIoFds { head, entries }) => {
                asked = Some(argsz);
                fds_checked = true;
                self.reply_io_fds(p, head, entries, argsz, index, payload - extra, ev, sink);
            }
            (Ctx::Info { argsz, index }, Body::IrqInfo(i)) => {
                asked = Some(argsz);
                self.reply_irq_info(i, index, payload - extra, cmd, sink);
            }
            (
                Ctx::RegionRw {
                    offset,
                    region,
                    count,
                },
                Body::RegionRw { access, .. },
            ) => {
                Self::reply_region_rw(cmd, access, (offset, region, count), sink);
            }
            // libvfio-user answers a count-0 access with a bare header.
            (Ctx::RegionRw { count, .. }, Body::Empty)
                if !(p == Profile::LibvfioUser && count == 0) =>
            {
                Self::region_rw_header_only(cmd, count, sink);
            }
            (Ctx::DmaRw { addr, count }, Body::DmaRw { access, .. }) => {
                Self::reply_dma_rw(cmd, access, addr, count, sink);
            }
            // QEMU 10.1 answers DMA_WRITE with a bare header.
            (Ctx::DmaRw { .. }, Body::Empty)
                if !(p == Profile::Qemu && cmd == Command::DMA_WRITE) =>
            {
                Self::dma_rw_header_only(cmd, sink);
            }
            (Ctx::WriteMulti { wr_cnt }, Body::WriteMulti { head, .. }) => {
                Self::reply_write_multi(head, wr_cnt, sink);
            }
            (Ctx::Feature(req), Body::DeviceFeature { head, data }) => {
                asked = Some(req.argsz);
                seen = self.reply_feature(head, data, req, payload, sink);
            }
            (Ctx::MigData { argsz, size }, Body::MigData { head, data })
                if cmd == Command::MIG_DATA_READ =>
            {
                asked = Some(argsz);
                extra = Self::reply_mig_data_read(p, head, data, size, extra, sink);
            }
            (Ctx::MigData { .. }, Body::MigData { .. }) => {
                // MIG_DATA_WRITE: the current spec's reply has no payload (the pending one has 8 bytes).
                extra = payload;
            }
            _ => {}
        }
        if extra > 0 {
            sink.emit(
                Rule::PayloadLength,
                len - extra,
                format_args!(
                    "the {cmd} reply has {extra} byte(s) after its layout, which ends at payload byte {}",
                    payload - extra
                ),
            );
        }
        if let Some(a) = asked
            && payload > a as usize
            && !(p == Profile::LibvfioUser && cmd == Command::MIG_DATA_READ)
        {
            sink.emit(
                Rule::ReplyExceedsArgsz,
                HEADER_SIZE,
                format_args!(
                    "the {cmd} reply payload is {payload} bytes; the request's argsz offered {a}"
                ),
            );
        }
        if !fds_checked && ev.fds > 0 {
            sink.emit(
                Rule::FdsUnexpected,
                0,
                format_args!(
                    "the {cmd} reply carries {} file descriptor(s); it takes none",
                    ev.fds
                ),
            );
        }
        seen
    }

    /// A complete reply's argsz is its payload size.
    pub(super) fn reply_argsz(
        &self,
        argsz: u32,
        payload: usize,
        cmd: Command,
        sink: &mut Sink<'_>,
    ) {
        if argsz as usize != payload {
            sink.emit(
                Rule::ArgszMismatch,
                16,
                format_args!("the {cmd} reply argsz is {argsz}; its payload is {payload} bytes"),
            );
        }
    }
}
