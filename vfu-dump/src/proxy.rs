//! `vfu-dump proxy` (being written).

use std::io::Write;

use crate::cli::ProxyOpts;
use crate::read::RunError;

/// Runs the proxy until SIGINT/SIGTERM.
pub fn run(_opts: &ProxyOpts, _out: &mut dyn Write) -> Result<(), RunError> {
    Err(RunError::Usage("proxy: not implemented yet".into()))
}
