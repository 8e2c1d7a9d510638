//! `vfu-dump wireshark-dissector`: write the Lua dissector generated from the codec's tables
//! (`crate::dissector`).

use std::io::Write;

use crate::error::RunError;

/// Writes the dissector to `out`.
pub fn run(out: &mut dyn Write) -> Result<(), RunError> {
    crate::dissector::generate(out).map_err(RunError::Io)
}
