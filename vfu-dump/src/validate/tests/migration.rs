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
