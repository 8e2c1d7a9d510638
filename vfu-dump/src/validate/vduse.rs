//! VDUSE checks ("Rules a validator can check" in `docs/vduse-wire.md`): every request gets exactly one
//! response with its `request_id`, reserved words and unused union bytes are zero, `result` is 0 or 1,
//! and a GET_VQ_STATE response echoes the queue index.
//!
//! When the capture has the device's ioctls (`vfu-dump trace` records them), a successful
//! `VDUSE_CREATE_DEV` gives the queue count, the offered features and the config space size, which
//! bound the queue index of GET_VQ_STATE requests and of the queue ioctls, the features
//! `VDUSE_DEV_GET_FEATURES` returns, and the range `VDUSE_DEV_SET_CONFIG` writes. Without it these
//! checks are skipped, never guessed.

use vfu_codec::Direction;
use vfu_codec::vduse::{
    RequestBody, VDUSE_GET_VQ_STATE, VDUSE_PAYLOAD_OFFSET, VDUSE_REQ_RESULT_FAILED, decode_request,
    decode_response, request_type_name,
};

use super::finding::Sink;
use super::pending::Pending;
use super::rules::Rule;
use super::types::{Event, MAX_PENDING};
use crate::capture::ioctl::{IOCTL_HEAD, IoctlRecord};
use vfu_codec::vduse::{
    VDUSE_CREATE_DEV, VDUSE_DEV_GET_FEATURES, VDUSE_DEV_SET_CONFIG, VDUSE_VQ_GET_INFO,
    VDUSE_VQ_INJECT_IRQ, VDUSE_VQ_SETUP, VDUSE_VQ_SETUP_KICKFD, VduseDevConfig, vduse_ioctl,
};
use vfu_codec::wire::WireStruct;

/// Offset of the reserved words in both structs.
const RESERVED_AT: usize = 8;
/// Size of `struct vduse_vq_state`, the GET_VQ_STATE member of both unions.
const VQ_STATE_SIZE: usize = 12;

#[derive(Clone, Copy, Debug)]
struct Request {
    id: u32,
    req_type: u32,
    vq_index: u32,
    index: u64,
}

/// What a successful `VDUSE_CREATE_DEV` said.
#[derive(Clone, Copy, Debug)]
struct Created {
    vq_num: u32,
    features: u64,
    config_size: u32,
    index: u64,
}

/// One VDUSE device's conversation.
#[derive(Debug)]
pub(crate) struct Conn {
    pending: Pending<Request>,
    created: Option<Created>,
}

fn ne_u32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

fn ne_u64(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_ne_bytes)
}

fn ioctl_name(request: u32) -> String {
    vduse_ioctl(request).map_or_else(|| format!("ioctl {request:#010x}"), |i| i.name.to_owned())
}

/// The first non-zero byte of `bytes`, if any.
fn first_nonzero(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b != 0)
}

fn type_label(t: u32) -> String {
    match request_type_name(t) {
        Some(n) => format!("{n} ({t})"),
        None => format!("type {t}"),
    }
}

impl Conn {
    pub(crate) fn new() -> Self {
        Conn {
            pending: Pending::new(),
            created: None,
        }
    }

    /// A queue index against the device's queue count; `at` is its offset in the record.
    fn vq_in_range(&self, what: &str, index: u32, at: usize, sink: &mut Sink<'_>) {
        if let Some(c) = self.created
            && index >= c.vq_num
        {
            sink.emit(
                Rule::VduseVqRange,
                at,
                format_args!(
                    "{what} names queue {index}; VDUSE_CREATE_DEV (message {}) created {} queue(s)",
                    c.index, c.vq_num
                ),
            );
        }
    }

    /// Checks one ioctl record and notes what it says about the device.
    pub(crate) fn ioctl(&mut self, ev: &Event<'_>, sink: &mut Sink<'_>) {
        let rec = match IoctlRecord::parse(ev.bytes) {
            Ok(r) => r,
            Err(e) => {
                sink.emit(
                    Rule::VduseIoctlRecord,
                    e.offset,
                    format_args!("{}", e.message),
                );
                return;
            }
        };
        let name = ioctl_name(rec.request);
        if rec.result < 0 {
            let e = rec.result.unsigned_abs();
            sink.emit(
                Rule::VduseIoctlFailed,
                4,
                format_args!(
                    "{name} failed: -{e} {}",
                    vfu_codec::errno::name(e).unwrap_or("")
                ),
            );
        }
        let ok = rec.result >= 0;
        // Offsets of the argument copies in the record.
        let in_at = IOCTL_HEAD;
        let out_at = IOCTL_HEAD + rec.arg_in.map_or(0, <[u8]>::len);
        let arg_in = rec.arg_in.unwrap_or(&[]);
        match rec.request {
            VDUSE_CREATE_DEV if ok => {
                let f = |name: &str| {
                    VduseDevConfig::FIELDS
                        .iter()
                        .find(|x| x.name == name)
                        .and_then(|x| x.read_u64(arg_in))
                };
                if let (Some(vq_num), Some(features), Some(config_size)) =
                    (f("vq_num"), f("features"), f("config_size"))
                {
                    self.created = Some(Created {
                        vq_num: vq_num as u32,
                        features,
                        config_size: config_size as u32,
                        index: ev.index,
                    });
                }
            }
            VDUSE_VQ_SETUP | VDUSE_VQ_GET_INFO | VDUSE_VQ_SETUP_KICKFD | VDUSE_VQ_INJECT_IRQ => {
                if let Some(index) = ne_u32(arg_in, 0) {
                    self.vq_in_range(&name, index, in_at, sink);
                }
            }
            VDUSE_DEV_SET_CONFIG => {
                if let (Some(c), Some(offset), Some(length)) =
                    (self.created, ne_u32(arg_in, 0), ne_u32(arg_in, 4))
                    && u64::from(offset) + u64::from(length) > u64::from(c.config_size)
                {
                    sink.emit(
                        Rule::VduseConfigRange,
                        in_at,
                        format_args!(
                            "VDUSE_DEV_SET_CONFIG writes {length} bytes at offset {offset}; VDUSE_CREATE_DEV (message {}) gave a config space of {} bytes",
                            c.index, c.config_size
                        ),
                    );
                }
            }
            VDUSE_DEV_GET_FEATURES if ok => {
                if let (Some(c), Some(got)) = (self.created, rec.arg_out.and_then(|a| ne_u64(a, 0)))
                    && got & !c.features != 0
                {
                    sink.emit(
                        Rule::VduseFeatures,
                        out_at,
                        format_args!(
                            "the driver features {got:#x} include {:#x}, which VDUSE_CREATE_DEV (message {}) did not offer ({:#x})",
                            got & !c.features,
                            c.index,
                            c.features
                        ),
                    );
                }
            }
            _ => {}
        }
    }

    pub(crate) fn check(&mut self, ev: &Event<'_>, sink: &mut Sink<'_>) {
        if ev.truncated {
            sink.emit(
                Rule::TruncatedMessage,
                ev.bytes.len(),
                format_args!(
                    "the stream ended after {} of the 152 bytes of a VDUSE message",
                    ev.bytes.len()
                ),
            );
            return;
        }
        if ev.fds > 0 {
            sink.emit(
                Rule::FdsUnexpected,
                0,
                format_args!(
                    "a VDUSE message carries {} file descriptor(s); reads and writes of the device carry none",
                    ev.fds
                ),
            );
        }
        match ev.direction {
            Direction::ClientToServer => self.request(ev, sink),
            Direction::ServerToClient => self.response(ev, sink),
        }
    }

    fn reserved(words: &[u8], sink: &mut Sink<'_>) {
        if let Some(i) = first_nonzero(words) {
            let word = i / 4;
            sink.emit(
                Rule::VduseReserved,
                RESERVED_AT + word * 4,
                format_args!("reserved word {word} is not zero"),
            );
        }
    }

    fn request(&mut self, ev: &Event<'_>, sink: &mut Sink<'_>) {
        let req = match decode_request(ev.bytes) {
            Ok(r) => r,
            Err(e) => {
                sink.decode(&e);
                return;
            }
        };
        let bytes = ev.bytes;
        Self::reserved(&bytes[RESERVED_AT..VDUSE_PAYLOAD_OFFSET], sink);
        let union = &bytes[VDUSE_PAYLOAD_OFFSET..];
        let member = match req.body {
            RequestBody::GetVqState(_) => Some(VQ_STATE_SIZE),
            RequestBody::SetStatus(_) => Some(1),
            RequestBody::UpdateIotlb(_) => Some(16),
            RequestBody::SetVqGroupAsid(_) => Some(8),
            RequestBody::Unknown { .. } => None,
        };
        match member {
            Some(n) => {
                if let Some(i) = first_nonzero(&union[n..]) {
                    sink.emit(
                        Rule::VduseUnionPadding,
                        VDUSE_PAYLOAD_OFFSET + n + i,
                        format_args!(
                            "byte {} of the union of a {} request is not zero; its member is {n} bytes",
                            n + i,
                            type_label(req.req_type())
                        ),
                    );
                }
            }
            None => sink.emit(
                Rule::VduseUnknownType,
                0,
                format_args!("request type {} is not known", req.req_type()),
            ),
        }
        let id = req.request_id();
        if self.pending.any(|p| p.id == id) {
            sink.emit(
                Rule::VduseDuplicateId,
                4,
                format_args!("request_id {id} is already waiting for a response"),
            );
        }
        let vq_index = match req.body {
            RequestBody::GetVqState(s) => {
                self.vq_in_range("GET_VQ_STATE", s.index.get(), VDUSE_PAYLOAD_OFFSET, sink);
                s.index.get()
            }
            _ => 0,
        };
        let dropped = self.pending.push(Request {
            id,
            req_type: req.req_type(),
            vq_index,
            index: ev.index,
        });
        if dropped.is_some() && !self.pending.overflowed {
            self.pending.overflowed = true;
            sink.emit(
                Rule::PendingOverflow,
                0,
                format_args!(
                    "more than {} VDUSE requests are unanswered; the oldest are no longer tracked",
                    MAX_PENDING
                ),
            );
        }
    }

    fn response(&mut self, ev: &Event<'_>, sink: &mut Sink<'_>) {
        let resp = match decode_response(ev.bytes) {
            Ok(r) => r,
            Err(e) => {
                sink.decode(&e);
                return;
            }
        };
        let id = resp.request_id.get();
        let req = self.pending.take(|p| p.id == id);
        if req.is_none() {
            sink.emit(
                Rule::VduseResponseUnexpected,
                0,
                format_args!("response to request_id {id}, which no outstanding request has"),
            );
        }
        let result = resp.result.get();
        if result > VDUSE_REQ_RESULT_FAILED {
            sink.emit(
                Rule::VduseResult,
                4,
                format_args!("result is {result}; only 0 (OK) and 1 (FAILED) are defined"),
            );
        }
        let bytes = ev.bytes;
        Self::reserved(&bytes[RESERVED_AT..VDUSE_PAYLOAD_OFFSET], sink);
        let union = &bytes[VDUSE_PAYLOAD_OFFSET..];
        let Some(req) = req else { return };
        let member = if req.req_type == VDUSE_GET_VQ_STATE {
            let got = resp.vq_state().index.get();
            if got != req.vq_index && resp.is_ok() {
                sink.emit(
                    Rule::VduseVqIndex,
                    VDUSE_PAYLOAD_OFFSET,
                    format_args!(
                        "the GET_VQ_STATE response is for queue {got}, the request (message {}) asked for queue {}",
                        req.index, req.vq_index
                    ),
                );
            }
            VQ_STATE_SIZE
        } else {
            0
        };
        if let Some(i) = first_nonzero(&union[member..]) {
            sink.emit(
                Rule::VduseUnionPadding,
                VDUSE_PAYLOAD_OFFSET + member + i,
                format_args!(
                    "byte {} of the union of the response to a {} request is not zero",
                    member + i,
                    type_label(req.req_type)
                ),
            );
        }
    }

    pub(crate) fn finish(&mut self, sink: &mut Sink<'_>) {
        for r in self.pending.drain() {
            sink.emit_at(
                Rule::RequestUnanswered,
                r.index,
                0,
                format_args!(
                    "VDUSE {} request_id {} got no response before the capture ended",
                    type_label(r.req_type),
                    r.id
                ),
            );
        }
    }
}
