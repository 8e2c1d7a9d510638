//! Device features and migration: DEVICE_FEATURE (migration state, dirty-page logging),
//! MIG_DATA_READ/WRITE, and DEVICE_RESET's effect on the migration state.

use vfu_codec::vfio::dma::dirty_bitmap_bytes;
use vfu_codec::vfio::feature::{
    DeviceFeature, MigData, VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
    VFIO_DEVICE_FEATURE_DMA_LOGGING_START, VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP,
    VFIO_DEVICE_FEATURE_GET, VFIO_DEVICE_FEATURE_MASK, VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
    VFIO_DEVICE_FEATURE_MIGRATION, VFIO_DEVICE_FEATURE_PROBE, VFIO_DEVICE_FEATURE_SET,
    VFIO_MIGRATION_P2P, VFIO_MIGRATION_PRE_COPY, VFIO_MIGRATION_STOP_COPY,
};
use vfu_codec::vfio::migration::{
    MigState, Support, allows_mig_data_read, allows_mig_data_write, transition,
};
use vfu_codec::{Command, FeatureData, HEADER_SIZE};

use crate::validate::finding::Sink;
use crate::validate::rules::Rule;
use crate::validate::types::{Event, Profile};

use super::state::Op;
use super::{Conn, Ctx, FeatureReq};

/// The feature's name (no allocation: called for every DEVICE_FEATURE).
fn feature_name(f: u16) -> &'static str {
    match f {
        VFIO_DEVICE_FEATURE_MIGRATION => "MIGRATION",
        VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE => "MIG_DEVICE_STATE",
        VFIO_DEVICE_FEATURE_DMA_LOGGING_START => "DMA_LOGGING_START",
        VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP => "DMA_LOGGING_STOP",
        VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT => "DMA_LOGGING_REPORT",
        _ => "(unknown feature)",
    }
}

fn ops_label(ops: u32) -> String {
    let mut s = String::new();
    for (bit, name) in [
        (VFIO_DEVICE_FEATURE_GET, "GET"),
        (VFIO_DEVICE_FEATURE_SET, "SET"),
        (VFIO_DEVICE_FEATURE_PROBE, "PROBE"),
    ] {
        if ops & bit != 0 {
            if !s.is_empty() {
                s.push('|');
            }
            s.push_str(name);
        }
    }
    if s.is_empty() { "none".into() } else { s }
}

impl Conn {
    pub(super) fn support(&self) -> Support {
        self.support.unwrap_or(Support {
            pre_copy: true,
            p2p: false,
        })
    }

    pub(super) fn req_feature(
        &mut self,
        p: Profile,
        h: &DeviceFeature,
        data: FeatureData<'_>,
        ev: &Event<'_>,
        sink: &mut Sink<'_>,
    ) -> Ctx {
        let (argsz, flags) = (h.argsz.get(), h.flags.get());
        let feature = h.feature();
        let ops_mask =
            VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_PROBE;
        let ops = flags & ops_mask;
        let (get, set, probe) = (h.is_get(), h.is_set(), h.is_probe());
        let name = feature_name(feature);
        let payload = (ev.bytes.len() - HEADER_SIZE) as u32;
        let undefined = flags & !(VFIO_DEVICE_FEATURE_MASK | ops_mask);
        if undefined != 0 {
            sink.emit(
                Rule::FlagsReserved,
                20,
                format_args!(
                    "DEVICE_FEATURE flags {flags:#x} set the undefined bits {undefined:#x}"
                ),
            );
        }
        let allowed = match feature {
            VFIO_DEVICE_FEATURE_MIGRATION | VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT => {
                Some(VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_PROBE)
            }
            VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE => Some(ops_mask),
            VFIO_DEVICE_FEATURE_DMA_LOGGING_START | VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP => {
                Some(VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_PROBE)
            }
            _ => None,
        };
        if ops == 0 {
            sink.emit(
                Rule::FeatureFlags,
                20,
                format_args!("DEVICE_FEATURE {name} names none of GET, SET and PROBE"),
            );
        } else if get && set && !probe {
            sink.emit(
                Rule::FeatureFlags,
                20,
                format_args!("DEVICE_FEATURE {name} sets both GET and SET without PROBE"),
            );
        } else if let Some(a) = allowed.filter(|a| ops & !a != 0) {
            sink.emit(
                Rule::FeatureFlags,
                20,
                format_args!(
                    "DEVICE_FEATURE {name} asks for {}; the feature has only {}",
                    ops_label(ops),
                    ops_label(a)
                ),
            );
        }
        if allowed.is_none() {
            sink.emit(
                Rule::FeatureUnknown,
                20,
                format_args!(
                    "DEVICE_FEATURE {feature} is not one of the five features vfio-user defines"
                ),
            );
        }

        let mut state = None;
        let mut start = None;
        let mut report = None;
        // The feature's data is checked only for a valid GET or SET.
        let ops_ok = ops != 0 && !(get && set) && allowed.is_some_and(|a| ops & !a == 0);
        let op = ops_ok && !probe;
        match feature {
            VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE if op && set => match data {
                FeatureData::MigState(s) => {
                    let to = MigState(s.device_state.get());
                    state = Some(to.0);
                    let support = self.support();
                    let result = match self.now.mig {
                        Some(from) => transition(from, to, support).map(|_| ()),
                        // Current state unknown: only what does not depend on it.
                        None => transition(to, to, support).map(|_| ()),
                    };
                    if let Err(e) = result {
                        let from = self
                            .now
                            .mig
                            .map_or("an unknown state".into(), |s| s.to_string());
                        sink.emit(
                            Rule::MigTransition,
                            24,
                            format_args!(
                                "MIG_DEVICE_STATE SET from {from} to {to} is not allowed: {e} ({})",
                                e.id()
                            ),
                        );
                    }
                    if p != Profile::LibvfioUser && s.data_fd.get() != 0 {
                        sink.emit(
                            Rule::MigStateDataFd,
                            28,
                            format_args!(
                                "MIG_DEVICE_STATE SET has data_fd {}; it is unused and should be 0",
                                s.data_fd.get()
                            ),
                        );
                    }
                }
                _ => sink.emit(
                    Rule::FeatureData,
                    24,
                    format_args!("MIG_DEVICE_STATE SET carries no device_state"),
                ),
            },
            VFIO_DEVICE_FEATURE_DMA_LOGGING_START if op && set => match data {
                FeatureData::LoggingControl { control, .. } => {
                    let pg = control.page_size.get();
                    start = Some(pg);
                    if p == Profile::LibvfioUser
                        && let Some(q) = self.now.logging.filter(|&q| q != pg)
                    {
                        sink.emit(
                            Rule::LoggingStartPageSize,
                            24,
                            format_args!(
                                "DMA_LOGGING_START page_size {pg:#x} while logging runs with page_size {q:#x}; libvfio-user refuses it with EINVAL"
                            ),
                        );
                    }
                    if !pg.is_power_of_two() {
                        sink.emit(
                            Rule::FeatureData,
                            24,
                            format_args!(
                                "DMA_LOGGING_START page_size {pg:#x} is not a power of two"
                            ),
                        );
                    }
                    if control.reserved.get() != 0 {
                        sink.emit(
                            Rule::RequestFieldNonzero,
                            36,
                            format_args!(
                                "DMA_LOGGING_START reserved word is {:#x}; it must be 0",
                                control.reserved.get()
                            ),
                        );
                    }
                }
                _ => sink.emit(
                    Rule::FeatureData,
                    24,
                    format_args!("DMA_LOGGING_START carries no control block"),
                ),
            },
            VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT if op && get => {
                if self.now.logging.is_none() {
                    sink.emit(
                        Rule::LoggingNotStarted,
                        20,
                        format_args!("DMA_LOGGING_REPORT while dirty-page logging is not started"),
                    );
                }
                match data {
                    FeatureData::LoggingReport { report: r, .. } => {
                        let (iova, len, pg) = (r.iova.get(), r.length.get(), r.page_size.get());
                        report = Some((iova, len, pg));
                        if !pg.is_power_of_two() {
                            sink.emit(
                                Rule::FeatureData,
                                40,
                                format_args!(
                                    "DMA_LOGGING_REPORT page_size {pg:#x} is not a power of two"
                                ),
                            );
                        } else if len == 0 {
                            sink.emit(
                                Rule::FeatureData,
                                32,
                                format_args!("DMA_LOGGING_REPORT length is 0"),
                            );
                        } else {
                            let bitmap = dirty_bitmap_bytes(len, pg).unwrap_or(u64::MAX);
                            let need = 32u64.saturating_add(bitmap);
                            if u64::from(argsz) < need {
                                sink.emit(
                                    Rule::ArgszTooSmall,
                                    16,
                                    format_args!(
                                        "DMA_LOGGING_REPORT argsz is {argsz}; the reply with its {bitmap}-byte bitmap needs {need}"
                                    ),
                                );
                            }
                            if p == Profile::LibvfioUser {
                                self.lvu_report_range(iova, len, pg, sink);
                            }
                        }
                    }
                    _ => sink.emit(
                        Rule::FeatureData,
                        24,
                        format_args!("DMA_LOGGING_REPORT carries no iova, length and page_size"),
                    ),
                }
            }
            VFIO_DEVICE_FEATURE_MIGRATION | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE
                if op && get && !set =>
            {
                if payload > 8 {
                    sink.emit(
                        Rule::PayloadLength,
                        24,
                        format_args!(
                            "a {name} GET request carries {} bytes of data; it has none",
                            payload - 8
                        ),
                    );
                }
                if argsz < 16 {
                    sink.emit(
                        Rule::ArgszTooSmall,
                        16,
                        format_args!("{name} GET argsz is {argsz}; the reply needs 16"),
                    );
                }
            }
            _ => {}
        }
        if (set || probe) && argsz < payload {
            sink.emit(
                Rule::ArgszTooSmall,
                16,
                format_args!(
                    "DEVICE_FEATURE {name} {} argsz is {argsz}; the reply repeats the {payload}-byte request",
                    ops_label(ops)
                ),
            );
        }
        Ctx::Feature(FeatureReq {
            argsz,
            flags,
            payload,
            state,
            start,
            report,
        })
    }

    /// libvfio-user's requirements on a DMA_LOGGING_REPORT range (`dma_controller_dirty_page_get`): at
    /// least one page of the request's and of the logging's page size, and from the base of one DMA
    /// window mapped with an fd, inside it. A range shorter than its window is accepted.
    fn lvu_report_range(&self, iova: u64, len: u64, pg: u64, sink: &mut Sink<'_>) {
        let logging = self.now.logging.unwrap_or(0);
        if len < pg.max(logging) {
            let (what, min) = if len < pg {
                ("page_size", pg)
            } else {
                ("the logging page size", logging)
            };
            sink.emit(
                Rule::LoggingReportRange,
                32,
                format_args!(
                    "DMA_LOGGING_REPORT length {len:#x} is below {what} {min:#x}; libvfio-user refuses it with EINVAL"
                ),
            );
        }
        let i = self.now.windows.partition_point(|w| w.end <= iova);
        let (at, why) = match self.now.windows.get(i).filter(|w| w.addr <= iova) {
            None => (24, "no DMA window holds it; libvfio-user answers ENOENT"),
            Some(w) if w.addr != iova => (
                24,
                "it starts inside a DMA window, not at its base; libvfio-user answers ENOTSUP",
            ),
            Some(w) if iova.checked_add(len).is_none_or(|end| end > w.end) => (
                32,
                "it leaves the DMA window it starts; libvfio-user reports on one window only",
            ),
            Some(w) if !w.fd => (
                24,
                "its DMA window was mapped without an fd; libvfio-user answers EINVAL",
            ),
            Some(_) => return,
        };
        let w = self.now.windows.get(i).filter(|w| w.addr <= iova);
        match w {
            Some(w) => sink.emit(
                Rule::LoggingReportRange,
                at,
                format_args!(
                    "DMA_LOGGING_REPORT [{iova:#x}, +{len:#x}): {why} ([{:#x}, {:#x}), mapped by message {})",
                    w.addr, w.end, w.index
                ),
            ),
            None => sink.emit(
                Rule::LoggingReportRange,
                at,
                format_args!("DMA_LOGGING_REPORT [{iova:#x}, +{len:#x}): {why}"),
            ),
        }
    }

    /// What a DEVICE_FEATURE command does to the state: a valid SET of the migration state or of
    /// dirty-page logging, or a GET of the migration state (whose reply tells it).
    pub(super) fn feature_op(f: &FeatureReq) -> Option<Op> {
        let feature = (f.flags & VFIO_DEVICE_FEATURE_MASK) as u16;
        let ops = f.flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET);
        if f.flags & VFIO_DEVICE_FEATURE_PROBE != 0 {
            return None;
        }
        match (feature, ops) {
            (VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, VFIO_DEVICE_FEATURE_SET) => {
                f.state.map(|s| Op::MigSet(MigState(s)))
            }
            (VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, VFIO_DEVICE_FEATURE_GET) => {
                Some(Op::MigSeen(None))
            }
            (VFIO_DEVICE_FEATURE_DMA_LOGGING_START, VFIO_DEVICE_FEATURE_SET) => {
                f.start.map(Op::LogStart)
            }
            (VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, VFIO_DEVICE_FEATURE_SET) => Some(Op::LogStop),
            _ => None,
        }
    }

    pub(super) fn req_mig_data(
        &mut self,
        p: Profile,
        cmd: Command,
        h: &MigData,
        sink: &mut Sink<'_>,
    ) -> Ctx {
        let (argsz, size) = (h.argsz.get(), h.size.get());
        let read = cmd == Command::MIG_DATA_READ;
        if let Some(s) = self.now.mig {
            let ok = if read {
                allows_mig_data_read(s)
            } else {
                allows_mig_data_write(s)
            };
            if !ok {
                let valid = if read {
                    "PRE_COPY and STOP_COPY"
                } else {
                    "RESUMING"
                };
                sink.emit(
                    Rule::MigDataState,
                    2,
                    format_args!("{cmd} in migration state {s}; it is valid only in {valid}"),
                );
            }
        }
        let need = 8 + u64::from(size);
        if (read || p == Profile::LibvfioUser) && u64::from(argsz) < need {
            sink.emit(
                Rule::ArgszTooSmall,
                16,
                format_args!("{cmd} argsz is {argsz}; size {size} needs {need}"),
            );
        }
        let (max, whose) = if read || p == Profile::LibvfioUser {
            (self.client_max_xfer(), "client")
        } else {
            (self.server_max_xfer(), "server")
        };
        if u64::from(size) > max {
            sink.emit(
                Rule::XferSizeOverMax,
                20,
                format_args!("{cmd} size {size} exceeds the {whose}'s max_data_xfer_size {max}"),
            );
        }
        Ctx::MigData { argsz, size }
    }

    pub(super) fn reply_feature(
        &mut self,
        head: &DeviceFeature,
        data: FeatureData<'_>,
        req: FeatureReq,
        payload: usize,
        sink: &mut Sink<'_>,
    ) -> Option<Op> {
        let FeatureReq {
            argsz,
            flags,
            payload: req_payload,
            state,
            report,
            ..
        } = req;
        let name = feature_name(head.feature());
        if head.flags.get() != flags {
            sink.emit(
                Rule::ReplyEchoMismatch,
                20,
                format_args!(
                    "the DEVICE_FEATURE reply has flags {:#x}; the request had {flags:#x}",
                    head.flags.get()
                ),
            );
            return None;
        }
        let probe = flags & VFIO_DEVICE_FEATURE_PROBE != 0;
        let get = flags & VFIO_DEVICE_FEATURE_GET != 0;
        let set = flags & VFIO_DEVICE_FEATURE_SET != 0;
        if get && !probe {
            self.reply_argsz(head.argsz.get(), payload, Command::DEVICE_FEATURE, sink);
            match data {
                FeatureData::Migration(m) => {
                    let f = m.flags.get();
                    if f & VFIO_MIGRATION_STOP_COPY == 0 || f & VFIO_MIGRATION_P2P != 0 {
                        sink.emit(
                            Rule::MigrationFlags,
                            24,
                            format_args!(
                                "MIGRATION flags are {f:#x}; STOP_COPY (1) is required and P2P (2) is not used by vfio-user"
                            ),
                        );
                    }
                    self.support = Some(Support {
                        pre_copy: f & VFIO_MIGRATION_PRE_COPY != 0,
                        p2p: false,
                    });
                }
                FeatureData::MigState(s) => {
                    return Some(Op::MigSeen(Some(MigState(s.device_state.get()))));
                }
                FeatureData::LoggingReport { report: r, bitmap } => {
                    if let Some((iova, len, pg)) = report {
                        if (r.iova.get(), r.length.get(), r.page_size.get()) != (iova, len, pg) {
                            sink.emit(
                                Rule::ReplyEchoMismatch,
                                24,
                                format_args!("the DMA_LOGGING_REPORT reply does not echo iova, length and page_size"),
                            );
                        }
                        if let Some(pages) = len.checked_div(pg).map(|_| len.div_ceil(pg)) {
                            let first_extra = pages;
                            let bits = (bitmap.len() as u64) * 8;
                            let stray = (first_extra..bits)
                                .find(|&b| bitmap[(b / 8) as usize] & (1 << (b % 8)) != 0);
                            if let Some(b) = stray {
                                sink.emit(
                                    Rule::LoggingReportBitmap,
                                    HEADER_SIZE + 32 + (b / 8) as usize,
                                    format_args!("bitmap bit {b} is set, but the range has only {pages} pages"),
                                );
                            }
                        }
                    }
                }
                _ => {}
            }
        } else {
            // SET and PROBE: the reply repeats the request.
            if head.argsz.get() != argsz || payload != req_payload as usize {
                sink.emit(
                    Rule::ReplyEchoMismatch,
                    16,
                    format_args!(
                        "the DEVICE_FEATURE {name} reply has argsz {} and {payload} payload bytes; the request had {argsz} and {req_payload}",
                        head.argsz.get()
                    ),
                );
            }
            if set
                && !probe
                && head.feature() == VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE
                && let Some(to) = state
                && let FeatureData::MigState(s) = data
                && s.device_state.get() != to
            {
                sink.emit(
                    Rule::ReplyEchoMismatch,
                    24,
                    format_args!(
                        "the MIG_DEVICE_STATE SET reply says state {}; the request asked for {}",
                        MigState(s.device_state.get()),
                        MigState(to)
                    ),
                );
            }
        }
        None
    }

    /// A MIG_DATA_READ reply to a request for `size` bytes; returns how many of the reply's `extra`
    /// bytes after its layout are still unexplained.
    pub(super) fn reply_mig_data_read(
        p: Profile,
        head: &MigData,
        data: &[u8],
        size: u32,
        extra: usize,
        sink: &mut Sink<'_>,
    ) -> usize {
        let got = head.size.get();
        if got > size {
            sink.emit(
                Rule::ReplyEchoMismatch,
                20,
                format_args!(
                    "the MIG_DATA_READ reply returns {got} bytes; the request asked for {size}"
                ),
            );
        }
        if u64::from(head.argsz.get()) != 8 + u64::from(got) {
            sink.emit(
                Rule::ArgszMismatch,
                16,
                format_args!(
                    "the MIG_DATA_READ reply argsz is {}; with size {got} it must be {}",
                    head.argsz.get(),
                    8 + u64::from(got)
                ),
            );
        }
        // libvfio-user pads the reply to the requested size.
        if p == Profile::LibvfioUser && 8 + data.len() + extra <= 8 + size as usize {
            0
        } else {
            extra
        }
    }
}
