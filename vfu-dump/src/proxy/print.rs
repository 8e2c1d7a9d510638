//! The printer thread: what the recorder offers it comes through a bounded queue that drops (and
//! counts) messages rather than ever making the recorder wait, and goes to the pipeline
//! (`crate::pipeline`), which decodes, validates, filters and renders it.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::mpsc::SyncSender;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use vfu_codec::Direction;

use super::event::Summary;
use super::pad::ZeroPad;
use crate::capture::Protocol;
use crate::options::OutputFormat;
use crate::pipeline::{Config, Event, Filter, FindingsOut, Pipeline, Record, Relative};
use crate::render::{Style, count_of};
use crate::validate::Profile;

/// Where the printer's text goes.
pub enum Sink {
    /// Written directly (and flushed after each batch).
    Writer(Box<dyn Write + Send>),
    /// Each batch of text is sent as one buffer (for a caller that owns a non-`Send` writer, such as
    /// locked standard output). The printer waits when the channel is full.
    Channel(SyncSender<Vec<u8>>),
}

/// What to print, and where.
pub struct PrintOptions {
    /// Where the text goes.
    pub sink: Sink,
    /// Text lines or JSON objects.
    pub format: OutputFormat,
    /// Colour, `-v`, `-x`.
    pub style: Style,
    /// Times relative to the first message.
    pub relative: bool,
    /// Which messages to print (everything is forwarded and captured).
    pub filter: Filter,
    /// Print a line per message (`false` is `--quiet`: connection events, findings and the summary
    /// only).
    pub messages: bool,
    /// Validate live with this profile and print the findings.
    pub validate: Option<Profile>,
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

/// The consumer: the queue's items fed to the pipeline, its output flushed to the sink after each batch.
struct Printer {
    pipeline: Pipeline<Vec<u8>>,
    sink: Sink,
    sink_failed: bool,
    pad: ZeroPad,
}

/// Runs the printer until the queue is closed and empty.
pub(crate) fn run(q: &Queue, opts: PrintOptions) {
    let cfg = Config {
        format: opts.format,
        style: opts.style,
        relative: if opts.relative {
            Relative::FirstShown
        } else {
            Relative::Off
        },
        filter: opts.filter,
        messages: opts.messages,
        events: true,
        validate: opts.validate,
        findings: FindingsOut {
            info: true,
            without_messages: true,
            indent_final: false,
            per_input: false,
        },
        stats: false,
    };
    let mut p = Printer {
        pipeline: Pipeline::new(cfg, Vec::with_capacity(64 << 10)),
        sink: opts.sink,
        sink_failed: false,
        pad: ZeroPad::default(),
    };
    let mut batch = VecDeque::with_capacity(1024);
    let mut reported = 0;
    while let Some(dropped) = q.pop_all(&mut batch) {
        if dropped > reported {
            let text = format!(
                "{} not printed: the output fell behind (all were forwarded and captured)",
                count_of(dropped - reported, "message", "messages")
            );
            let _ = p.pipeline.event(&Event::Note {
                conn: None,
                text: &text,
            });
            reported = dropped;
        }
        for item in batch.drain(..) {
            match item {
                Item::Msg(m) => {
                    p.message(&m);
                    q.recycle(m.data);
                }
                other => p.event(other),
            }
        }
        p.flush();
        std::thread::sleep(BATCH_PAUSE);
    }
    let _ = p.pipeline.finish();
    p.flush();
}

impl Printer {
    fn message(&mut self, m: &PMsg) {
        let data: &[u8] = if m.absent == 0 {
            &m.data
        } else {
            self.pad.with(&m.data, m.absent)
        };
        let rec = Record {
            conn: m.conn,
            index: m.index,
            ts_ns: m.ts,
            direction: m.dir,
            protocol: Protocol::VfioUser,
            fds: m.fds,
            fd_kinds: &[],
            truncated: m.truncated,
            data,
            orig_len: data.len(),
        };
        let _ = self.pipeline.record(rec);
    }

    fn event(&mut self, item: Item) {
        let _ = match item {
            Item::Msg(_) => Ok(()),
            Item::Note { conn, text } => self.pipeline.event(&Event::Note {
                conn: (conn != u32::MAX).then_some(conn),
                text: &text,
            }),
            Item::Open {
                conn,
                name,
                twin_of,
            } => self.pipeline.event(&Event::Open {
                conn,
                name: &name,
                protocol: Protocol::VfioUser,
                twin_of,
            }),
            Item::Close { conn, messages } => self.pipeline.event(&Event::Close { conn, messages }),
            Item::Summary(s) => {
                let c = |n: u64, one: &str, many: &str| count_of(n, one, many);
                let text = format!(
                    "summary: {} ({}, {} failed), {} ({} B client→server, {} B server→client), \
                     {} malformed, {} truncated, {} oversized, {}, {} cut short, {}, {} not printed",
                    c(s.connections, "connection", "connections"),
                    c(s.twin_sockets, "twin socket", "twin sockets"),
                    c(
                        s.connect_failures,
                        "server connection",
                        "server connections"
                    ),
                    c(s.messages, "message", "messages"),
                    s.bytes_c2s,
                    s.bytes_s2c,
                    s.malformed,
                    s.truncated,
                    s.oversized,
                    c(s.fds, "fd", "fds"),
                    c(s.fds_truncated, "descriptor read", "descriptor reads"),
                    c(s.forward_errors, "forwarding error", "forwarding errors"),
                    s.not_printed
                );
                let fields = [
                    ("connections", s.connections),
                    ("twin_sockets", s.twin_sockets),
                    ("connect_failures", s.connect_failures),
                    ("messages", s.messages),
                    ("bytes_c2s", s.bytes_c2s),
                    ("bytes_s2c", s.bytes_s2c),
                    ("malformed", s.malformed),
                    ("truncated", s.truncated),
                    ("oversized", s.oversized),
                    ("fds", s.fds),
                    ("fds_truncated", s.fds_truncated),
                    ("forward_errors", s.forward_errors),
                    ("not_printed", s.not_printed),
                ];
                self.pipeline.event(&Event::Summary {
                    text: &text,
                    fields: &fields,
                })
            }
        };
    }

    fn flush(&mut self) {
        let out = self.pipeline.out();
        if out.is_empty() {
            return;
        }
        if self.sink_failed {
            out.clear();
            return;
        }
        let ok = match &mut self.sink {
            Sink::Writer(w) => w.write_all(out).and_then(|()| w.flush()).is_ok(),
            Sink::Channel(tx) => {
                let batch = std::mem::replace(out, Vec::with_capacity(64 << 10));
                tx.send(batch).is_ok()
            }
        };
        self.pipeline.out().clear();
        self.sink_failed = !ok;
    }
}
