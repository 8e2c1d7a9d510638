//! How to replay: [`Options`] and [`Timing`].

use std::time::Duration;

use clap::ValueEnum;

/// Pacing of what `replay` sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Timing {
    /// Keep the captured gaps: each message goes no earlier than it did in the capture.
    Original,
    /// Send each message as soon as the conversation allows.
    #[default]
    Fast,
}

/// How to replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Pacing of what the replay sends.
    pub timing: Timing,
    /// How long to wait for each message the capture says the live peer sends.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timing: Timing::Fast,
            timeout: Duration::from_secs(5),
        }
    }
}
