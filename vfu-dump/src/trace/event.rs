//! What the tracer is asked to do and what it reports: [`Target`], [`Event`], [`Sink`].

use std::ffi::OsString;
use std::io;

use vfu_codec::Direction;

use crate::capture::Protocol;

/// What to trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Start this program (path or name in `PATH`, then its arguments) and follow it.
    Launch(Vec<OsString>),
    /// Attach to these running processes.
    Attach(Vec<i32>),
}

/// What the tracer reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A connection was found: its number and its capture interface name
    /// (`vfio-user:<n>:<server socket path>`, `vduse:<n>:/dev/vduse/<name>`).
    Open {
        /// Its number (shared by vfio-user and VDUSE connections, from 0).
        conn: u32,
        /// Its capture interface name.
        name: &'a str,
        /// Its protocol.
        protocol: Protocol,
        /// Where it was first seen, or empty.
        detail: &'a str,
    },
    /// One whole message, or an ioctl record ([`Protocol::VduseIoctl`]).
    Message {
        /// The connection.
        conn: u32,
        /// Which way it went (VDUSE: requests kernel → daemon are client to server; responses and
        /// ioctls server to client).
        direction: Direction,
        /// Its protocol.
        protocol: Protocol,
        /// Wall-clock time the call that completed it returned, ns since the Unix epoch.
        ts_ns: u64,
        /// Its bytes.
        data: &'a [u8],
        /// What each descriptor that travelled with it is (`/memfd:guest-ram (deleted)`,
        /// `anon_inode:[eventfd]`, `socket:[1234]`, a path), from the sender's or receiver's
        /// `/proc/PID/fd`.
        fds: &'a [String],
        /// The stream ended (or a record's limit was reached) before the message was whole.
        truncated: bool,
    },
    /// Something worth a line: a resynchronisation, a process start or end, data lost.
    Note {
        /// The connection it concerns, if one.
        conn: Option<u32>,
        /// One sentence.
        text: &'a str,
    },
    /// A connection ended.
    Close {
        /// The connection.
        conn: u32,
        /// How many messages it had.
        messages: u64,
    },
}

/// Where events go. An error stops the recording: attached processes are detached, a launched one
/// passed through until it exits, and [`run`](super::run) returns the error.
pub trait Sink {
    /// Takes one event.
    fn event(&mut self, ev: &Event<'_>) -> io::Result<()>;

    /// The tracer has nothing to do until a tracee stops again: a moment to flush buffered output
    /// (so that output follows the traffic, without a write per event while it flows).
    fn idle(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<F: FnMut(&Event<'_>) -> io::Result<()>> Sink for F {
    fn event(&mut self, ev: &Event<'_>) -> io::Result<()> {
        self(ev)
    }
}

/// Connection numbers, handed out in order.
#[derive(Debug, Default)]
pub(crate) struct Ids(u32);

impl Ids {
    pub(crate) fn next(&mut self) -> u32 {
        let n = self.0;
        self.0 += 1;
        n
    }
}

/// How a run ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// A launched program's exit status (128 + signal when a signal killed it).
    pub exit: Option<i32>,
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io;

    use crate::capture::Protocol;
    use crate::trace::event::{Event, Sink};

    /// Collects events as short lines, for tests.
    #[derive(Default)]
    pub(crate) struct Collect(Vec<String>);

    impl Collect {
        pub(crate) fn lines(&self) -> Vec<String> {
            self.0.clone()
        }

        /// The lines of message events only (`msg …`).
        pub(crate) fn messages(&self) -> Vec<String> {
            self.0
                .iter()
                .filter(|l| l.starts_with("msg"))
                .cloned()
                .collect()
        }
    }

    impl Sink for Collect {
        fn event(&mut self, ev: &Event<'_>) -> io::Result<()> {
            let l = match ev {
                Event::Open { conn, name, .. } => format!("open {conn} {name}"),
                Event::Message {
                    conn,
                    direction,
                    protocol,
                    data,
                    fds,
                    truncated,
                    ..
                } => format!(
                    "msg {conn} {} {} fds={fds:?}{}{}",
                    direction.short(),
                    data.len(),
                    if *truncated { " truncated" } else { "" },
                    match protocol {
                        Protocol::VfioUser => "",
                        Protocol::Vduse => " vduse",
                        Protocol::VduseIoctl => " ioctl",
                        Protocol::Other => " other",
                    }
                ),
                Event::Note { conn, text } => format!("note {conn:?} {text}"),
                Event::Close { conn, messages } => format!("close {conn} {messages}"),
            };
            self.0.push(l);
            Ok(())
        }
    }
}
