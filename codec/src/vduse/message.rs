//! Requests read from and responses written to `/dev/vduse/$NAME`: typed views of the union, decoding
//! and encoding.

use core::fmt;

use zerocopy::native_endian::U32;
use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::consts::*;
use super::structs::*;
use super::structs::{GroupAsidIn128, RangeIn128, StatusIn128, VqStateIn128};
use crate::error::{DecodeError, EncodeError, Rule};

/// The member of a request's union, chosen by its `type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestBody<'a> {
    /// `VDUSE_GET_VQ_STATE`: `vq_state`, only `index` meaningful.
    GetVqState(&'a VduseVqState),
    /// `VDUSE_SET_STATUS`: `s`, the new device status.
    SetStatus(&'a VduseDevStatus),
    /// `VDUSE_UPDATE_IOTLB`: `iova`, the range whose mappings changed.
    UpdateIotlb(&'a VduseIovaRange),
    /// SET_VQ_GROUP_ASID (API version 1): the group/asid pair.
    SetVqGroupAsid(&'a VduseVqGroupAsid),
    /// A type this crate does not know (newer kernels add types): the raw union.
    Unknown {
        /// The request's `type`.
        req_type: u32,
        /// The union's bytes.
        raw: &'a [u8; 128],
    },
}

impl RequestBody<'_> {
    /// The request `type` this body belongs to.
    pub fn req_type(&self) -> u32 {
        match *self {
            RequestBody::GetVqState(_) => VDUSE_GET_VQ_STATE,
            RequestBody::SetStatus(_) => VDUSE_SET_STATUS,
            RequestBody::UpdateIotlb(_) => VDUSE_UPDATE_IOTLB,
            RequestBody::SetVqGroupAsid(_) => VDUSE_SET_VQ_GROUP_ASID,
            RequestBody::Unknown { req_type, .. } => req_type,
        }
    }

    /// The union's bytes for this body: the member followed by zeros (or the raw bytes of `Unknown`).
    pub fn payload(&self) -> [u8; VDUSE_PAYLOAD_SIZE] {
        match *self {
            RequestBody::GetVqState(m) => zerocopy::transmute!(VqStateIn128 {
                member: *m,
                rest: [0; 116]
            }),
            RequestBody::SetStatus(m) => zerocopy::transmute!(StatusIn128 {
                member: *m,
                rest: [0; 127]
            }),
            RequestBody::UpdateIotlb(m) => zerocopy::transmute!(RangeIn128 {
                member: *m,
                rest: [0; 112]
            }),
            RequestBody::SetVqGroupAsid(m) => zerocopy::transmute!(GroupAsidIn128 {
                member: *m,
                rest: [0; 120]
            }),
            RequestBody::Unknown { raw, .. } => *raw,
        }
    }
}

impl VduseDevRequest {
    /// The typed view of the union, chosen by `req_type`.
    pub fn body(&self) -> RequestBody<'_> {
        let p = &self.payload;
        match self.req_type.get() {
            VDUSE_GET_VQ_STATE => {
                let o: &VqStateIn128 = zerocopy::transmute_ref!(p);
                RequestBody::GetVqState(&o.member)
            }
            VDUSE_SET_STATUS => {
                let o: &StatusIn128 = zerocopy::transmute_ref!(p);
                RequestBody::SetStatus(&o.member)
            }
            VDUSE_UPDATE_IOTLB => {
                let o: &RangeIn128 = zerocopy::transmute_ref!(p);
                RequestBody::UpdateIotlb(&o.member)
            }
            VDUSE_SET_VQ_GROUP_ASID => {
                let o: &GroupAsidIn128 = zerocopy::transmute_ref!(p);
                RequestBody::SetVqGroupAsid(&o.member)
            }
            req_type => RequestBody::Unknown { req_type, raw: p },
        }
    }

    /// A request with `request_id` and `body`; reserved words and unused union bytes are zero.
    pub fn new(request_id: u32, body: &RequestBody<'_>) -> Self {
        VduseDevRequest {
            req_type: U32::new(body.req_type()),
            request_id: U32::new(request_id),
            reserved: [U32::ZERO; 4],
            payload: body.payload(),
        }
    }
}

/// A decoded VDUSE request: the whole struct and the typed view of its union.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VduseRequest<'a> {
    /// The request as read, including reserved words and every union byte.
    pub raw: &'a VduseDevRequest,
    /// The union member chosen by `type`.
    pub body: RequestBody<'a>,
}

impl VduseRequest<'_> {
    /// The request `type`.
    pub fn req_type(&self) -> u32 {
        self.raw.req_type.get()
    }

    /// The request id, to echo in the response.
    pub fn request_id(&self) -> u32 {
        self.raw.request_id.get()
    }
}

impl fmt::Display for VduseRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.req_type();
        match request_type_name(t) {
            Some(n) => write!(f, "VDUSE_{n} ({t})")?,
            None => write!(f, "VDUSE request type {t}")?,
        }
        write!(f, " id {}", self.request_id())?;
        match self.body {
            RequestBody::GetVqState(s) => write!(f, " index {}", s.index.get()),
            RequestBody::SetStatus(s) => write!(f, " status {:#04x}", s.status),
            RequestBody::UpdateIotlb(r) => {
                write!(f, " [{:#x}, {:#x}]", r.start.get(), r.last.get())
            }
            RequestBody::SetVqGroupAsid(g) => {
                write!(f, " group {} asid {}", g.group.get(), g.asid.get())
            }
            RequestBody::Unknown { .. } => Ok(()),
        }
    }
}

/// The member of a response's union. Which applies depends on the request it answers (the response
/// carries only `request_id`): a GET_VQ_STATE answer holds the queue state, any other is padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResponseBody<'a> {
    /// The answer to `VDUSE_GET_VQ_STATE`: `vq_state`. Split or packed is not knowable from the bytes:
    /// read it with [`VduseVqState::split`] or [`VduseVqState::packed`].
    GetVqState(&'a VduseVqState),
    /// Any other answer: the union's raw bytes (zero when well formed).
    Raw(&'a [u8; 128]),
}

impl ResponseBody<'_> {
    /// The union's bytes for this body: the member followed by zeros, or the raw bytes.
    pub fn payload(&self) -> [u8; VDUSE_PAYLOAD_SIZE] {
        match *self {
            ResponseBody::GetVqState(m) => zerocopy::transmute!(VqStateIn128 {
                member: *m,
                rest: [0; 116]
            }),
            ResponseBody::Raw(raw) => *raw,
        }
    }
}

impl VduseDevResponse {
    /// The union read as a GET_VQ_STATE answer, whatever the request was.
    pub fn vq_state(&self) -> &VduseVqState {
        let o: &VqStateIn128 = zerocopy::transmute_ref!(&self.payload);
        &o.member
    }

    /// The typed view of the union for an answer to a request of type `req_type`.
    pub fn body(&self, req_type: u32) -> ResponseBody<'_> {
        if req_type == VDUSE_GET_VQ_STATE {
            ResponseBody::GetVqState(self.vq_state())
        } else {
            ResponseBody::Raw(&self.payload)
        }
    }

    /// Whether `result` is `VDUSE_REQ_RESULT_OK`.
    pub fn is_ok(&self) -> bool {
        self.result.get() == VDUSE_REQ_RESULT_OK
    }

    /// A response; reserved words and unused union bytes are zero.
    pub fn new(request_id: u32, result: u32, body: &ResponseBody<'_>) -> Self {
        VduseDevResponse {
            request_id: U32::new(request_id),
            result: U32::new(result),
            reserved: [U32::ZERO; 4],
            payload: body.payload(),
        }
    }
}

fn exact_size(bytes: &[u8]) -> Result<(), DecodeError> {
    if bytes.len() == VDUSE_MSG_SIZE {
        Ok(())
    } else {
        // Short: the error is where the data ended; long: at the first extra byte.
        Err(DecodeError::new(
            bytes.len().min(VDUSE_MSG_SIZE),
            Rule::VduseSize { have: bytes.len() },
        ))
    }
}

/// Decodes one request as read from `/dev/vduse/$NAME`; `bytes` must be exactly 152 bytes.
///
/// Unknown types decode to [`RequestBody::Unknown`]; reserved words and unused union bytes are not
/// checked (they stay visible in [`VduseRequest::raw`]).
pub fn decode_request(bytes: &[u8]) -> Result<VduseRequest<'_>, DecodeError> {
    exact_size(bytes)?;
    let raw = VduseDevRequest::ref_from_bytes(bytes)
        .map_err(|_| DecodeError::new(0, Rule::VduseSize { have: bytes.len() }))?;
    Ok(VduseRequest {
        raw,
        body: raw.body(),
    })
}

/// Decodes one response as written to `/dev/vduse/$NAME`; `bytes` must be exactly 152 bytes.
///
/// Use [`VduseDevResponse::body`] with the request's type (or [`VduseDevResponse::vq_state`]) to read
/// the union.
pub fn decode_response(bytes: &[u8]) -> Result<&VduseDevResponse, DecodeError> {
    exact_size(bytes)?;
    VduseDevResponse::ref_from_bytes(bytes)
        .map_err(|_| DecodeError::new(0, Rule::VduseSize { have: bytes.len() }))
}

fn put<T: IntoBytes + Immutable>(value: &T, buf: &mut [u8]) -> Result<usize, EncodeError> {
    value
        .write_to_prefix(buf)
        .map_err(|_| EncodeError::BufferTooShort {
            need: VDUSE_MSG_SIZE,
            have: buf.len(),
        })?;
    Ok(VDUSE_MSG_SIZE)
}

/// Encodes a request into the first 152 bytes of `buf`: the head, zero reserved words, and `body`'s
/// member in a zeroed union (or the raw union of [`RequestBody::Unknown`]). Returns 152.
pub fn encode_request(
    request_id: u32,
    body: &RequestBody<'_>,
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    put(&VduseDevRequest::new(request_id, body), buf)
}

/// Encodes a response into the first 152 bytes of `buf`: the head, zero reserved words, and `body`'s
/// member in a zeroed union (or the raw union of [`ResponseBody::Raw`]). Returns 152.
pub fn encode_response(
    request_id: u32,
    result: u32,
    body: &ResponseBody<'_>,
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    put(&VduseDevResponse::new(request_id, result, body), buf)
}
