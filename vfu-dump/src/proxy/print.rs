//! The printer thread: decodes, validates, filters and renders what the recorder offers it, through a
//! bounded queue that drops (and counts) messages rather than ever making the recorder wait.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::SyncSender;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use vfu_codec::{Direction, decode};

use super::pad::ZeroPad;
use super::{PrintOptions, Summary};
use crate::capture::{Protocol, RecordRef};
use crate::cli::OutputFormat;
use crate::read::RoundTrips;
use crate::render::{self, Meta, Style, json_str};
use crate::validate::{Finding, Validator};

/// Where the printer's text goes.
pub enum Sink {
    /// Written directly (and flushed after each batch).
    Writer(Box<dyn Write + Send>),
    /// Each batch of text is sent as one buffer (for a caller that owns a non-`Send` writer, such as
    /// locked standard output). The printer waits when the channel is full.
    Channel(SyncSender<Vec<u8>>),
}

/// Most messages waiting to be printed.
const MAX_ITEMS: usize = 4096;
/// Most message bytes waiting to be printed.
const MAX_BYTES: usize = 32 << 20;
/// Message buffers kept for reuse: any number up to this size, and a few larger ones (whole large
/// messages travel in them: reallocating them per message would fault fresh pages in each time).
const KEEP_BUFFER: usize = 64 << 10;
const KEEP_BIG: usize = 8;
const KEEP_BIG_BUFFER: usize = 4 << 20;
/// How long the printer pauses after a busy turn (batching; see the module documentation).
const BATCH_PAUSE: Duration = Duration::from_millis(1);

/// A message to print.
pub(crate) struct PMsg {
    pub(crate) index: u64,
    pub(crate) conn: u32,
    pub(crate) dir: Direction,
    pub(crate) ts: u64,
    pub(crate) fds: u32,
    pub(crate) truncated: bool,
    /// The message, or its head when `absent > 0`.
    pub(crate) data: Vec<u8>,
    /// Bytes of transfer data after `data` that went by unread (spliced); they print as zeros.
    pub(crate) absent: usize,
}

/// What the printer prints.
pub(crate) enum Item {
    Msg(PMsg),
    Open {
        conn: u32,
        name: String,
        twin_of: Option<u32>,
    },
    Note {
        conn: u32,
        text: String,
    },
    Close {
        conn: u32,
        messages: u64,
    },
    Summary(Summary),
}

struct Inner {
    items: VecDeque<Item>,
    bytes: usize,
    dropped: u64,
    free: Vec<Vec<u8>>,
    free_big: Vec<Vec<u8>>,
    closed: bool,
    waiting: bool,
}

/// The recorder → printer queue.
pub(crate) struct Queue {
    inner: Mutex<Inner>,
    ready: Condvar,
}

impl Queue {
    pub(crate) fn new() -> Self {
        Queue {
            inner: Mutex::new(Inner {
                items: VecDeque::with_capacity(1024),
                bytes: 0,
                dropped: 0,
                free: Vec::with_capacity(256),
                free_big: Vec::with_capacity(KEEP_BIG),
                closed: false,
                waiting: false,
            }),
            ready: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake(&self, q: &mut Inner) {
        if q.waiting {
            q.waiting = false;
            self.ready.notify_one();
        }
    }

    /// Offers a message; `false` when the queue is full and it was dropped (and counted).
    pub(crate) fn push_msg(&self, mut m: PMsg, data: &[u8]) -> bool {
        let mut q = self.lock();
        if q.items.len() >= MAX_ITEMS || q.bytes + data.len() > MAX_BYTES {
            q.dropped += 1;
            return false;
        }
        let mut buf = if data.len() > KEEP_BUFFER {
            q.free_big.pop()
        } else {
            q.free.pop()
        }
        .unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(data);
        q.bytes += buf.len();
        m.data = buf;
        q.items.push_back(Item::Msg(m));
        self.wake(&mut q);
        true
    }

    /// Offers a message held in `buf` without copying it: on success `buf` is swapped for an empty
    /// buffer from the reuse list. `false` when the queue is full (the message is dropped and counted;
    /// `buf` is left as it was).
    pub(crate) fn push_owned(&self, mut m: PMsg, buf: &mut Vec<u8>) -> bool {
        let mut q = self.lock();
        if q.items.len() >= MAX_ITEMS || q.bytes + buf.len() > MAX_BYTES {
            q.dropped += 1;
            return false;
        }
        let replacement = q.free_big.pop().unwrap_or_default();
        m.data = std::mem::replace(buf, replacement);
        q.bytes += m.data.len();
        q.items.push_back(Item::Msg(m));
        self.wake(&mut q);
        true
    }

    /// Queues an event (never dropped: there are few).
    pub(crate) fn push(&self, item: Item) {
        let mut q = self.lock();
        q.items.push_back(item);
        self.wake(&mut q);
    }

    /// No more items will come.
    pub(crate) fn close(&self) {
        let mut q = self.lock();
        q.closed = true;
        self.wake(&mut q);
    }

    /// Messages dropped so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Moves every queued item to `into`, waiting for some; `None` once closed and empty. Also
    /// returns the drop count.
    pub(super) fn pop_all(&self, into: &mut VecDeque<Item>) -> Option<u64> {
        let mut q = self.lock();
        while q.items.is_empty() {
            if q.closed {
                return None;
            }
            q.waiting = true;
            q = self.ready.wait(q).unwrap_or_else(PoisonError::into_inner);
        }
        std::mem::swap(&mut q.items, into);
        q.bytes = 0;
        Some(q.dropped)
    }

    fn recycle(&self, mut buf: Vec<u8>) {
        buf.clear();
        let mut q = self.lock();
        if buf.capacity() <= KEEP_BUFFER {
            if q.free.len() < q.free.capacity() {
                q.free.push(buf);
            }
        } else if buf.capacity() <= KEEP_BIG_BUFFER && q.free_big.len() < KEEP_BIG {
            q.free_big.push(buf);
        }
    }
}

struct Printer {
    opts: PrintOptions,
    out: Vec<u8>,
    validator: Option<Validator>,
    rtts: RoundTrips,
    first_ts: Option<u64>,
    findings: Vec<Finding>,
    sink_failed: bool,
    pad: ZeroPad,
}

/// Runs the printer until the queue is closed and empty.
pub(crate) fn run(q: &Queue, opts: PrintOptions) {
    let validator = opts.validate.map(Validator::new);
    let mut p = Printer {
        opts,
        out: Vec::with_capacity(64 << 10),
        validator,
        rtts: RoundTrips::default(),
        first_ts: None,
        findings: Vec::new(),
        sink_failed: false,
        pad: ZeroPad::default(),
    };
    let mut batch = VecDeque::with_capacity(1024);
    let mut reported = 0;
    while let Some(dropped) = q.pop_all(&mut batch) {
        if dropped > reported {
            p.line(
                u32::MAX,
                &format!(
                    "{} messages not printed: the output fell behind (all were forwarded and captured)",
                    dropped - reported
                ),
            );
            reported = dropped;
        }
        for item in batch.drain(..) {
            match item {
                Item::Msg(m) => {
                    let _ = p.message(&m);
                    q.recycle(m.data);
                }
                other => p.event(other),
            }
        }
        p.flush();
        std::thread::sleep(BATCH_PAUSE);
    }
    if let Some(v) = p.validator.as_mut() {
        let findings = v.finish();
        for f in &findings {
            let _ = crate::validate_cli::write_finding(&mut p.out, f, p.opts.format, false);
        }
    }
    p.flush();
}

impl Printer {
    fn message(&mut self, m: &PMsg) -> io::Result<()> {
        let data: &[u8] = if m.absent == 0 {
            &m.data
        } else {
            self.pad.with(&m.data, m.absent)
        };
        let rec = RecordRef {
            conn: m.conn,
            ts_ns: m.ts,
            direction: m.dir,
            protocol: Protocol::VfioUser,
            fds: m.fds,
            truncated: m.truncated,
            data,
            index: m.index,
            file_offset: 0,
        };
        self.findings.clear();
        if let Some(v) = self.validator.as_mut() {
            v.check(&crate::validate_cli::event(&rec), &mut self.findings);
        }
        let decoded = decode(data, m.dir);
        let rtt = decoded
            .as_ref()
            .ok()
            .and_then(|msg| self.rtts.observe(m.conn, m.dir, m.ts, msg));
        if !self.opts.messages {
            for f in &self.findings {
                crate::validate_cli::write_finding(&mut self.out, f, self.opts.format, false)?;
            }
            return Ok(());
        }
        let bad = m.truncated
            || decoded.as_ref().map_or(true, |d| d.header.is_error())
            || !self.findings.is_empty();
        if !self.opts.filter.pass(&rec, bad) {
            return Ok(());
        }
        let relative_to = if self.opts.relative {
            Some(*self.first_ts.get_or_insert(m.ts))
        } else {
            None
        };
        let style = Style {
            relative_to,
            ..self.opts.style
        };
        let meta = Meta {
            index: m.index,
            ts_ns: m.ts,
            conn: m.conn,
            direction: m.dir,
            fds: m.fds,
            truncated: m.truncated,
            rtt_ns: rtt,
        };
        match self.opts.format {
            OutputFormat::Text => render::write_line(&mut self.out, &meta, data, &decoded, &style)?,
            OutputFormat::Json => render::write_json(&mut self.out, &meta, data, &decoded)?,
        }
        for f in &self.findings {
            crate::validate_cli::write_finding(&mut self.out, f, self.opts.format, true)?;
        }
        Ok(())
    }

    fn line(&mut self, conn: u32, text: &str) {
        match self.opts.format {
            OutputFormat::Text => {
                if conn == u32::MAX {
                    let _ = writeln!(self.out, "-- {text}");
                } else {
                    let _ = writeln!(self.out, "-- c{conn} {text}");
                }
            }
            OutputFormat::Json => {
                let mut s = String::from("{\"event\":\"note\"");
                if conn != u32::MAX {
                    s.push_str(&format!(",\"conn\":{conn}"));
                }
                s.push_str(",\"text\":");
                json_str(&mut s, text);
                s.push_str("}\n");
                self.out.extend_from_slice(s.as_bytes());
            }
        }
    }

    fn event(&mut self, item: Item) {
        let json = self.opts.format == OutputFormat::Json;
        match item {
            Item::Msg(_) => {}
            Item::Note { conn, text } => self.line(conn, &text),
            Item::Open {
                conn,
                name,
                twin_of,
            } => {
                if json {
                    let mut s = format!("{{\"event\":\"open\",\"conn\":{conn},\"name\":");
                    json_str(&mut s, &name);
                    if let Some(m) = twin_of {
                        s.push_str(&format!(",\"twin_of\":{m}"));
                    }
                    s.push_str("}\n");
                    self.out.extend_from_slice(s.as_bytes());
                } else {
                    self.line(conn, &format!("open: {name}"));
                }
            }
            Item::Close { conn, messages } => {
                if json {
                    let _ = writeln!(
                        self.out,
                        "{{\"event\":\"close\",\"conn\":{conn},\"messages\":{messages}}}"
                    );
                } else {
                    self.line(conn, &format!("closed after {messages} messages"));
                }
            }
            Item::Summary(s) => {
                if json {
                    let _ = writeln!(
                        self.out,
                        "{{\"event\":\"summary\",\"connections\":{},\"twin_sockets\":{},\"connect_failures\":{},\"messages\":{},\"bytes_c2s\":{},\"bytes_s2c\":{},\"malformed\":{},\"truncated\":{},\"oversized\":{},\"fds\":{},\"fds_truncated\":{},\"forward_errors\":{},\"not_printed\":{}}}",
                        s.connections,
                        s.twin_sockets,
                        s.connect_failures,
                        s.messages,
                        s.bytes_c2s,
                        s.bytes_s2c,
                        s.malformed,
                        s.truncated,
                        s.oversized,
                        s.fds,
                        s.fds_truncated,
                        s.forward_errors,
                        s.not_printed
                    );
                } else {
                    self.line(
                        u32::MAX,
                        &format!(
                            "summary: {} connections ({} twin sockets, {} server connections failed), {} messages \
                             ({} B client→server, {} B server→client), {} malformed, {} truncated, {} oversized, \
                             {} fds, {} descriptor reads cut short, {} forwarding errors, {} not printed",
                            s.connections,
                            s.twin_sockets,
                            s.connect_failures,
                            s.messages,
                            s.bytes_c2s,
                            s.bytes_s2c,
                            s.malformed,
                            s.truncated,
                            s.oversized,
                            s.fds,
                            s.fds_truncated,
                            s.forward_errors,
                            s.not_printed
                        ),
                    );
                }
            }
        }
    }

    fn flush(&mut self) {
        if self.out.is_empty() {
            return;
        }
        if self.sink_failed {
            self.out.clear();
            return;
        }
        let ok = match &mut self.opts.sink {
            Sink::Writer(w) => w.write_all(&self.out).and_then(|()| w.flush()).is_ok(),
            Sink::Channel(tx) => {
                let batch = std::mem::replace(&mut self.out, Vec::with_capacity(64 << 10));
                tx.send(batch).is_ok()
            }
        };
        self.out.clear();
        self.sink_failed = !ok;
    }
}
