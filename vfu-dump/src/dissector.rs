//! `vfu-dump wireshark-dissector` (being written).

use std::io::{self, Write};

/// Writes the Lua dissector.
pub fn generate(_out: &mut dyn Write) -> io::Result<()> {
    Err(io::Error::other("wireshark-dissector: not implemented yet"))
}
