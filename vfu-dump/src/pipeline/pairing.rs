//! Round-trip matching: [`RoundTrips`] pairs replies with their requests (vfio-user by connection,
//! direction and `msg_id`; VDUSE by connection and `request_id`).

use std::collections::HashMap;

use vfu_codec::vduse;
use vfu_codec::{Direction, Header, Message, MessageType};

use super::record::Record;

/// Pairs replies with their requests to measure round trips.
///
/// Outstanding requests sit in a direct-mapped table by (connection, direction, id), since a reply
/// nearly always comes within a few messages of its request; a request whose slot is taken by another
/// outstanding one moves that one to a map. The map uses foldhash (seeded per process): SipHash,
/// std's default, was a fifth of `read --stats`'s time on a capture of small messages.
#[derive(Debug, Default)]
pub struct RoundTrips {
    recent: Vec<Option<(PendingKey, u64)>>,
    pending: HashMap<PendingKey, u64, foldhash::fast::RandomState>,
    vduse: HashMap<(u32, u32), (u64, u32), foldhash::fast::RandomState>,
}

/// (connection, request sent client to server, message id).
type PendingKey = (u32, bool, u16);

/// Slots of [`RoundTrips::recent`].
const RECENT_SLOTS: usize = 4096;

impl RoundTrips {
    fn slot(key: PendingKey) -> usize {
        let (conn, c2s, id) = key;
        let mix = (u64::from(conn) << 17 | u64::from(c2s) << 16 | u64::from(id))
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (mix >> 52) as usize % RECENT_SLOTS
    }

    fn remember(&mut self, key: PendingKey, ts_ns: u64) {
        if self.recent.is_empty() {
            self.recent.resize(RECENT_SLOTS, None);
        }
        if !self.pending.is_empty() {
            self.pending.remove(&key);
        }
        let slot = &mut self.recent[Self::slot(key)];
        if let Some((other, t)) = slot.replace((key, ts_ns))
            && other != key
        {
            self.pending.insert(other, t);
        }
    }

    fn take(&mut self, key: PendingKey) -> Option<u64> {
        if let Some(slot) = self.recent.get_mut(Self::slot(key))
            && slot.is_some_and(|(k, _)| k == key)
        {
            return slot.take().map(|(_, t)| t);
        }
        if self.pending.is_empty() {
            return None;
        }
        self.pending.remove(&key)
    }

    /// Notes a vfio-user message; returns the round-trip time when it is a reply to a request seen.
    pub fn observe(
        &mut self,
        conn: u32,
        direction: Direction,
        ts_ns: u64,
        msg: &Message<'_>,
    ) -> Option<u64> {
        self.observe_header(conn, direction, ts_ns, msg.header)
    }

    /// Notes a vfio-user message by its header alone (a message whose body does not decode is still
    /// a command a reply answers, or a reply); returns the round-trip time when it is a reply to a
    /// request seen. A header whose type bits are invalid is neither.
    pub fn observe_header(
        &mut self,
        conn: u32,
        direction: Direction,
        ts_ns: u64,
        header: &Header,
    ) -> Option<u64> {
        let id = header.msg_id.get();
        let c2s = direction == Direction::ClientToServer;
        match header.message_type()? {
            MessageType::Reply => self.take((conn, !c2s, id)).map(|t| ts_ns.saturating_sub(t)),
            MessageType::Command => {
                if !header.no_reply() {
                    self.remember((conn, c2s, id), ts_ns);
                }
                None
            }
        }
    }

    /// Notes a VDUSE request (remembering its type) or response; returns (rtt, request type) for a
    /// response whose request was seen.
    pub fn observe_vduse(
        &mut self,
        conn: u32,
        request_id: u32,
        ts_ns: u64,
        req_type: Option<u32>,
    ) -> Option<(u64, u32)> {
        match req_type {
            Some(t) => {
                self.vduse.insert((conn, request_id), (ts_ns, t));
                None
            }
            None => self
                .vduse
                .remove(&(conn, request_id))
                .map(|(t, ty)| (ts_ns.saturating_sub(t), ty)),
        }
    }
}

/// What a VDUSE record says, and what pairing it with its request told.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct VduseInfo {
    /// The record decodes (152 bytes).
    pub decodes: bool,
    /// A request's type, or for a response the type of the request it answers (when seen).
    pub req_type: Option<u32>,
    /// Its `request_id`.
    pub request_id: Option<u32>,
    /// A response's result.
    pub result: Option<u32>,
    /// Round trip, for a response whose request was seen.
    pub rtt_ns: Option<u64>,
}

impl VduseInfo {
    /// Worth showing under `--errors`: malformed, truncated or a FAILED result.
    pub fn is_bad(&self, truncated: bool) -> bool {
        truncated || !self.decodes || self.result.is_some_and(|r| r != vduse::VDUSE_REQ_RESULT_OK)
    }
}

/// Decodes a VDUSE record and pairs requests and responses by `request_id`.
pub fn observe_vduse(rec: &Record<'_>, rtts: &mut RoundTrips) -> VduseInfo {
    match rec.direction {
        Direction::ClientToServer => match vduse::decode_request(rec.data) {
            Ok(r) => {
                rtts.observe_vduse(rec.conn, r.request_id(), rec.ts_ns, Some(r.req_type()));
                VduseInfo {
                    decodes: true,
                    req_type: Some(r.req_type()),
                    request_id: Some(r.request_id()),
                    ..VduseInfo::default()
                }
            }
            Err(_) => VduseInfo::default(),
        },
        Direction::ServerToClient => match vduse::decode_response(rec.data) {
            Ok(r) => {
                let id = r.request_id.get();
                let paired = rtts.observe_vduse(rec.conn, id, rec.ts_ns, None);
                VduseInfo {
                    decodes: true,
                    req_type: paired.map(|(_, t)| t),
                    request_id: Some(id),
                    result: Some(r.result.get()),
                    rtt_ns: paired.map(|(rtt, _)| rtt),
                }
            }
            Err(_) => VduseInfo::default(),
        },
    }
}
