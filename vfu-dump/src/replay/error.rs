//! [`ReplayError`]: why a replay could not run.

use std::io;

use crate::capture::CaptureError;

/// Why a replay could not run (a divergence is not an error: see [`Report`](super::Report)).
#[derive(Debug)]
pub enum ReplayError {
    /// The capture cannot be opened or read.
    Capture(String, CaptureError),
    /// The capture cannot be replayed: nothing was sent. `index` names the message.
    BadCapture {
        /// The message concerned (its number in the capture), when one is.
        index: Option<u64>,
        /// What is wrong.
        reason: String,
    },
    /// The arguments cannot be used.
    Usage(String),
    /// A socket or descriptor operation failed (what was being done, and the error).
    Socket(String, io::Error),
    /// Writing the output failed.
    Output(io::Error),
}

impl std::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplayError::Capture(file, e) => write!(f, "{file}: {e}"),
            ReplayError::BadCapture {
                index: Some(i),
                reason,
            } => write!(f, "cannot replay: #{i}: {reason}; nothing was sent"),
            ReplayError::BadCapture {
                index: None,
                reason,
            } => write!(f, "cannot replay: {reason}; nothing was sent"),
            ReplayError::Usage(s) => f.write_str(s),
            ReplayError::Socket(what, e) => write!(f, "{what}: {e}"),
            ReplayError::Output(e) => write!(f, "writing output: {e}"),
        }
    }
}

impl std::error::Error for ReplayError {}

impl From<io::Error> for ReplayError {
    fn from(e: io::Error) -> Self {
        ReplayError::Output(e)
    }
}

/// Whether a send failed because the peer is gone.
pub(crate) fn gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::NotConnected
    )
}
