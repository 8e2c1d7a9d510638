//! Unit tests: device features, dirty-page logging and migration.

use super::*;

#[test]
fn feature_operations() {
    let mut s = negotiated(Profile::Spec);
    only(
        &s.c(&feat(
            1,
            feature(16, GET | SET | F_STATE),
            FeatureData::None,
        )),
        "feature-flags",
        20,
    );
    none(&s.c(&feat(
        1,
        feature(16, GET | SET | PROBE | F_STATE),
        FeatureData::None,
    )));
    only(
        &s.c(&feat(1, feature(16, F_STATE), FeatureData::None)),
        "feature-flags",
        20,
    );
    only(
        &s.c(&feat(1, feature(16, SET | F_MIGRATION), FeatureData::None)),
        "feature-flags",
        20,
    );
    only(
        &s.c(&feat(1, feature(16, GET | 3), FeatureData::None)),
        "feature-unknown",
        20,
    );
    only(
        &s.c(&feat(
            1,
            feature(16, GET | 0x80000 | F_MIGRATION),
            FeatureData::None,
        )),
        "flags-reserved",
        20,
    );
    only(
        &s.c(&feat(1, feature(16, SET | F_STATE), FeatureData::None)),
        "feature-data",
        24,
    );
    only(
        &s.c(&feat(1, feature(8, GET | F_MIGRATION), FeatureData::None)),
        "argsz-too-small",
        16,
    );
}

#[test]
fn migration_transitions_follow_the_state_machine() {
    let mut s = negotiated(Profile::Spec);
    // A fresh device is RUNNING, so a destination reaches RESUMING (through STOP) at once.
    none(&set_state(&mut s, 1, 4));
    none(&set_state(&mut s, 2, 1));
    none(&set_state(&mut s, 3, 3)); // STOP -> STOP_COPY
    only(&set_state(&mut s, 4, 6), "mig-transition", 24); // STOP_COPY -> PRE_COPY
    // The illegal SET was answered with success: the state is tracked from the reply (PRE_COPY), so
    // PRE_COPY -> RUNNING is now legal.
    none(&set_state(&mut s, 5, 2));
    // ERROR can never be requested; refused, as it should be.
    only(
        &s.c(&feat(
            6,
            feature(16, SET | F_STATE),
            FeatureData::MigState(&mig_state(0, 0)),
        )),
        "mig-transition",
        24,
    );
    none(&s.s(&enc(
        Header::error_reply(6, Command::DEVICE_FEATURE, 22),
        Body::Error,
    )));
    // A refused SET leaves the state unknown: only what does not depend on it is checked.
    none(&s.c(&feat(
        7,
        feature(16, SET | F_STATE),
        FeatureData::MigState(&mig_state(3, 0)),
    )));
    only(
        &s.s(&enc(
            Header::error_reply(7, Command::DEVICE_FEATURE, 22),
            Body::Error,
        )),
        "request-rejected",
        12,
    );
    s.ok(
        &enc(
            cmd(30, Command::MIG_DATA_WRITE),
            Body::MigData {
                head: &mig_data(24, 16),
                data: &[0; 16],
            },
        ),
        &enc(rep(30, Command::MIG_DATA_WRITE), Body::Empty),
    );
    // A MIG_DEVICE_STATE GET reply says where the device is.
    none(&s.c(&feat(8, feature(16, GET | F_STATE), FeatureData::None)));
    none(&s.s(&feat_rep(
        8,
        feature(16, GET | F_STATE),
        FeatureData::MigState(&mig_state(3, 0)),
    )));
    only(&set_state(&mut s, 9, 6), "mig-transition", 24);
}

#[test]
fn pre_copy_needs_support() {
    let mut s = negotiated(Profile::Spec);
    none(&s.c(&feat(1, feature(16, GET | F_MIGRATION), FeatureData::None)));
    none(&s.s(&feat_rep(
        1,
        feature(16, GET | F_MIGRATION),
        FeatureData::Migration(&FeatureMigration { flags: U64::new(1) }),
    )));
    only(&set_state(&mut s, 2, 6), "mig-transition", 24);
    none(&s.c(&feat(3, feature(16, GET | F_MIGRATION), FeatureData::None)));
    only(
        &s.s(&feat_rep(
            3,
            feature(16, GET | F_MIGRATION),
            FeatureData::Migration(&FeatureMigration { flags: U64::new(4) }),
        )),
        "migration-flags",
        24,
    );
}

#[test]
fn migration_data_only_in_its_states() {
    let mut s = negotiated(Profile::Spec);
    let read = enc(
        cmd(1, Command::MIG_DATA_READ),
        Body::MigData {
            head: &mig_data(72, 64),
            data: &[],
        },
    );
    let write = enc(
        cmd(2, Command::MIG_DATA_WRITE),
        Body::MigData {
            head: &mig_data(24, 16),
            data: &[0; 16],
        },
    );
    only(&s.c(&read), "mig-data-state", 2);
    only(&s.c(&write), "mig-data-state", 2);
    none(&set_state(&mut s, 3, 6));
    none(&s.c(&read));
    only(&s.c(&write), "mig-data-state", 2);
    none(&set_state(&mut s, 4, 1));
    none(&set_state(&mut s, 5, 4));
    none(&s.c(&write));
    only(&s.c(&read), "mig-data-state", 2);
}

#[test]
fn migration_data_read_reply_padding() {
    let req = enc(
        cmd(1, Command::MIG_DATA_READ),
        Body::MigData {
            head: &mig_data(1032, 1024),
            data: &[],
        },
    );
    let reply = exact(
        rep(1, Command::MIG_DATA_READ),
        Body::MigData {
            head: &mig_data(16, 8),
            data: &[1; 8],
        },
        &[0; 1016],
    );
    for (p, want) in [(Profile::Spec, true), (Profile::LibvfioUser, false)] {
        let mut s = negotiated(p);
        none(&set_state(&mut s, 9, 6));
        none(&s.c(&req));
        let f = s.s(&reply);
        if want {
            only(&f, "payload-length", 16 + 16);
        } else {
            none(&f);
        }
    }
}

#[test]
fn data_fd_is_info_and_not_under_libvfio_user() {
    let st = mig_state(1, -1);
    let msg = feat(1, feature(16, SET | F_STATE), FeatureData::MigState(&st));
    let f = negotiated(Profile::Spec).c(&msg);
    only(&f, "mig-state-data-fd", 28);
    assert_eq!(f[0].severity, Severity::Info);
    none(&negotiated(Profile::LibvfioUser).c(&msg));
}

#[test]
fn dma_logging_report_only_after_start() {
    let report = DmaLoggingReport {
        iova: U64::new(0),
        length: U64::new(0x1000),
        page_size: U64::new(0x1000),
    };
    let ask = feat(
        1,
        feature(40, GET | F_LOG_REPORT),
        FeatureData::LoggingReport {
            report: &report,
            bitmap: &[],
        },
    );
    let mut s = negotiated(Profile::Spec);
    only(&s.c(&ask), "logging-not-started", 20);
    s.s(&enc(
        Header::error_reply(1, Command::DEVICE_FEATURE, 22),
        Body::Error,
    ));
    let control = DmaLoggingControl {
        page_size: U64::new(4096),
        ..Default::default()
    };
    let start = FeatureData::LoggingControl {
        control: &control,
        ranges: &[],
    };
    s.ok(
        &feat(2, feature(24, SET | F_LOG_START), start),
        &feat_rep(2, feature(24, SET | F_LOG_START), start),
    );
    none(&s.c(&ask));
    // One page: only bit 0 may be set.
    only(
        &s.s(&feat_rep(
            1,
            feature(40, GET | F_LOG_REPORT),
            FeatureData::LoggingReport {
                report: &report,
                bitmap: &[3, 0, 0, 0, 0, 0, 0, 0],
            },
        )),
        "logging-report-bitmap",
        48,
    );
    let bad = DmaLoggingReport {
        page_size: U64::new(0x1800),
        ..report
    };
    only(
        &s.c(&feat(
            3,
            feature(40, GET | F_LOG_REPORT),
            FeatureData::LoggingReport {
                report: &bad,
                bitmap: &[],
            },
        )),
        "feature-data",
        40,
    );
    let stop = FeatureData::None;
    s.ok(
        &feat(4, feature(8, SET | F_LOG_STOP), stop),
        &feat_rep(4, feature(8, SET | F_LOG_STOP), stop),
    );
    only(&s.c(&ask), "logging-not-started", 20);
}

#[test]
fn reset_leaves_error_for_running() {
    let mut s = negotiated(Profile::Spec);
    none(&s.c(&feat(1, feature(16, GET | F_STATE), FeatureData::None)));
    none(&s.s(&feat_rep(
        1,
        feature(16, GET | F_STATE),
        FeatureData::MigState(&mig_state(0, 0)),
    )));
    only(&set_state(&mut s, 2, 1), "mig-transition", 24);
    s.ok(
        &enc(cmd(3, Command::DEVICE_RESET), Body::Empty),
        &enc(rep(3, Command::DEVICE_RESET), Body::Empty),
    );
    none(&set_state(&mut s, 4, 1));
}

fn logging_start(id: u16, page_size: u64) -> (Vec<u8>, Vec<u8>) {
    let control = DmaLoggingControl {
        page_size: U64::new(page_size),
        ..Default::default()
    };
    let start = FeatureData::LoggingControl {
        control: &control,
        ranges: &[],
    };
    (
        feat(id, feature(24, SET | F_LOG_START), start),
        feat_rep(id, feature(24, SET | F_LOG_START), start),
    )
}

fn logging_report(id: u16, iova: u64, length: u64, page_size: u64) -> Vec<u8> {
    let report = DmaLoggingReport {
        iova: U64::new(iova),
        length: U64::new(length),
        page_size: U64::new(page_size),
    };
    feat(
        id,
        feature(4096, GET | F_LOG_REPORT),
        FeatureData::LoggingReport {
            report: &report,
            bitmap: &[],
        },
    )
}

/// libvfio-user refuses a DMA_LOGGING_START with another page size while logging runs (EINVAL); the
/// same page size again is a no-op. The spec says nothing of it.
#[test]
fn libvfio_user_refuses_a_second_start_with_another_page_size() {
    let mut s = negotiated(Profile::LibvfioUser);
    let (start, ok) = logging_start(1, 4096);
    s.ok(&start, &ok);
    let (again, again_ok) = logging_start(2, 4096);
    s.ok(&again, &again_ok);
    let (other, _) = logging_start(3, 8192);
    let f = s.c(&other);
    only(&f, "logging-start-page-size", 24);
    assert!(f[0].message.contains("0x1000"), "{f:#?}");
    // Its EINVAL is the expected answer, and logging goes on at 4 KiB.
    none(&s.s(&enc(
        Header::error_reply(3, Command::DEVICE_FEATURE, 22),
        Body::Error,
    )));
    only(&s.c(&other), "logging-start-page-size", 24);
    // Pipelined behind a STOP it is fine: logging is off by then.
    let stop = FeatureData::None;
    none(&s.c(&feat(4, feature(8, SET | F_LOG_STOP), stop)));
    none(&s.c(&other));
    for p in [Profile::Spec, Profile::Qemu] {
        let mut s = negotiated(p);
        s.ok(&start, &ok);
        none(&s.c(&other));
    }
}

/// libvfio-user reports dirty pages for one fd-backed DMA window, from its base (shorter than the
/// window is fine), at least one page long; windows a DMA_UNMAP removed are gone for it too.
#[test]
fn libvfio_user_logging_report_ranges() {
    let mapped = |p: Profile| {
        let mut s = negotiated(p);
        for (id, addr, fds) in [(1, 0x10000, 1), (2, 0x20000, 0), (3, 0x24000, 1)] {
            let m = enc(
                cmd(id, Command::DMA_MAP),
                Body::DmaMap(&DmaMap::new(3, 0, addr, 0x4000)),
            );
            none(&s.cf(&m, fds));
            none(&s.s(&enc(rep(id, Command::DMA_MAP), Body::Empty)));
        }
        let (start, ok) = logging_start(4, 4096);
        s.ok(&start, &ok);
        s
    };
    let cases: [(u64, u64, u64, Option<usize>); 8] = [
        (0x10000, 0x4000, 0x1000, None),     // the whole window
        (0x10000, 0x1000, 0x1000, None),     // from its base, shorter
        (0x11000, 0x1000, 0x1000, Some(24)), // not from its base: ENOTSUP
        (0x10000, 0x8000, 0x1000, Some(32)), // leaves it
        (0x30000, 0x1000, 0x1000, Some(24)), // no window: ENOENT
        (0x20000, 0x1000, 0x1000, Some(24)), // a window without an fd: EINVAL
        (0x20000, 0x8000, 0x1000, Some(32)), // over two adjacent windows
        (0x24000, 0x800, 0x1000, Some(32)),  // below page_size: EINVAL
    ];
    let mut s = mapped(Profile::LibvfioUser);
    for (n, &(iova, len, pg, at)) in cases.iter().enumerate() {
        let f = s.c(&logging_report(10 + n as u16, iova, len, pg));
        match at {
            None => none(&f),
            Some(at) => {
                only(&f, "logging-report-range", at);
                // A refusal of it is expected.
                none(&s.s(&enc(
                    Header::error_reply(10 + n as u16, Command::DEVICE_FEATURE, 22),
                    Body::Error,
                )));
            }
        }
    }
    // Below the page size logging runs at, too.
    let mut t = negotiated(Profile::LibvfioUser);
    let m = enc(
        cmd(1, Command::DMA_MAP),
        Body::DmaMap(&DmaMap::new(3, 0, 0x10000, 0x10000)),
    );
    none(&t.cf(&m, 1));
    let (start, ok) = logging_start(2, 0x4000);
    t.ok(&start, &ok);
    only(
        &t.c(&logging_report(3, 0x10000, 0x2000, 0x1000)),
        "logging-report-range",
        32,
    );
    // An unmap sent before the report takes its window away, answered or not.
    let um = enc(
        cmd(30, Command::DMA_UNMAP),
        Body::DmaUnmap {
            unmap: &unmap(24, 0, 0x10000, 0x4000),
            bitmap: None,
            data: &[],
        },
    );
    none(&s.c(&um));
    only(
        &s.c(&logging_report(31, 0x10000, 0x1000, 0x1000)),
        "logging-report-range",
        24,
    );
    // None of it is a rule of the spec.
    let mut s = mapped(Profile::Spec);
    for (n, &(iova, len, pg, _)) in cases.iter().enumerate() {
        none(&s.c(&logging_report(10 + n as u16, iova, len, pg)));
    }
}
