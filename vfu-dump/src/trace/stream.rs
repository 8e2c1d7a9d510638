//! Reassembling what the traced processes send and receive on UNIX stream sockets into whole
//! vfio-user messages, one connection per socket pair.
//!
//! - **Connections.** A connection is a pair of socket inodes (an end and its peer, from
//!   `sock_diag`), so a process and its peer that are both traced see one connection, not two.
//! - **Streams.** Each end's outgoing bytes are one stream, fed by the sends of its end or by the
//!   receives of the other end, so a message seen leaving one traced process and entering another
//!   is recorded once. When both ends are traced the receives are the source: a reply can only be
//!   sent after its request was received, and the tracer handles the receiving thread's stop before
//!   that thread can send, so requests and replies are recorded in causal order (a sender's stop,
//!   on the other hand, may be reaped after the peer has already answered). Sends feed a stream
//!   whose receiving end is not traced (or not yet known to be). In launch mode, where both kinds
//!   count the stream's bytes from its first, a stream fed by sends switches to the receives as soon
//!   as one is seen, skipping the bytes already recorded, and keeps what is sent after that until it
//!   is received (what the receiver never reads is recorded when the stream ends, so nothing sent
//!   is lost); in attach mode it switches only if the
//!   receiving end was known to be traced from the start (its inode in a traced process's
//!   `/proc/PID/fd`), since the two kinds of call may have started at different offsets.
//! - **Roles.** The server's end is the one bound to a path (an accepted socket has the listener's
//!   name; a connecting client's has none). When neither or both are named (a socketpair such as a
//!   twin socket), the first message decides, as for sockdump captures: a command other than
//!   DMA_READ/DMA_WRITE, or a reply to one of those, comes from the client.
//! - **Synchronisation.** A stream starts out *hunting*: it looks for the first plausible header
//!   (known command, command or reply type, no reserved flag bit, an errno only with ERROR, a
//!   `msg_size` of 16 bytes to 64 MiB) whose whole message decodes without error, and drops the bytes
//!   before it, saying how many (a candidate longer than 64 KiB is passed over rather than waited
//!   for). A program launched under the tracer opens its sessions in view, so
//!   its streams are found at their first byte; a process attached to in the middle of a message
//!   resynchronises at the next message and never gets an invented one. After that the stream is
//!   framed by `msg_size` as receivers frame it: garbage is recorded as malformed messages, a header
//!   whose `msg_size` is below 16 as its 16 bytes, and a message longer than 64 MiB as a truncated
//!   64 MiB record, after which the stream hunts again.
//!   A stream whose first bytes the tracer saw (a launched program's: its sockets were all made
//!   under the tracer) starts in sync when they begin with a plausible header, even if that message
//!   does not decode: a peer that opens with a malformed message is recorded, not skipped.
//! - **Not vfio-user.** A connection whose streams show no plausible message in their first 64 MiB
//!   is ignored from then on (the tracer no longer reads its calls' bytes), and is never numbered.
//! - **Descriptors.** Descriptors that came with a read (or went with a send) belong to the message
//!   holding the last byte of that read, the rule of the capture format.

use std::collections::{HashMap, VecDeque};
use std::io;

use vfu_codec::frame::{Frame, frame, msg_size};
use vfu_codec::{Command, Direction, HEADER_SIZE, Header, decode};

use super::event::{Event, Ids, Sink};
use crate::capture::Protocol;

/// The longest message recorded whole (the capture readers' limit).
pub(crate) const MAX_MSG: usize = 64 << 20;
/// How many bytes of a connection are searched for a first message before it is taken for
/// something other than vfio-user: more than the longest message recorded whole, so that a stream
/// joined at the start of a long transfer still finds the message after it.
pub(crate) const IGNORE_AFTER: u64 = MAX_MSG as u64 + (64 << 10);
/// While hunting, how long a candidate message may be and still be waited for. A longer one is passed
/// over: bytes inside a message's data that happen to look like a header would otherwise hold the
/// stream for as long as they claim (the next message after a long one is found instead).
const HUNT_WAIT: usize = 64 << 10;

/// One direction's bytes.
#[derive(Default, Debug)]
struct Stream {
    /// `Some(true)`: fed by the sending end's sends; `Some(false)`: by the other end's receives.
    source: Option<bool>,
    /// Bytes seen through sends and through receives, each from the first of its kind.
    sent: u64,
    received: u64,
    /// When the stream switched from sends to receives: the bytes the sends had brought, which the
    /// receives skip.
    switched_at: u64,
    /// Launch mode, fed by receives: bytes sent that no receive has brought yet (from send offset
    /// `unreceived_at`), recorded if the stream ends before they are received.
    unreceived: Vec<u8>,
    unreceived_at: u64,
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    base: u64,
    synced: bool,
    /// Its first byte is in `buf[0]` (a launched program's stream): trusted as a message start when
    /// it looks like one.
    at_start: bool,
    /// Bytes dropped while hunting since the last message.
    skipped: u64,
    /// Descriptors of reads (or sends) not yet attached: the stream offset of the read's last byte,
    /// and what each descriptor is.
    fds: VecDeque<(u64, Vec<String>)>,
}

/// One socket pair.
#[derive(Debug)]
struct Conn {
    /// The two inodes: the end first seen and its peer (0 when unknown).
    ends: [u32; 2],
    /// Which end is the server's, once known.
    server: Option<usize>,
    /// The server's socket path, when it has one.
    path: Option<String>,
    /// Where it was first seen (`pid 12 fd 5`).
    seen: String,
    /// Its connection number, once its first message was found.
    id: Option<u32>,
    ignored: bool,
    /// `streams[e]`: the bytes end `e` sends.
    streams: [Stream; 2],
    messages: u64,
    closed: [bool; 2],
}

/// Every socket pair seen.
#[derive(Default)]
pub(crate) struct Streams {
    by_inode: HashMap<u32, usize>,
    conns: Vec<Conn>,
    /// Streams are seen from their first byte (launch mode).
    from_start: bool,
    /// [`IGNORE_AFTER`] (smaller in tests).
    ignore_after: u64,
}

/// One observation: bytes a traced process sent or received on a socket end.
pub(crate) struct Chunk<'a> {
    /// The inode of the socket end the call was made on, its peer's (0 unknown), their names.
    pub(crate) inode: u32,
    pub(crate) peer: u32,
    pub(crate) name: Option<&'a str>,
    pub(crate) peer_name: Option<&'a str>,
    /// A send (the bytes leave `inode`) or a receive (they arrive at it).
    pub(crate) send: bool,
    pub(crate) ts_ns: u64,
    pub(crate) data: &'a [u8],
    /// What each descriptor that travelled with the bytes is.
    pub(crate) fds: Vec<String>,
    /// `pid P fd F`, for the connection's first note.
    pub(crate) seen: &'a str,
    /// For a send: the receiving end is known to be held by a traced process, whose receives will
    /// bring the same bytes.
    pub(crate) receiver_traced: bool,
}

/// Whether `b` starts with a header worth resynchronising on (see the module documentation).
pub(crate) fn plausible_header(b: &[u8]) -> bool {
    let Some(h) = Header::peek(b) else {
        return false;
    };
    let size = h.msg_size.get() as usize;
    let flags = h.flags.get();
    let errno = h.error_no.get();
    h.cmd().name().is_some()
        && h.cmd() != Command(0)
        && (HEADER_SIZE..=MAX_MSG).contains(&size)
        && flags & 0xf <= 1
        && flags & !0x3f == 0
        && if h.is_error() {
            (1..4096).contains(&errno)
        } else {
            errno == 0
        }
}

/// Whether the sender of this message is the client (see "Roles" in the module documentation).
fn sent_by_client(b: &[u8]) -> bool {
    let Some(h) = Header::peek(b) else {
        return true;
    };
    let dma = matches!(h.cmd(), Command::DMA_READ | Command::DMA_WRITE);
    h.is_reply() == dma
}

impl Conn {
    fn direction(&self, sender: usize) -> Direction {
        if self.server == Some(sender) {
            Direction::ServerToClient
        } else {
            Direction::ClientToServer
        }
    }
}

impl Streams {
    /// Streams seen from their first byte (a launched program's) or not (attached processes').
    pub(crate) fn new(from_start: bool) -> Self {
        Streams {
            from_start,
            ignore_after: IGNORE_AFTER,
            ..Streams::default()
        }
    }

    /// Whether the connection of socket end `inode` was found not to be vfio-user.
    pub(crate) fn ignored(&self, inode: u32) -> bool {
        self.by_inode
            .get(&inode)
            .is_some_and(|&i| self.conns[i].ignored)
    }

    /// Takes one observation: frames what it completes and reports it.
    pub(crate) fn chunk(
        &mut self,
        c: Chunk<'_>,
        ids: &mut Ids,
        sink: &mut dyn Sink,
    ) -> io::Result<()> {
        let idx = self.conn_for(&c);
        let ignore_after = self.ignore_after;
        let conn = &mut self.conns[idx];
        if conn.ignored || c.data.is_empty() {
            return Ok(());
        }
        let end = usize::from(conn.ends[0] != c.inode);
        let sender = if c.send { end } else { 1 - end };
        let s = &mut conn.streams[sender];
        let n = c.data.len() as u64;
        let before = if c.send { s.sent } else { s.received };
        if c.send {
            s.sent += n;
        } else {
            s.received += n;
        }
        let data = match (s.source, c.send) {
            // The receives will bring these bytes, in causal order.
            (None, true) if c.receiver_traced => return Ok(()),
            (None, kind) => {
                s.source = Some(kind);
                c.data
            }
            (Some(true), true) => c.data,
            (Some(false), true) => {
                if self.from_start {
                    // Kept until received: what the receiver never reads is still on the wire.
                    if s.unreceived.is_empty() {
                        s.unreceived_at = before;
                    }
                    if s.unreceived.len() < MAX_MSG {
                        s.unreceived.extend_from_slice(c.data);
                    }
                }
                return Ok(());
            }
            (Some(true), false) if self.from_start => {
                s.source = Some(false);
                s.switched_at = s.sent;
                &c.data[(s.switched_at.saturating_sub(before)).min(n) as usize..]
            }
            (Some(true), false) => return Ok(()),
            (Some(false), false) => {
                &c.data[(s.switched_at.saturating_sub(before)).min(n) as usize..]
            }
        };
        if !c.send && !s.unreceived.is_empty() {
            // Received now: no longer pending.
            let done =
                (s.received.saturating_sub(s.unreceived_at) as usize).min(s.unreceived.len());
            s.unreceived.drain(..done);
            s.unreceived_at += done as u64;
        }
        if data.is_empty() {
            return Ok(());
        }
        s.buf.extend_from_slice(data);
        if !c.fds.is_empty() {
            let last = s.base + s.buf.len() as u64 - 1;
            s.fds.push_back((last, c.fds));
        }
        Self::drain(conn, sender, c.ts_ns, ignore_after, ids, sink)
    }

    /// The connection of an observation's socket end, made when new.
    fn conn_for(&mut self, c: &Chunk<'_>) -> usize {
        if let Some(&i) = self.by_inode.get(&c.inode) {
            let conn = &mut self.conns[i];
            if conn.ends[1] == 0 && c.peer != 0 && conn.ends[0] == c.inode {
                conn.ends[1] = c.peer;
                self.by_inode.insert(c.peer, i);
            }
            return i;
        }
        if c.peer != 0
            && let Some(&i) = self.by_inode.get(&c.peer)
        {
            let conn = &mut self.conns[i];
            if conn.ends[1] == 0 {
                conn.ends[1] = c.inode;
            }
            self.by_inode.insert(c.inode, i);
            return i;
        }
        let server = match (c.name.is_some(), c.peer_name.is_some()) {
            (true, false) => Some(0),
            (false, true) => Some(1),
            _ => None,
        };
        let path = c.name.or(c.peer_name).map(str::to_owned);
        let i = self.conns.len();
        let mut streams: [Stream; 2] = Default::default();
        for s in &mut streams {
            s.at_start = self.from_start;
        }
        self.conns.push(Conn {
            ends: [c.inode, c.peer],
            server,
            path,
            seen: c.seen.to_owned(),
            id: None,
            ignored: false,
            streams,
            messages: 0,
            closed: [false; 2],
        });
        self.by_inode.insert(c.inode, i);
        if c.peer != 0 {
            self.by_inode.insert(c.peer, i);
        }
        i
    }

    /// Frames and reports what stream `sender` of `conn` holds.
    fn drain(
        conn: &mut Conn,
        sender: usize,
        ts_ns: u64,
        ignore_after: u64,
        ids: &mut Ids,
        sink: &mut dyn Sink,
    ) -> io::Result<()> {
        let mut pos = 0usize;
        loop {
            let dir = conn.server.map(|_| conn.direction(sender));
            let s = &mut conn.streams[sender];
            if !s.synced {
                let found = if s.at_start {
                    if s.buf.len() - pos < HEADER_SIZE {
                        break;
                    }
                    s.at_start = false;
                    plausible_header(&s.buf[pos..]).then_some(Hunt::Found(0))
                } else {
                    None
                };
                match found.unwrap_or_else(|| hunt(&s.buf[pos..], dir)) {
                    Hunt::Found(at) => {
                        let s = &mut conn.streams[sender];
                        s.skipped += at as u64;
                        pos += at;
                        s.synced = true;
                        let skipped = std::mem::take(&mut s.skipped);
                        let offset = s.base + pos as u64;
                        let first = conn.id.is_none();
                        if conn.server.is_none() {
                            let client = sent_by_client(&conn.streams[sender].buf[pos..]);
                            conn.server = Some(if client { 1 - sender } else { sender });
                        }
                        if first {
                            open(conn, ids, sink)?;
                        }
                        if skipped > 0 {
                            let id = conn.id;
                            let dir = conn.direction(sender).short();
                            sink.event(&Event::Note {
                                conn: id,
                                text: &format!(
                                    "{dir}: resynchronised at stream offset {offset} after skipping {skipped} bytes that do not start a plausible message (joined mid-stream)"
                                ),
                            })?;
                        }
                    }
                    Hunt::Wait(at) => {
                        let s = &mut conn.streams[sender];
                        s.skipped += at as u64;
                        pos += at;
                        break;
                    }
                    Hunt::None(keep) => {
                        let s = &mut conn.streams[sender];
                        let drop = s.buf.len() - pos - keep;
                        s.skipped += drop as u64;
                        pos += drop;
                        if conn.id.is_none()
                            && conn.streams.iter().map(|s| s.skipped).sum::<u64>() > ignore_after
                        {
                            conn.ignored = true;
                            conn.streams = Default::default();
                            return Ok(());
                        }
                        break;
                    }
                }
            }
            let s = &conn.streams[sender];
            let rest = &s.buf[pos..];
            let (len, truncated) = match frame(rest) {
                Frame::Complete { message, .. } => (message.len(), false),
                Frame::BadSize { .. } => (HEADER_SIZE, false),
                Frame::Incomplete { .. } if rest.len() >= MAX_MSG => (MAX_MSG, true),
                Frame::Incomplete { .. } => break,
            };
            let start = s.base + pos as u64;
            emit(conn, sender, pos, len, truncated, ts_ns, sink)?;
            pos += len;
            if truncated {
                let size = msg_size(&conn.streams[sender].buf[pos - len..]).unwrap_or(0);
                conn.streams[sender].synced = false;
                let id = conn.id;
                sink.event(&Event::Note {
                    conn: id,
                    text: &format!(
                        "message at stream offset {start} declares msg_size {size}, more than a record holds: recorded as a truncated {MAX_MSG}-byte piece; resynchronising"
                    ),
                })?;
            }
        }
        let s = &mut conn.streams[sender];
        s.buf.drain(..pos);
        s.base += pos as u64;
        let base = s.base;
        while s.fds.front().is_some_and(|(last, _)| *last < base) {
            s.fds.pop_front();
        }
        Ok(())
    }

    /// The end of stream from end `inode` (its socket was closed, its process exited, or a receive on
    /// its peer returned 0): what is left is recorded as a truncated message.
    pub(crate) fn end(&mut self, inode: u32, ts_ns: u64, sink: &mut dyn Sink) -> io::Result<()> {
        let Some(&i) = self.by_inode.get(&inode) else {
            return Ok(());
        };
        let conn = &mut self.conns[i];
        let e = usize::from(conn.ends[0] != inode);
        if conn.closed[e] {
            return Ok(());
        }
        conn.closed[e] = true;
        let s = &mut conn.streams[e];
        if conn.id.is_some() && !s.unreceived.is_empty() {
            // Sent, never received: recorded now, as the sender sent it.
            let skip =
                (s.received.saturating_sub(s.unreceived_at) as usize).min(s.unreceived.len());
            let rest = s.unreceived.split_off(skip);
            s.unreceived.clear();
            s.buf.extend_from_slice(&rest);
            // The connection is numbered already, so no number is handed out here.
            Self::drain(conn, e, ts_ns, u64::MAX, &mut Ids::default(), sink)?;
        }
        let s = &conn.streams[e];
        if conn.id.is_some() && s.synced && !s.buf.is_empty() {
            let len = s.buf.len();
            emit(conn, e, 0, len, true, ts_ns, sink)?;
            conn.streams[e].buf.clear();
        }
        if conn.closed == [true, true]
            && let Some(id) = conn.id
        {
            sink.event(&Event::Close {
                conn: id,
                messages: conn.messages,
            })?;
        }
        Ok(())
    }

    /// Ends every stream (the tracer is finishing).
    pub(crate) fn end_all(&mut self, ts_ns: u64, sink: &mut dyn Sink) -> io::Result<()> {
        let ends: Vec<u32> = self
            .conns
            .iter()
            .flat_map(|c| c.ends)
            .filter(|&e| e != 0)
            .collect();
        for e in ends {
            self.end(e, ts_ns, sink)?;
        }
        for c in &mut self.conns {
            if c.ends[1] == 0
                && !c.closed[1]
                && let Some(id) = c.id
            {
                c.closed[1] = true;
                sink.event(&Event::Close {
                    conn: id,
                    messages: c.messages,
                })?;
            }
        }
        Ok(())
    }
}

/// Numbers a connection and reports it.
fn open(conn: &mut Conn, ids: &mut Ids, sink: &mut dyn Sink) -> io::Result<()> {
    let id = ids.next();
    conn.id = Some(id);
    let name = match &conn.path {
        Some(p) => format!("vfio-user:{id}:{p}"),
        None => format!(
            "vfio-user:{id}:socket:[{}]<->socket:[{}]",
            conn.ends[0], conn.ends[1]
        ),
    };
    sink.event(&Event::Open {
        conn: id,
        name: &name,
        protocol: Protocol::VfioUser,
        detail: &format!(
            "first seen at {} (socket:[{}], peer socket:[{}])",
            conn.seen, conn.ends[0], conn.ends[1]
        ),
    })
}

/// Reports `len` bytes at `pos` of stream `sender` as one message.
fn emit(
    conn: &mut Conn,
    sender: usize,
    pos: usize,
    len: usize,
    truncated: bool,
    ts_ns: u64,
    sink: &mut dyn Sink,
) -> io::Result<()> {
    let Some(id) = conn.id else {
        return Ok(());
    };
    let direction = conn.direction(sender);
    let s = &mut conn.streams[sender];
    let start = s.base + pos as u64;
    let end = start + len as u64;
    let mut fds = Vec::new();
    while let Some((last, _)) = s.fds.front() {
        if *last >= end {
            break;
        }
        if let Some((last, f)) = s.fds.pop_front()
            && last >= start
        {
            fds.extend(f);
        }
    }
    conn.messages += 1;
    sink.event(&Event::Message {
        conn: id,
        direction,
        protocol: Protocol::VfioUser,
        ts_ns,
        data: &conn.streams[sender].buf[pos..pos + len],
        fds: &fds,
        truncated,
    })
}

enum Hunt {
    /// A message starts at this offset.
    Found(usize),
    /// A candidate starts at this offset but is not whole yet.
    Wait(usize),
    /// Nothing; keep this many bytes at the end (a header may start in them).
    None(usize),
}

/// Looks for the first plausible, decodable message in `b`.
fn hunt(b: &[u8], direction: Option<Direction>) -> Hunt {
    let mut i = 0usize;
    while i + HEADER_SIZE <= b.len() {
        let c = &b[i..];
        if plausible_header(c) {
            let size = msg_size(c).unwrap_or(0) as usize;
            if size <= c.len() {
                let m = &c[..size];
                let ok = match direction {
                    Some(d) => decode(m, d).is_ok(),
                    None => {
                        decode(m, Direction::ClientToServer).is_ok()
                            || decode(m, Direction::ServerToClient).is_ok()
                    }
                };
                if ok {
                    return Hunt::Found(i);
                }
            } else if size <= HUNT_WAIT {
                return Hunt::Wait(i);
            }
        }
        i += 1;
    }
    Hunt::None(b.len().min(HEADER_SIZE - 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::event::tests::Collect;

    fn msg(id: u16, cmd: u16, flags: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&id.to_le_bytes());
        m.extend_from_slice(&cmd.to_le_bytes());
        m.extend_from_slice(&((16 + payload.len()) as u32).to_le_bytes());
        m.extend_from_slice(&flags.to_le_bytes());
        m.extend_from_slice(&0u32.to_le_bytes());
        m.extend_from_slice(payload);
        m
    }

    fn chunk<'a>(inode: u32, peer: u32, send: bool, data: &'a [u8], fds: &[&str]) -> Chunk<'a> {
        Chunk {
            inode,
            peer,
            name: (inode == 2).then_some("/run/s.sock"),
            peer_name: (peer == 2).then_some("/run/s.sock"),
            send,
            ts_ns: 5,
            data,
            fds: fds.iter().map(|s| (*s).to_owned()).collect(),
            seen: "pid 1 fd 3",
            receiver_traced: false,
        }
    }

    /// The streams of one test, what they numbered and what they gave.
    struct Run {
        s: Streams,
        ids: Ids,
        out: Collect,
    }

    impl Run {
        fn new(from_start: bool) -> Run {
            Run {
                s: Streams::new(from_start),
                ids: Ids::default(),
                out: Collect::default(),
            }
        }

        fn feed(&mut self, c: Chunk<'_>) {
            self.s.chunk(c, &mut self.ids, &mut self.out).unwrap();
        }
    }

    /// DEVICE_RESET command and its reply.
    fn reset(id: u16) -> Vec<u8> {
        msg(id, 13, 0, &[])
    }

    #[test]
    fn both_ends_traced_give_each_message_once_in_order() {
        let mut t = Run::new(false);
        let req = reset(1);
        let rep = msg(1, 13, 1, &[]);
        // Client end is inode 1, server end inode 2 (named). The client sends in two pieces, the
        // server receives it in one; then the server sends the reply and the client receives it.
        t.feed(chunk(1, 2, true, &req[..5], &["/memfd:x"]));
        t.feed(chunk(2, 1, false, &req, &[]));
        t.feed(chunk(1, 2, true, &req[5..], &[]));
        t.feed(chunk(1, 2, false, &rep, &[]));
        t.feed(chunk(2, 1, true, &rep, &[]));
        t.s.end_all(9, &mut t.out).unwrap();
        assert_eq!(
            t.out.lines(),
            [
                "open 0 vfio-user:0:/run/s.sock",
                "msg 0 c2s 16 fds=[\"/memfd:x\"]",
                "msg 0 s2c 16 fds=[]",
                "close 0 2",
            ]
        );
    }

    #[test]
    fn in_launch_mode_a_late_send_after_the_reply_does_not_reorder() {
        // The client's send of the request is reaped after the server received it and replied.
        let mut t = Run::new(true);
        let req = reset(1);
        let rep = msg(1, 13, 1, &[]);
        let req2 = reset(2);
        t.feed(chunk(1, 2, true, &req[..4], &[]));
        t.feed(chunk(2, 1, false, &req, &[]));
        t.feed(chunk(2, 1, true, &rep, &[]));
        t.feed(chunk(1, 2, true, &req[4..], &[]));
        t.feed(chunk(1, 2, false, &rep, &[]));
        t.feed(chunk(1, 2, true, &req2, &[]));
        t.feed(chunk(2, 1, false, &req2, &[]));
        let msgs = t.out.messages();
        assert_eq!(
            msgs,
            [
                "msg 0 c2s 16 fds=[]",
                "msg 0 s2c 16 fds=[]",
                "msg 0 c2s 16 fds=[]"
            ]
        );
        // A send whose receiver is known to be traced waits for the receive.
        let mut t = Run {
            ids: t.ids,
            ..Run::new(false)
        };
        let mut c = chunk(1, 2, true, &req, &[]);
        c.receiver_traced = true;
        t.feed(c);
        assert!(t.out.lines().is_empty());
        t.feed(chunk(2, 1, false, &req, &[]));
        assert_eq!(t.out.lines().len(), 2);
    }

    #[test]
    fn in_launch_mode_bytes_sent_and_never_received_are_recorded_at_the_end() {
        let mut t = Run::new(true);
        let req = reset(1);
        let mut tail = reset(2);
        tail.extend_from_slice(&reset(3)[..8]);
        t.feed(chunk(1, 2, true, &req, &[]));
        t.feed(chunk(2, 1, false, &req, &[]));
        // The receiver reads no more; the sender sends one whole message and half of another.
        t.feed(chunk(1, 2, true, &tail, &[]));
        t.s.end(1, 5, &mut t.out).unwrap();
        let msgs = t.out.messages();
        assert_eq!(
            msgs,
            [
                "msg 0 c2s 16 fds=[]",
                "msg 0 c2s 16 fds=[]",
                "msg 0 c2s 8 fds=[] truncated"
            ]
        );
    }

    #[test]
    fn resynchronises_mid_stream_and_says_so() {
        let mut t = Run::new(false);
        // The tail of a REGION_WRITE's data, then a whole DEVICE_RESET.
        let mut bytes = vec![0xabu8; 100];
        bytes.extend_from_slice(&reset(7));
        t.feed(chunk(2, 1, false, &bytes, &[]));
        assert_eq!(
            t.out.lines(),
            [
                "open 0 vfio-user:0:/run/s.sock",
                "note Some(0) c2s: resynchronised at stream offset 100 after skipping 100 bytes that do not start a plausible message (joined mid-stream)",
                "msg 0 c2s 16 fds=[]",
            ]
        );
    }

    #[test]
    fn a_header_split_across_reads_waits_and_the_direction_comes_from_content() {
        let mut t = Run::new(false);
        // A socketpair (no names): the first message is a DMA_READ command, so its sender is the
        // server.
        let mut dma = Vec::new();
        dma.extend_from_slice(&0x1000u64.to_le_bytes());
        dma.extend_from_slice(&8u64.to_le_bytes());
        let m = msg(3, 11, 0, &dma);
        t.feed(chunk(10, 11, true, &m[..7], &[]));
        assert!(t.out.lines().is_empty());
        t.feed(chunk(10, 11, true, &m[7..], &[]));
        assert_eq!(t.out.lines()[1], "msg 0 s2c 32 fds=[]");
        assert!(t.out.lines()[0].starts_with("open 0 vfio-user:0:socket:[10]<->socket:[11]"));
    }

    #[test]
    fn not_vfio_user_is_ignored_and_never_numbered() {
        let mut t = Run::new(false);
        t.s.ignore_after = 64 << 10;
        let text = b"{\"execute\": \"qmp_capabilities\"}\n".repeat(4000);
        t.feed(chunk(20, 21, true, &text, &[]));
        t.feed(chunk(20, 21, true, &reset(1), &[]));
        assert!(t.out.lines().is_empty(), "{:?}", t.out.lines());
        assert_eq!(t.ids.next(), 0);
    }

    #[test]
    fn garbage_after_sync_is_framed_as_receivers_frame_it_and_a_cut_message_is_truncated() {
        let mut t = Run::new(false);
        let mut bytes = reset(1);
        // A header with msg_size 3, then one that claims 1 MiB and stops early.
        bytes.extend_from_slice(&[1, 0, 13, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        bytes.extend_from_slice(&[
            0xff, 0xff, 9, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2,
        ]);
        t.feed(chunk(1, 2, true, &bytes, &[]));
        t.s.end(1, 7, &mut t.out).unwrap();
        assert_eq!(
            t.out.lines()[1..],
            [
                "msg 0 c2s 16 fds=[]",
                "msg 0 c2s 16 fds=[]",
                "msg 0 c2s 18 fds=[] truncated",
            ]
        );
    }

    #[test]
    fn a_launched_programs_stream_starts_in_sync_even_on_a_malformed_message() {
        // A VERSION without its payload: plausible, but it does not decode. Seen from the stream's
        // start it is recorded; joined mid-stream it would be skipped.
        let bad = msg(1, 1, 0, &[]);
        for (from_start, want) in [(true, 2), (false, 1)] {
            let mut t = Run::new(from_start);
            t.feed(chunk(1, 2, true, &bad[..6], &[]));
            t.feed(chunk(1, 2, true, &bad[6..], &[]));
            t.feed(chunk(1, 2, true, &reset(2), &[]));
            let msgs = t.out.messages().len();
            assert_eq!(msgs, want, "{from_start}: {:?}", t.out.lines());
        }
    }

    /// Collects the bytes of every message.
    #[derive(Default)]
    struct Bytes(Vec<u8>, usize);

    impl Sink for Bytes {
        fn event(&mut self, ev: &Event<'_>) -> io::Result<()> {
            if let Event::Message { data, .. } = ev {
                self.0.extend_from_slice(data);
                self.1 += 1;
            }
            Ok(())
        }
    }

    /// xorshift64*, for reproducible random inputs.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn every_byte_of_a_stream_split_anyhow_comes_out_once_in_its_messages() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..200 {
            let mut stream = Vec::new();
            let mut count = 0;
            for i in 0..1 + rng.below(20) {
                // REGION_WRITE-shaped messages of random sizes (only the first needs to look like a
                // header; the rest are framed by msg_size).
                let payload: Vec<u8> = (0..rng.below(300)).map(|_| rng.next() as u8).collect();
                stream.extend_from_slice(&msg(i as u16, 10, 0, &payload));
                count += 1;
            }
            let mut s = Streams::new(true);
            let mut ids = Ids::default();
            let mut out = Bytes::default();
            let mut at = 0;
            while at < stream.len() {
                let n = (1 + rng.below(64) as usize).min(stream.len() - at);
                s.chunk(
                    chunk(1, 2, true, &stream[at..at + n], &[]),
                    &mut ids,
                    &mut out,
                )
                .unwrap();
                at += n;
            }
            s.end_all(0, &mut out).unwrap();
            assert_eq!(out.1, count, "round {round}");
            assert!(out.0 == stream, "round {round}");
        }
    }

    #[test]
    fn random_bytes_never_panic_nor_come_out_more_than_once() {
        let mut rng = Rng(7);
        for round in 0..300 {
            let len = rng.below(4000) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    // Mostly small values, so that plausible headers occur.
                    if rng.below(3) == 0 {
                        rng.next() as u8
                    } else {
                        rng.below(24) as u8
                    }
                })
                .collect();
            let from_start = round % 2 == 0;
            let mut s = Streams::new(from_start);
            let mut ids = Ids::default();
            let mut out = Bytes::default();
            let mut at = 0;
            while at < bytes.len() {
                let n = (1 + rng.below(200) as usize).min(bytes.len() - at);
                // Sends of one end and receives of the other, interleaved.
                let send = rng.below(2) == 0;
                let c = if send {
                    chunk(1, 2, true, &bytes[at..at + n], &[])
                } else {
                    chunk(2, 1, false, &bytes[at..at + n], &[])
                };
                s.chunk(c, &mut ids, &mut out).unwrap();
                at += n;
            }
            s.end_all(0, &mut out).unwrap();
            assert!(out.0.len() <= bytes.len(), "round {round}");
        }
    }

    #[test]
    fn plausibility() {
        assert!(plausible_header(&reset(1)));
        assert!(!plausible_header(&reset(1)[..15]));
        assert!(!plausible_header(&msg(1, 0, 0, &[])));
        assert!(!plausible_header(&msg(1, 99, 0, &[])));
        assert!(!plausible_header(&msg(1, 13, 2, &[])));
        assert!(!plausible_header(&msg(1, 13, 0x40, &[])));
        let mut e = msg(1, 13, 0x21, &[]);
        assert!(!plausible_header(&e));
        e[12] = 22;
        assert!(plausible_header(&e));
    }
}
