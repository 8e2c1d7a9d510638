//! What the validator reports: a [`Finding`], and the [`Sink`] the rule modules push them into.

use std::fmt;

use super::rules::{Rule, RuleInfo};
use super::types::Severity;

/// One thing the validator found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The rule (its row of [`RULES`](super::RULES)).
    pub rule: &'static RuleInfo,
    /// The rule's severity.
    pub severity: Severity,
    /// The connection.
    pub conn: u32,
    /// The message's index in the capture.
    pub index: u64,
    /// The byte offset within the message of what the finding is about (0 for the message as a whole).
    pub offset: usize,
    /// One plain sentence naming the values.
    pub message: String,
}

/// `conn 3 #41 +0x18 error dma-unmap-no-match: …`
impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "conn {} #{} +{:#x} {} {}: {}",
            self.conn, self.index, self.offset, self.severity, self.rule.id, self.message
        )
    }
}

/// Where the findings of one message go.
pub(crate) struct Sink<'o> {
    out: &'o mut Vec<Finding>,
    conn: u32,
    index: u64,
}

impl<'o> Sink<'o> {
    pub(super) fn new(out: &'o mut Vec<Finding>, conn: u32, index: u64) -> Self {
        Sink { out, conn, index }
    }

    /// Findings pushed so far (by anyone).
    pub(super) fn len(&self) -> usize {
        self.out.len()
    }

    /// Keeps, of the findings pushed from `start` on, those `keep` says to.
    pub(super) fn retain_from(&mut self, start: usize, keep: impl Fn(&Finding) -> bool) {
        let mut i = start;
        while i < self.out.len() {
            if keep(&self.out[i]) {
                i += 1;
            } else {
                self.out.remove(i);
            }
        }
    }

    /// Reports `rule` at `offset` of the current message.
    pub(super) fn emit(&mut self, rule: Rule, offset: usize, message: fmt::Arguments<'_>) {
        self.emit_at(rule, self.index, offset, message);
    }

    /// Reports `rule` about another message of the same connection.
    pub(super) fn emit_at(
        &mut self,
        rule: Rule,
        index: u64,
        offset: usize,
        message: fmt::Arguments<'_>,
    ) {
        let info = rule.info();
        self.out.push(Finding {
            rule: info,
            severity: info.severity,
            conn: self.conn,
            index,
            offset,
            message: message.to_string(),
        });
    }

    /// Reports a decode error as `decode/<codec rule id>`.
    pub(super) fn decode(&mut self, e: &vfu_codec::DecodeError) {
        let rule = Rule::for_decode(&e.rule);
        if rule == Rule::DecodeOther {
            self.emit(
                rule,
                e.offset,
                format_args!("{} (codec rule {})", e.rule, e.rule.id()),
            );
        } else {
            self.emit(rule, e.offset, format_args!("{}", e.rule));
        }
    }
}
