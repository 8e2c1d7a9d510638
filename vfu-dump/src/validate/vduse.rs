//! VDUSE checks ("Rules a validator can check" in `docs/vduse-wire.md`): every request gets exactly one
//! response with its `request_id`, reserved words and unused union bytes are zero, `result` is 0 or 1,
//! and a GET_VQ_STATE response echoes the queue index.

use vfu_codec::Direction;
use vfu_codec::vduse::{
    RequestBody, VDUSE_GET_VQ_STATE, VDUSE_PAYLOAD_OFFSET, VDUSE_REQ_RESULT_FAILED, decode_request,
    decode_response, request_type_name,
};

use super::finding::Sink;
use super::pending::Pending;
use super::rules::Rule;
use super::types::{Event, MAX_PENDING};

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

/// One VDUSE device's conversation.
#[derive(Debug)]
pub(crate) struct Conn {
    pending: Pending<Request>,
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
            RequestBody::GetVqState(s) => s.index.get(),
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
