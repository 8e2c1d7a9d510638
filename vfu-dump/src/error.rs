//! [`RunError`]: why a subcommand stopped early.

use std::io;

use crate::capture::CaptureError;

/// Why a run stopped early.
#[derive(Debug)]
pub enum RunError {
    /// Writing the output failed (a closed pipe is handled by the caller).
    Io(io::Error),
    /// An input could not be opened or read; earlier records were processed.
    Capture(String, CaptureError),
    /// The arguments cannot be used.
    Usage(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Io(e) => write!(f, "{e}"),
            // The open error names the path itself.
            RunError::Capture(_, e @ CaptureError::Open { .. }) => write!(f, "{e}"),
            RunError::Capture(file, e) => write!(f, "{file}: {e}"),
            RunError::Usage(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for RunError {}

impl From<io::Error> for RunError {
    fn from(e: io::Error) -> Self {
        RunError::Io(e)
    }
}
