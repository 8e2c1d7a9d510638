//! [`Filter`]: which messages are shown (`--cmd`, `--dir`, `--conn`, `--id`, `--errors`).

use vfu_codec::{Command, Direction};

use super::record::Record;
use crate::capture::Protocol;
use crate::error::RunError;
use crate::options::FilterOpts;

/// Compiled filters.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    cmds: Vec<Command>,
    dir: Option<Direction>,
    conns: Vec<u32>,
    id: Option<u16>,
    errors: bool,
}

impl Filter {
    /// Compiles `--cmd` names and the other filters.
    pub fn new(f: &FilterOpts) -> Result<Self, RunError> {
        let mut cmds = Vec::new();
        for c in &f.cmd {
            cmds.push(Command::parse(c).ok_or_else(|| {
                RunError::Usage(format!(
                    "--cmd {c}: not a command name or number (try DMA_MAP, REGION_READ or 9)"
                ))
            })?);
        }
        Ok(Filter {
            cmds,
            dir: f.dir.map(Into::into),
            conns: f.conn.clone(),
            id: f.id,
            errors: f.errors,
        })
    }

    /// Whether `--conn` lets connection `conn` through (findings are shown for those only).
    pub fn pass_conn(&self, conn: u32) -> bool {
        self.conns.is_empty() || self.conns.contains(&conn)
    }

    /// Whether a record passes; `bad` says it is an error reply, malformed or truncated.
    pub fn pass(&self, rec: &Record<'_>, bad: bool) -> bool {
        if self.dir.is_some_and(|d| d != rec.direction)
            || (!self.conns.is_empty() && !self.conns.contains(&rec.conn))
        {
            return false;
        }
        if self.errors && !bad {
            return false;
        }
        let hdr = vfu_codec::Header::peek(rec.data).filter(|_| rec.protocol != Protocol::Vduse);
        if !self.cmds.is_empty() && !hdr.is_some_and(|h| self.cmds.contains(&h.cmd())) {
            return false;
        }
        if let Some(id) = self.id
            && hdr.is_none_or(|h| h.msg_id.get() != id)
        {
            return false;
        }
        true
    }
}
