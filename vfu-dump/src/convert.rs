//! `vfu-dump convert`: any readable input to the vfu pcapng capture format.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::capture::{self, OpenOptions, PcapngWriter};
use crate::cli::ConvertOpts;
use crate::read::RunError;

/// Runs `vfu-dump convert`.
pub fn run(opts: &ConvertOpts) -> Result<(), RunError> {
    let copts = OpenOptions {
        raw: opts.raw,
        direction: opts.direction.map(Into::into),
    };
    let name = opts.input.display().to_string();
    let mut reader =
        capture::open(&opts.input, &copts).map_err(|e| RunError::Capture(name.clone(), e))?;
    let out: Box<dyn Write> = if opts.output == Path::new("-") {
        Box::new(io::stdout().lock())
    } else {
        Box::new(
            File::create(&opts.output)
                .map_err(|e| RunError::Usage(format!("{}: {e}", opts.output.display())))?,
        )
    };
    let mut w = PcapngWriter::new(BufWriter::with_capacity(1 << 16, out))?;
    loop {
        // An owned copy ends the borrow of the reader, whose connection list can grow as it reads
        // (sockdump input finds connections as it goes).
        let rec = match reader.next_record() {
            Ok(Some(r)) => r.to_owned(),
            Ok(None) => break,
            Err(e) => {
                w.flush()?;
                return Err(RunError::Capture(name, e));
            }
        };
        while w.connections().len() <= rec.conn as usize {
            let c = &reader.connections()[w.connections().len()];
            w.add_connection(&c.name, c.protocol)?;
        }
        w.write_record(&rec.as_ref())?;
    }
    // Interfaces with no records still describe connections of the input.
    while w.connections().len() < reader.connections().len() {
        let c = &reader.connections()[w.connections().len()];
        w.add_connection(&c.name, c.protocol)?;
    }
    w.flush()?;
    Ok(())
}
