//! Reassembly of sockdump captures: per-direction byte streams cut into whole vfio-user messages.
//!
//! Each sockdump record is one `send`. Its bytes are appended to the stream of (connection, sender);
//! after each append the stream is framed with [`vfu_codec::frame::frame`] until a message is
//! incomplete, one message per call. The heuristics (what a connection is, who is the client, what a
//! cut `send` does) are described in the [module docs](super#sockdump-heuristics).

use std::collections::{HashMap, VecDeque};

use vfu_codec::frame::{Frame, frame};
use vfu_codec::{Command, Direction, HEADER_SIZE, Header};
use zerocopy::FromBytes;

use super::error::CaptureError;
use super::layout::{Endian, sockdump as field};
use super::record::{Connection, MAX_RECORD_LEN, Meta, Protocol};

const CTX_RECORD: &str = "sockdump record";
const CTX_MESSAGE: &str = "sockdump message";

/// A stream buffer whose allocation is above this is released when it empties.
const KEEP_CAPACITY: usize = 1 << 20;

/// Whether a message was sent by the client, judged from its header: a command other than
/// DMA_READ/DMA_WRITE, or a reply to DMA_READ/DMA_WRITE. A header too short to tell counts as the
/// client's.
fn sent_by_client(message: &[u8]) -> bool {
    let Ok((header, _)) = Header::ref_from_prefix(message) else {
        return true;
    };
    let server_command = matches!(header.cmd(), Command::DMA_READ | Command::DMA_WRITE);
    header.is_reply() == server_command
}

struct SockConn {
    path: Vec<u8>,
    /// The two pids, lower first.
    pids: (u64, u64),
    /// The client's pid, once a first message has been framed.
    client: Option<u64>,
    /// The streams sent by `pids.0` and `pids.1` (one stream when they are equal).
    streams: [Option<usize>; 2],
}

struct Stream {
    conn: u32,
    sender: u64,
    /// Unframed bytes are `buf[head..]`; `base` is the stream position of `buf[0]`.
    buf: Vec<u8>,
    head: usize,
    base: u64,
    /// (stream position, file offset) of each record that added bytes, from the one holding
    /// `buf[head]` on.
    starts: VecDeque<(u64, u64)>,
    /// Timestamp of the last record that added bytes.
    ts_ns: u64,
    /// Bytes still to drop: the rest of a message whose middle sockdump did not capture.
    skip: u64,
    /// The last record was cut short by this many bytes; resolved before the next record is read.
    gap: Option<u64>,
}

impl Stream {
    /// File offset of the record holding the first unframed byte.
    fn head_offset(&mut self) -> u64 {
        let pos = self.base + self.head as u64;
        while self.starts.len() >= 2 && self.starts.get(1).is_some_and(|s| s.0 <= pos) {
            self.starts.pop_front();
        }
        self.starts.front().map_or(0, |s| s.1)
    }

    fn consume(&mut self, n: usize) {
        self.head = (self.head + n).min(self.buf.len());
        if self.head == self.buf.len() {
            self.base += self.head as u64;
            self.head = 0;
            if self.buf.capacity() > KEEP_CAPACITY {
                self.buf = Vec::new();
            } else {
                self.buf.clear();
            }
        }
    }
}

/// The reassembly state of a sockdump capture.
#[derive(Default)]
pub(crate) struct Reassembler {
    conns: Vec<SockConn>,
    by_pids: HashMap<(u64, u64), Vec<u32>>,
    streams: Vec<Stream>,
    /// The stream that received the last record, while it may hold whole messages.
    active: Option<usize>,
    /// The message last returned: (stream, length), consumed on the next call.
    pending: Option<(usize, usize)>,
    /// At the end of the input: the next stream to flush.
    flush_at: usize,
}

impl Reassembler {
    /// Adds one sockdump record (prefix and data, `missing` bytes short of what was sent) at file
    /// offset `offset`; a new connection is appended to `connections`.
    pub(crate) fn push(
        &mut self,
        record: &[u8],
        missing: u64,
        ts_ns: u64,
        offset: u64,
        connections: &mut Vec<Connection>,
    ) -> Result<(), CaptureError> {
        self.settle();
        if record.len() < field::PREFIX_LEN {
            return Err(CaptureError::malformed(
                offset,
                CTX_RECORD,
                format!(
                    "{} bytes, shorter than the {}-byte prefix (socket path, peer pid, pid)",
                    record.len(),
                    field::PREFIX_LEN
                ),
            ));
        }
        let path_len = usize::from(record[field::PATH]).min(field::PATH_MAX);
        let path = &record[field::PATH + 1..field::PATH + 1 + path_len];
        let peer = Endian::Big.u64(record, field::PEER_PID);
        let pid = Endian::Big.u64(record, field::PID);
        let mut data = &record[field::PREFIX_LEN..];

        let pids = (pid.min(peer), pid.max(peer));
        let ids = self.by_pids.entry(pids).or_default();
        let conn = match ids
            .iter()
            .copied()
            .find(|&c| self.conns[c as usize].path == path)
        {
            Some(c) => c,
            None => {
                let id = connections.len() as u32;
                ids.push(id);
                self.conns.push(SockConn {
                    path: path.to_vec(),
                    pids,
                    client: None,
                    streams: [None, None],
                });
                connections.push(Connection {
                    id,
                    name: format!("vfio-user:{id}:{}", String::from_utf8_lossy(path)),
                    protocol: Protocol::VfioUser,
                });
                id
            }
        };
        let sc = &mut self.conns[conn as usize];
        let side = usize::from(pid != sc.pids.0);
        let si = match sc.streams[side] {
            Some(si) => si,
            None => {
                let si = self.streams.len();
                sc.streams[side] = Some(si);
                self.streams.push(Stream {
                    conn,
                    sender: pid,
                    buf: Vec::new(),
                    head: 0,
                    base: 0,
                    starts: VecDeque::new(),
                    ts_ns,
                    skip: 0,
                    gap: None,
                });
                si
            }
        };
        let s = &mut self.streams[si];
        let mut missing = missing;
        if s.skip > 0 {
            let k = s.skip.min(data.len() as u64);
            data = &data[k as usize..];
            s.skip -= k;
            let m = s.skip.min(missing);
            s.skip -= m;
            missing -= m;
        }
        if s.head > 0 {
            s.buf.drain(..s.head);
            s.base += s.head as u64;
            s.head = 0;
        }
        if !data.is_empty() {
            s.starts.push_back((s.base + s.buf.len() as u64, offset));
            s.buf.extend_from_slice(data);
        }
        s.ts_ns = ts_ns;
        if missing > 0 {
            s.gap = Some(missing);
        }
        self.active = Some(si);
        Ok(())
    }

    /// Consumes the message returned last.
    fn settle(&mut self) {
        if let Some((si, len)) = self.pending.take() {
            if let Some(s) = self.streams.get_mut(si) {
                s.consume(len);
            }
        }
    }

    /// The next whole (or, at a gap, truncated) message of the stream that received the last record;
    /// `None` when it needs more input.
    pub(crate) fn next_ready(&mut self) -> Result<Option<Meta>, CaptureError> {
        self.settle();
        let Some(si) = self.active else {
            return Ok(None);
        };
        let s = &mut self.streams[si];
        let avail = &s.buf[s.head..];
        let (len, truncated) = match frame(avail) {
            Frame::Complete { message, .. } => (message.len(), false),
            Frame::BadSize { header, .. } => (header.len(), false),
            Frame::Incomplete { .. } => {
                let partial = avail.len();
                match s.gap.take() {
                    Some(_) if partial == 0 => {
                        // The gap starts at a message boundary: resume at the next send.
                        self.active = None;
                        return Ok(None);
                    }
                    Some(missing) => {
                        let rest = match vfu_codec::frame::msg_size(avail) {
                            Some(size) if partial >= HEADER_SIZE => {
                                u64::from(size).saturating_sub(partial as u64)
                            }
                            _ => u64::MAX,
                        };
                        s.skip = rest.saturating_sub(missing);
                        (partial, true)
                    }
                    None => {
                        if partial > MAX_RECORD_LEN {
                            return Err(CaptureError::TooLarge {
                                offset: s.head_offset(),
                                context: CTX_MESSAGE,
                                len: partial as u64,
                                limit: MAX_RECORD_LEN as u64,
                            });
                        }
                        self.active = None;
                        return Ok(None);
                    }
                }
            }
        };
        Ok(Some(self.emit(si, len, truncated)))
    }

    /// At the end of the input: the partial message left in each stream, in the order the streams
    /// began, as truncated records.
    pub(crate) fn next_leftover(&mut self) -> Option<Meta> {
        self.settle();
        self.active = None;
        while self.flush_at < self.streams.len() {
            let si = self.flush_at;
            self.flush_at += 1;
            let s = &self.streams[si];
            let left = s.buf.len() - s.head;
            if left > 0 {
                return Some(self.emit(si, left, true));
            }
        }
        None
    }

    fn emit(&mut self, si: usize, len: usize, truncated: bool) -> Meta {
        let s = &mut self.streams[si];
        let file_offset = s.head_offset();
        let message = &s.buf[s.head..s.head + len];
        let by_client = sent_by_client(message);
        let sc = &mut self.conns[s.conn as usize];
        let other = if s.sender == sc.pids.0 {
            sc.pids.1
        } else {
            sc.pids.0
        };
        let client = *sc
            .client
            .get_or_insert(if by_client { s.sender } else { other });
        let c2s = if sc.pids.0 == sc.pids.1 {
            by_client
        } else {
            s.sender == client
        };
        self.pending = Some((si, len));
        Meta {
            conn: s.conn,
            ts_ns: s.ts_ns,
            direction: if c2s {
                Direction::ClientToServer
            } else {
                Direction::ServerToClient
            },
            protocol: Protocol::VfioUser,
            fds: 0,
            truncated,
            orig_len: len,
            file_offset,
            start: s.head,
            len,
            stream: Some(si),
        }
    }

    /// The bytes a [`Meta`] from this reassembler refers to.
    pub(crate) fn data(&self, m: &Meta) -> &[u8] {
        m.stream
            .and_then(|si| self.streams.get(si))
            .and_then(|s| s.buf.get(m.start..m.start + m.len))
            .unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: u16, cmd: u16, flags: u32, size: u32) -> Vec<u8> {
        let mut m = vec![0xA5u8; size.max(16) as usize];
        m[0..2].copy_from_slice(&id.to_le_bytes());
        m[2..4].copy_from_slice(&cmd.to_le_bytes());
        m[4..8].copy_from_slice(&size.to_le_bytes());
        m[8..12].copy_from_slice(&flags.to_le_bytes());
        m[12..16].copy_from_slice(&0u32.to_le_bytes());
        m
    }

    fn record(path: &str, pid: u64, peer: u64, data: &[u8]) -> Vec<u8> {
        let mut r = vec![0u8; field::PREFIX_LEN];
        r[0] = path.len() as u8;
        r[1..1 + path.len()].copy_from_slice(path.as_bytes());
        r[field::PEER_PID..field::PEER_PID + 8].copy_from_slice(&peer.to_be_bytes());
        r[field::PID..field::PID + 8].copy_from_slice(&pid.to_be_bytes());
        r.extend_from_slice(data);
        r
    }

    /// (conn, direction, truncated, data) of one message.
    type Out = (u32, Direction, bool, Vec<u8>);

    /// Feeds records and collects every message.
    fn run(records: &[(Vec<u8>, u64)]) -> (Vec<Out>, Vec<Connection>) {
        let mut r = Reassembler::default();
        let mut conns = vec![];
        let mut out = vec![];
        for (i, (rec, missing)) in records.iter().enumerate() {
            r.push(rec, *missing, i as u64, i as u64 * 1000, &mut conns)
                .unwrap();
            while let Some(m) = r.next_ready().unwrap() {
                out.push((m.conn, m.direction, m.truncated, r.data(&m).to_vec()));
            }
        }
        while let Some(m) = r.next_leftover() {
            out.push((m.conn, m.direction, m.truncated, r.data(&m).to_vec()));
        }
        (out, conns)
    }

    #[test]
    fn client_heuristic() {
        assert!(sent_by_client(&msg(0, 1, 0, 16)));
        assert!(!sent_by_client(&msg(0, 1, 1, 16)));
        assert!(!sent_by_client(&msg(0, 11, 0, 16)));
        assert!(sent_by_client(&msg(0, 12, 1, 16)));
        assert!(sent_by_client(&[1, 2, 3]));
    }

    #[test]
    fn splits_and_joins_sends() {
        let a = msg(1, 1, 0, 40);
        let b = msg(1, 1, 1, 24);
        let c = msg(2, 2, 0, 16);
        let mut ab = a.clone();
        ab.extend_from_slice(&c);
        let recs = vec![
            (record("/s", 10, 20, &ab[..7]), 0),
            (record("/s", 10, 20, &ab[7..45]), 0),
            (record("/s", 20, 10, &b), 0),
            (record("/s", 10, 20, &ab[45..]), 0),
            // Another connection on another path: first message a reply, so 30 is the server.
            (record("/t", 30, 40, &b[..20]), 0),
        ];
        let (out, conns) = run(&recs);
        use Direction::*;
        assert_eq!(
            out,
            vec![
                (0, ClientToServer, false, a.clone()),
                (0, ServerToClient, false, b.clone()),
                (0, ClientToServer, false, c.clone()),
                (1, ServerToClient, true, b[..20].to_vec()),
            ]
        );
        assert_eq!(conns.len(), 2);
        assert_eq!(conns[1].name, "vfio-user:1:/t");
    }

    #[test]
    fn bad_size_yields_the_header() {
        let mut bytes = msg(1, 1, 0, 16);
        bytes[4] = 3; // msg_size 3
        bytes.extend_from_slice(&msg(2, 1, 0, 16));
        let (out, _) = run(&[(record("/s", 1, 2, &bytes), 0)]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].3, bytes[..16].to_vec());
        assert!(!out[0].2);
    }

    #[test]
    fn cut_send_skips_the_rest_of_its_message() {
        let a = msg(1, 9, 0, 100);
        let b = msg(2, 9, 0, 24);
        // The first send carries all of `a` but sockdump kept 30 bytes; the next send has the last
        // 20 bytes of `a` (missing: 50 in the gap), then `b`.
        let mut second = a[80..].to_vec();
        second.extend_from_slice(&b);
        let (out, _) = run(&[
            (record("/s", 1, 2, &a[..30]), 50),
            (record("/s", 1, 2, &second), 0),
        ]);
        let got: Vec<_> = out.iter().map(|o| (o.2, o.3.len())).collect();
        assert_eq!(got, vec![(true, 30), (false, 24)]);
        // A gap past the message end: framing resumes at the next send.
        let (out, _) = run(&[
            (record("/s", 1, 2, &a[..30]), 500),
            (record("/s", 1, 2, &b), 0),
        ]);
        let got: Vec<_> = out.iter().map(|o| (o.2, o.3.len())).collect();
        assert_eq!(got, vec![(true, 30), (false, 24)]);
    }

    #[test]
    fn same_process_guesses_each_message() {
        let mut both = msg(1, 2, 0, 16);
        both.extend_from_slice(&msg(1, 2, 1, 16));
        let (out, _) = run(&[(record("/s", 5, 5, &both), 0)]);
        let dirs: Vec<_> = out.iter().map(|o| o.1).collect();
        assert_eq!(
            dirs,
            vec![Direction::ClientToServer, Direction::ServerToClient]
        );
    }

    #[test]
    fn short_prefix_is_an_error() {
        let mut r = Reassembler::default();
        let err = r.push(&[0; 100], 0, 0, 0x40, &mut vec![]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "sockdump record at offset 0x40: 100 bytes, shorter than the 125-byte prefix (socket path, peer pid, pid)"
        );
    }
}
