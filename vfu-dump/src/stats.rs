//! `--stats`: counts, bytes, error replies and round-trip percentiles, in constant memory.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};

use vfu_codec::{Command, Direction, errno, vduse};

use crate::render::{count_of, fmt_duration};

/// Round-trip durations in nanoseconds, for percentiles in constant memory: the first
/// [`Histogram::EXACT`] values are kept as they are, so that a row with few samples shows exact
/// nearest-rank percentiles (a row of one shows that one value as p50, p99 and max); beyond that a
/// log-linear histogram (64 power-of-two ranges, each cut into 16 linear steps) gives any percentile
/// within about 6% of the true value, never below the smallest value seen nor above the largest.
#[derive(Clone, Debug)]
pub struct Histogram {
    buckets: Box<[u64; 64 * 16]>,
    exact: Vec<u64>,
    count: u64,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: Box::new([0; 64 * 16]),
            exact: Vec::new(),
            count: 0,
            min: u64::MAX,
            max: 0,
        }
    }
}

impl Histogram {
    /// Values kept exactly before the histogram alone answers.
    pub const EXACT: usize = 256;

    fn bucket(v: u64) -> usize {
        if v < 16 {
            return v as usize;
        }
        let e = 63 - v.leading_zeros() as usize; // ≥ 4
        let sub = ((v >> (e - 4)) & 15) as usize;
        (e - 3) * 16 + sub
    }

    fn lower_bound(b: usize) -> u64 {
        if b < 16 {
            return b as u64;
        }
        let e = b / 16 + 3;
        let sub = (b % 16) as u64;
        (1u64 << e) | (sub << (e - 4))
    }

    /// Adds one value.
    pub fn record(&mut self, v: u64) {
        self.buckets[Self::bucket(v)] += 1;
        if self.exact.len() < Self::EXACT {
            self.exact.push(v);
        }
        self.count += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The largest value recorded.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The smallest value recorded (0 when none was).
    pub fn min(&self) -> u64 {
        if self.count == 0 { 0 } else { self.min }
    }

    /// The nearest-rank `q` quantile (0..=1): the value at rank ⌈q·n⌉ of the sorted values. Exact
    /// while at most [`Self::EXACT`] values were recorded; then the lower bound of the histogram
    /// bucket that holds that rank, kept within the smallest and largest values seen.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let want = ((self.count as f64) * q)
            .ceil()
            .clamp(1.0, self.count as f64) as u64;
        if self.count as usize == self.exact.len() {
            let mut sorted = self.exact.clone();
            sorted.sort_unstable();
            return sorted[want as usize - 1];
        }
        let mut seen = 0;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= want {
                return Self::lower_bound(i).clamp(self.min, self.max);
            }
        }
        self.max
    }
}

/// Figures for one (command, direction, type) row.
#[derive(Clone, Debug, Default)]
pub struct Row {
    /// Messages.
    pub count: u64,
    /// Bytes.
    pub bytes: u64,
    /// Error replies by errno.
    pub errors: BTreeMap<u32, u64>,
    /// Round trips ending in these replies.
    pub rtt: Histogram,
    /// Messages of the row whose body does not decode.
    pub malformed: u64,
}

/// Rows indexed directly: commands 0 to 63 (every named command and room to spare).
const FAST_ROWS: usize = 64 * 4;

/// What one vfio-user message adds to its command's row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counted {
    /// Which way it travelled.
    pub direction: Direction,
    /// A reply (else a command).
    pub reply: bool,
    /// Its length in bytes.
    pub len: usize,
    /// The errno of an error reply.
    pub errno: Option<u32>,
    /// The round trip a reply ends, in nanoseconds.
    pub rtt: Option<u64>,
}

/// The accumulated statistics of a run.
#[derive(Debug, Default)]
pub struct Stats {
    rows: BTreeMap<(u16, bool, bool), Row>,
    /// The rows of commands below [`FAST_ROWS`] / 4, by `command * 4 + c2s * 2 + reply`, kept out of
    /// the map so that counting a message is an index, not a search; `write` merges them in.
    fast: Vec<Option<Row>>,
    malformed: u64,
    /// VDUSE rows by (request type, response); `u32::MAX`: a response whose request was not seen.
    vduse: BTreeMap<(u32, bool), Row>,
    caps: BTreeMap<u32, (String, String)>,
    messages: u64,
    bytes: u64,
}

impl Stats {
    /// Counts one message (`cmd` `None`: one whose header names no command, counted malformed).
    #[inline]
    pub fn add(&mut self, cmd: Option<Command>, m: Counted) {
        self.messages += 1;
        self.bytes += m.len as u64;
        let Some(cmd) = cmd else {
            self.malformed += 1;
            return;
        };
        self.row(cmd, m);
    }

    /// Counts a message that could not be decoded but whose header names its command and type: in
    /// the malformed total and in its command's row.
    pub fn add_malformed_in(&mut self, cmd: Command, m: Counted) {
        self.messages += 1;
        self.bytes += m.len as u64;
        self.malformed += 1;
        self.row(cmd, m).malformed += 1;
    }

    #[inline]
    fn row(&mut self, cmd: Command, m: Counted) -> &mut Row {
        let Counted {
            direction,
            reply,
            len,
            errno,
            rtt,
        } = m;
        let c2s = direction == Direction::ClientToServer;
        let slot = usize::from(cmd.0) * 4 + usize::from(c2s) * 2 + usize::from(reply);
        let row = if slot < FAST_ROWS {
            if self.fast.is_empty() {
                self.fast.resize_with(FAST_ROWS, || None);
            }
            self.fast[slot].get_or_insert_with(Row::default)
        } else {
            self.rows.entry((cmd.0, c2s, reply)).or_default()
        };
        row.count += 1;
        row.bytes += len as u64;
        if let Some(e) = errno {
            *row.errors.entry(e).or_default() += 1;
        }
        if let Some(r) = rtt {
            row.rtt.record(r);
        }
        row
    }

    /// Counts a VDUSE request (`result` `None`) or response: its request type (for a response, the
    /// type of the request it answers, when seen), its result, its round trip.
    pub fn add_vduse(
        &mut self,
        req_type: Option<u32>,
        result: Option<u32>,
        len: usize,
        rtt: Option<u64>,
    ) {
        self.messages += 1;
        self.bytes += len as u64;
        let row = self
            .vduse
            .entry((req_type.unwrap_or(u32::MAX), result.is_some()))
            .or_default();
        row.count += 1;
        row.bytes += len as u64;
        if let Some(r) = result {
            *row.errors.entry(r).or_default() += 1;
        }
        if let Some(r) = rtt {
            row.rtt.record(r);
        }
    }

    /// Counts a message that could not be decoded.
    pub fn add_malformed(&mut self, len: usize) {
        self.messages += 1;
        self.bytes += len as u64;
        self.malformed += 1;
    }

    /// Records a connection's VERSION JSON (client's proposal or server's reply).
    pub fn add_caps(&mut self, conn: u32, direction: Direction, json: &[u8]) {
        let e = self.caps.entry(conn).or_default();
        let text = String::from_utf8_lossy(json).into_owned();
        match direction {
            Direction::ClientToServer => e.0 = text,
            Direction::ServerToClient => e.1 = text,
        }
    }

    /// Writes the report.
    pub fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}, {}, {} malformed",
            count_of(self.messages, "message", "messages"),
            count_of(self.bytes, "byte", "bytes"),
            self.malformed
        );
        let fast = self.fast.iter().enumerate().filter_map(|(slot, row)| {
            let key = ((slot / 4) as u16, slot & 2 != 0, slot & 1 != 0);
            row.as_ref().map(|row| (key, row))
        });
        // vfio-user's table, unless the input was VDUSE only.
        if self.vduse.is_empty() || fast.clone().next().is_some() || !self.rows.is_empty() {
            table_head(&mut s, "command", "errors");
            // Fast rows have the smaller command numbers, so they come first in key order.
            for ((cmd, c2s, reply), row) in fast.chain(self.rows.iter().map(|(k, r)| (*k, r))) {
                let name = Command(cmd)
                    .short_name()
                    .map_or_else(|| format!("UNKNOWN({cmd})"), str::to_owned);
                let mut errors: Vec<String> = row
                    .errors
                    .iter()
                    .map(|(e, n)| {
                        format!(
                            "{}={n}",
                            errno::name(*e).map_or_else(|| e.to_string(), str::to_owned)
                        )
                    })
                    .collect();
                if row.malformed > 0 {
                    errors.push(format!("malformed={}", row.malformed));
                }
                let kind = if reply { "reply" } else { "cmd" };
                table_row(&mut s, &name, c2s, kind, row, &errors.join(" "));
            }
        }
        if !self.vduse.is_empty() {
            table_head(&mut s, "vduse request", "results");
            for (&(ty, response), row) in &self.vduse {
                let name = match vduse::request_type_name(ty) {
                    Some(n) => n.to_owned(),
                    None if ty == u32::MAX => "(request not seen)".to_owned(),
                    None => format!("UNKNOWN({ty})"),
                };
                let results: Vec<String> = row
                    .errors
                    .iter()
                    .map(|(r, n)| {
                        let name = vduse::RESULT_NAMES
                            .iter()
                            .find(|x| x.value == u64::from(*r))
                            .map_or_else(|| r.to_string(), |x| x.name.to_owned());
                        format!("{name}={n}")
                    })
                    .collect();
                let kind = if response { "resp" } else { "req" };
                table_row(&mut s, &name, !response, kind, row, &results.join(" "));
            }
        }
        if !self.caps.is_empty() {
            s.push_str("negotiated capabilities:\n");
            for (conn, (client, server)) in &self.caps {
                let _ = writeln!(
                    s,
                    "  c{conn} client: {}",
                    if client.is_empty() { "(none)" } else { client }
                );
                let _ = writeln!(
                    s,
                    "  c{conn} server: {}",
                    if server.is_empty() { "(none)" } else { server }
                );
            }
        }
        out.write_all(s.as_bytes())
    }
}

/// The header line of a table.
fn table_head(s: &mut String, what: &str, last: &str) {
    let _ = writeln!(
        s,
        "{:<26} {:<3} {:<5} {:>9} {:>12} {:>9} {:>9} {:>9}  {last}",
        what, "dir", "type", "count", "bytes", "rtt p50", "rtt p99", "rtt max"
    );
}

/// One row: name, direction, type, count, bytes, round-trip p50/p99/max, and the last column.
fn table_row(s: &mut String, name: &str, c2s: bool, kind: &str, row: &Row, last: &str) {
    let (p50, p99, max) = if row.rtt.count() > 0 {
        (
            fmt_duration(row.rtt.quantile(0.5)),
            fmt_duration(row.rtt.quantile(0.99)),
            fmt_duration(row.rtt.max()),
        )
    } else {
        ("-".into(), "-".into(), "-".into())
    };
    let _ = writeln!(
        s,
        "{:<26} {:<3} {:<5} {:>9} {:>12} {:>9} {:>9} {:>9}  {}",
        name,
        if c2s { "c2s" } else { "s2c" },
        kind,
        row.count,
        row.bytes,
        p50,
        p99,
        max,
        last
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_close() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v * 10);
        }
        let p50 = h.quantile(0.5) as f64;
        let p99 = h.quantile(0.99) as f64;
        assert!((p50 - 500_000.0).abs() / 500_000.0 < 0.07, "{p50}");
        assert!((p99 - 990_000.0).abs() / 990_000.0 < 0.07, "{p99}");
        assert_eq!(h.max(), 1_000_000);
        assert_eq!(h.count(), 100_000);
    }

    #[test]
    fn one_sample_is_its_own_p50_and_p99() {
        // 198.3 µs falls in a histogram bucket whose lower bound is 196.6 µs: a row of one must
        // still show 198.3 µs.
        let mut h = Histogram::default();
        h.record(198_300);
        assert_eq!(h.quantile(0.5), 198_300);
        assert_eq!(h.quantile(0.99), 198_300);
        assert_eq!(h.max(), 198_300);
        assert_eq!(h.min(), 198_300);
    }

    #[test]
    fn few_samples_give_nearest_rank_percentiles() {
        let mut h = Histogram::default();
        for v in [500u64, 100, 400, 200, 300] {
            h.record(v * 1000);
        }
        assert_eq!(h.quantile(0.5), 300_000);
        assert_eq!(h.quantile(0.99), 500_000);
        assert_eq!(h.quantile(0.0), 100_000);
    }

    #[test]
    fn many_equal_samples_never_show_a_percentile_below_the_smallest() {
        let mut h = Histogram::default();
        for _ in 0..10_000 {
            h.record(198_300);
        }
        assert_eq!(h.quantile(0.5), 198_300);
        assert_eq!(h.quantile(0.99), 198_300);
        let mut h = Histogram::default();
        for v in 0..10_000u64 {
            h.record(198_300 + v % 3);
        }
        assert!((198_300..=198_302).contains(&h.quantile(0.5)));
    }

    #[test]
    fn histogram_small_values_exact() {
        let mut h = Histogram::default();
        for v in [3u64, 3, 7, 15] {
            h.record(v);
        }
        assert_eq!(h.quantile(0.5), 3);
        assert_eq!(h.quantile(1.0), 15);
    }

    #[test]
    fn report_names_errnos_and_commands() {
        let mut st = Stats::default();
        st.add(
            Some(Command::REGION_READ),
            Counted {
                direction: Direction::ClientToServer,
                reply: false,
                len: 32,
                errno: None,
                rtt: None,
            },
        );
        st.add(
            Some(Command::REGION_READ),
            Counted {
                direction: Direction::ServerToClient,
                reply: true,
                len: 16,
                errno: Some(22),
                rtt: Some(1500),
            },
        );
        let mut out = Vec::new();
        st.write(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("REGION_READ"), "{text}");
        assert!(text.contains("EINVAL=1"), "{text}");
        assert!(text.contains("1.5µs"), "{text}");
        assert!(
            text.starts_with("2 messages, 48 bytes, 0 malformed\n"),
            "{text}"
        );
        let mut one = Stats::default();
        one.add_malformed(1);
        let mut out = Vec::new();
        one.write(&mut out).unwrap();
        assert!(out.starts_with(b"1 message, 1 byte, 1 malformed\n"));
    }
}
