//! Sources → one pipeline → outputs.
//!
//! ```text
//!  capture files (FileSource) ─┐
//!  the proxy's forwarders ─────┼─▶ Record / Event ─▶ Pipeline ─▶ text, -v, -x, JSON lines
//!  replay's live peer ─────────┘                      │   decode, round trips, filters,
//!                                                     │   validation, --stats
//!                                                     └─▶ a capture file
//! ```
//!
//! A source turns what it reads into [`Record`]s (one message each: connection, direction, time,
//! bytes, descriptors, truncation, protocol) and [`Event`]s (a connection opened or closed, a note,
//! its summary, the end of one input), and hands them to [`Pipeline::record`] and
//! [`Pipeline::event`] on whichever thread owns the pipeline; [`Pipeline::finish`] ends the run. The
//! pipeline owns everything after that: decoding, pairing replies with requests
//! ([`RoundTrips`]), the [`Filter`], the validator, rendering, `--stats` and writing a capture.
//!
//! - A file source ([`FileSource`]) runs on the caller's thread and calls the pipeline directly.
//! - A live source on other threads hands its records over a queue to the thread that owns the
//!   pipeline: the proxy's recorder offers each message to a bounded queue that drops (and counts)
//!   rather than wait (`proxy/print.rs`), so that printing never slows forwarding, and the consumer
//!   feeds the pipeline; what the proxy captures is written by the recorder itself, losslessly.
//! - A source in line with its consumer (replay's peer) calls the pipeline as messages arrive.

mod engine;
mod file;
mod filter;
mod pairing;
mod record;

pub use engine::{Config, Error, FindingsOut, Pipeline, Relative, Totals, validator_event};
pub use file::{FileSource, Position, feed_reader, open_input};
pub use filter::Filter;
pub use pairing::{RoundTrips, VduseInfo, observe_vduse};
pub use record::{Event, Record};
