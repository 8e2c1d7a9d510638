//! [`Filter`]: which messages are shown (`--cmd`, `--dir`, `--conn`, `--id`, `--errors`).

use vfu_codec::vduse;
use vfu_codec::{Command, Direction};

use super::record::Record;
use crate::capture::Protocol;
use crate::error::RunError;
use crate::options::FilterOpts;

/// Compiled filters.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// `--cmd` was given: only the commands and request types below pass.
    any_cmd: bool,
    cmds: Vec<Command>,
    vduse_types: Vec<u32>,
    dir: Option<Direction>,
    conns: Vec<u32>,
    id: Option<u32>,
    errors: bool,
}

/// A VDUSE request type by name (`SET_STATUS`, `VDUSE_SET_STATUS`, any case) or number.
fn vduse_type(s: &str) -> Option<u32> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return u32::from_str_radix(hex, 16).ok();
    }
    if let Ok(v) = s.parse::<u32>() {
        return Some(v);
    }
    let name = match s.get(..6) {
        Some(p) if p.eq_ignore_ascii_case("VDUSE_") => &s[6..],
        _ => s,
    };
    vduse::REQUEST_TYPE_NAMES
        .iter()
        .find(|n| n.name.eq_ignore_ascii_case(name))
        .map(|n| n.value as u32)
}

impl Filter {
    /// Compiles `--cmd` names (vfio-user commands and VDUSE request types; a number is both) and the
    /// other filters.
    pub fn new(f: &FilterOpts) -> Result<Self, RunError> {
        let mut cmds = Vec::new();
        let mut vduse_types = Vec::new();
        for c in &f.cmd {
            let v = Command::parse(c);
            let d = vduse_type(c);
            if v.is_none() && d.is_none() {
                return Err(RunError::Usage(format!(
                    "--cmd {c}: not a command name or number (try DMA_MAP, REGION_READ or 9; for VDUSE, \
                     SET_STATUS or 1)"
                )));
            }
            cmds.extend(v);
            vduse_types.extend(d);
        }
        Ok(Filter {
            any_cmd: !f.cmd.is_empty(),
            cmds,
            vduse_types,
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

    /// The filters every protocol shares: direction, connection, `--errors`.
    fn pass_common(&self, rec: &Record<'_>, bad: bool) -> bool {
        !(self.dir.is_some_and(|d| d != rec.direction)
            || (!self.conns.is_empty() && !self.conns.contains(&rec.conn))
            || (self.errors && !bad))
    }

    /// Whether a vfio-user record passes; `bad` says it is an error reply, malformed or truncated
    /// (or has findings).
    pub fn pass(&self, rec: &Record<'_>, bad: bool) -> bool {
        if !self.pass_common(rec, bad) {
            return false;
        }
        let hdr = vfu_codec::Header::peek(rec.data).filter(|_| rec.protocol != Protocol::Vduse);
        if self.any_cmd && !hdr.is_some_and(|h| self.cmds.contains(&h.cmd())) {
            return false;
        }
        if let Some(id) = self.id
            && hdr.is_none_or(|h| u32::from(h.msg_id.get()) != id)
        {
            return false;
        }
        true
    }

    /// Whether a VDUSE record passes: `req_type` is a request's type, or for a response the type of
    /// the request it answers (when seen); `request_id` is the record's, when it decodes.
    pub fn pass_vduse(
        &self,
        rec: &Record<'_>,
        bad: bool,
        req_type: Option<u32>,
        request_id: Option<u32>,
    ) -> bool {
        self.pass_common(rec, bad)
            && (!self.any_cmd || req_type.is_some_and(|t| self.vduse_types.contains(&t)))
            && self.id.is_none_or(|id| request_id == Some(id))
    }
}
