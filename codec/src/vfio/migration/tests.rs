//! The migration state machine's tests: the direct arcs with and without PRE_COPY and P2P, every cell of
//! §3's combined-transitions table, and that every path is well formed.

// In tests a panic is the failure report, and every input is a constant.
#![allow(clippy::unwrap_used)]

extern crate std;

use std::format;
use std::string::ToString;
use std::vec::Vec;

use super::*;

const ERROR: MigState = MigState::ERROR;
const STOP: MigState = MigState::STOP;
const RUNNING: MigState = MigState::RUNNING;
const STOP_COPY: MigState = MigState::STOP_COPY;
const RESUMING: MigState = MigState::RESUMING;
const RUNNING_P2P: MigState = MigState::RUNNING_P2P;
const PRE_COPY: MigState = MigState::PRE_COPY;
const PRE_COPY_P2P: MigState = MigState::PRE_COPY_P2P;

/// vfio-user with PRE_COPY, as libvfio-user advertises (STOP_COPY | PRE_COPY).
const VFU: Support = Support {
    pre_copy: true,
    p2p: false,
};
/// vfio-user without PRE_COPY (STOP_COPY only).
const VFU_NO_PRE: Support = Support {
    pre_copy: false,
    p2p: false,
};
/// The kernel with everything.
const KERNEL: Support = Support {
    pre_copy: true,
    p2p: true,
};
/// The kernel with P2P but no PRE_COPY.
const KERNEL_NO_PRE: Support = Support {
    pre_copy: false,
    p2p: true,
};
const ALL_SUPPORT: [Support; 4] = [VFU, VFU_NO_PRE, KERNEL, KERNEL_NO_PRE];

fn arcs(support: Support) -> Vec<(MigState, MigState)> {
    let mut v = Vec::new();
    for from in MigState::ALL {
        for to in MigState::ALL {
            if direct_arc(from, to, support) {
                v.push((from, to));
            }
        }
    }
    v
}

fn sorted(arcs: &[(MigState, MigState)]) -> Vec<(MigState, MigState)> {
    let mut v = arcs.to_vec();
    v.sort();
    v
}

#[test]
fn names_and_printing() {
    assert_eq!(MigState::ALL.len(), MIG_STATE_NAMES.len());
    for (s, n) in MigState::ALL.iter().zip(MIG_STATE_NAMES) {
        assert_eq!(u64::from(s.0), n.value);
        assert_eq!(s.name(), Some(n.name));
        assert!(s.is_known());
    }
    assert_eq!(format!("{:?}", STOP_COPY), "STOP_COPY (3)");
    assert_eq!(format!("{}", STOP_COPY), "STOP_COPY");
    assert_eq!(format!("{:?}", MigState(8)), "MigState(8)");
    assert_eq!(format!("{}", MigState(0xffff_ffff)), "UNKNOWN(4294967295)");
    assert_eq!(MigState(8).name(), None);
    assert!(!MigState(8).is_known());
    assert_eq!(MigState::from(2), RUNNING);
    assert_eq!(u32::from(PRE_COPY_P2P), 7);
    assert!(RUNNING_P2P.is_p2p() && PRE_COPY_P2P.is_p2p() && !PRE_COPY.is_p2p());
}

#[test]
fn support_from_flags() {
    assert_eq!(Support::from_migration_flags(1), VFU_NO_PRE);
    assert_eq!(Support::from_migration_flags(1 | 4), VFU);
    assert_eq!(Support::from_migration_flags(1 | 2), KERNEL_NO_PRE);
    assert_eq!(Support::from_migration_flags(1 | 2 | 4), KERNEL);
    assert_eq!(Support::from_migration_flags(0), Support::default());
    assert_eq!(Support::from_migration_flags(!(2 | 4)), Support::default());

    for s in [ERROR, STOP, RUNNING, STOP_COPY, RESUMING] {
        assert!(ALL_SUPPORT.iter().all(|sup| sup.supports(s)));
    }
    assert!(VFU.supports(PRE_COPY) && !VFU_NO_PRE.supports(PRE_COPY));
    assert!(!VFU.supports(RUNNING_P2P) && !VFU.supports(PRE_COPY_P2P));
    assert!(KERNEL_NO_PRE.supports(RUNNING_P2P) && !KERNEL_NO_PRE.supports(PRE_COPY_P2P));
    assert!(KERNEL.supports(PRE_COPY_P2P));
    assert!(!KERNEL.supports(MigState(8)));
}

#[test]
fn vfio_user_nine_arcs() {
    let nine = [
        (RUNNING, STOP),
        (STOP_COPY, STOP),
        (RESUMING, STOP),
        (PRE_COPY, RUNNING),
        (STOP, RUNNING),
        (RUNNING, PRE_COPY),
        (STOP, STOP_COPY),
        (PRE_COPY, STOP_COPY),
        (STOP, RESUMING),
    ];
    assert_eq!(arcs(VFU), sorted(&nine));
    assert_eq!(sorted(DIRECT_ARCS), sorted(&nine));
}

#[test]
fn vfio_user_arcs_without_pre_copy() {
    let six = [
        (RUNNING, STOP),
        (STOP_COPY, STOP),
        (RESUMING, STOP),
        (STOP, RUNNING),
        (STOP, STOP_COPY),
        (STOP, RESUMING),
    ];
    assert_eq!(arcs(VFU_NO_PRE), sorted(&six));
}

#[test]
fn kernel_fifteen_arcs() {
    let fifteen = [
        (PRE_COPY, PRE_COPY_P2P),
        (PRE_COPY, RUNNING),
        (PRE_COPY_P2P, PRE_COPY),
        (PRE_COPY_P2P, RUNNING_P2P),
        (PRE_COPY_P2P, STOP_COPY),
        (RESUMING, STOP),
        (RUNNING, PRE_COPY),
        (RUNNING, RUNNING_P2P),
        (RUNNING_P2P, PRE_COPY_P2P),
        (RUNNING_P2P, RUNNING),
        (RUNNING_P2P, STOP),
        (STOP, RESUMING),
        (STOP, RUNNING_P2P),
        (STOP, STOP_COPY),
        (STOP_COPY, STOP),
    ];
    assert_eq!(arcs(KERNEL), sorted(&fifteen));
    assert_eq!(sorted(DIRECT_ARCS_P2P), sorted(&fifteen));
    // With P2P, RUNNING and STOP are no longer adjacent.
    assert!(!direct_arc(RUNNING, STOP, KERNEL));
    assert!(!direct_arc(STOP, RUNNING, KERNEL));
    assert!(!direct_arc(PRE_COPY, STOP_COPY, KERNEL));
}

#[test]
fn kernel_arcs_without_pre_copy() {
    let eight = [
        (RESUMING, STOP),
        (RUNNING, RUNNING_P2P),
        (RUNNING_P2P, RUNNING),
        (RUNNING_P2P, STOP),
        (STOP, RESUMING),
        (STOP, RUNNING_P2P),
        (STOP, STOP_COPY),
        (STOP_COPY, STOP),
    ];
    assert_eq!(arcs(KERNEL_NO_PRE), sorted(&eight));
}

#[test]
fn no_arcs_touch_error_or_unknown() {
    for sup in ALL_SUPPORT {
        for s in MigState::ALL
            .iter()
            .copied()
            .chain([MigState(8), MigState(99)])
        {
            assert!(!direct_arc(ERROR, s, sup));
            assert!(!direct_arc(s, ERROR, sup));
            assert!(!direct_arc(MigState(8), s, sup));
            assert!(!direct_arc(s, MigState(8), sup));
        }
    }
}

/// Every cell of §3's "Combined transitions" table, with PRE_COPY supported.
#[test]
fn combined_transitions_table() {
    type Cell = Result<&'static [MigState], TransitionError>;
    let cols = [STOP, RUNNING, STOP_COPY, RESUMING, PRE_COPY];
    let table: [(MigState, [Cell; 5]); 5] = [
        (
            STOP,
            [
                Ok(&[]),
                Ok(&[RUNNING]),
                Ok(&[STOP_COPY]),
                Ok(&[RESUMING]),
                Ok(&[RUNNING, PRE_COPY]),
            ],
        ),
        (
            RUNNING,
            [
                Ok(&[STOP]),
                Ok(&[]),
                Ok(&[STOP, STOP_COPY]),
                Ok(&[STOP, RESUMING]),
                Ok(&[PRE_COPY]),
            ],
        ),
        (
            STOP_COPY,
            [
                Ok(&[STOP]),
                Ok(&[STOP, RUNNING]),
                Ok(&[]),
                Ok(&[STOP, RESUMING]),
                Err(TransitionError::StopCopyToPreCopy(PRE_COPY)),
            ],
        ),
        (
            RESUMING,
            [
                Ok(&[STOP]),
                Ok(&[STOP, RUNNING]),
                Ok(&[STOP, STOP_COPY]),
                Ok(&[]),
                Ok(&[STOP, RUNNING, PRE_COPY]),
            ],
        ),
        (
            PRE_COPY,
            [
                Ok(&[RUNNING, STOP]),
                Ok(&[RUNNING]),
                Ok(&[STOP_COPY]),
                Ok(&[RUNNING, STOP, RESUMING]),
                Ok(&[]),
            ],
        ),
    ];
    for (from, row) in table {
        for (to, want) in cols.into_iter().zip(row) {
            let got = transition(from, to, VFU);
            match (got, want) {
                (Ok(p), Ok(w)) => assert_eq!(p, w, "{from} -> {to}"),
                (g, w) => assert_eq!(g.map(|_| ()), w.map(|_| ()), "{from} -> {to}"),
            }
        }
    }
}

#[test]
fn without_pre_copy() {
    // The 4×4 part of the table is unchanged.
    let four = [STOP, RUNNING, STOP_COPY, RESUMING];
    for from in four {
        for to in four {
            assert_eq!(
                transition(from, to, VFU_NO_PRE),
                transition(from, to, VFU),
                "{from} -> {to}"
            );
        }
    }
    assert_eq!(transition(STOP, RUNNING, VFU_NO_PRE).unwrap(), [RUNNING]);
    assert!(transition(STOP, RUNNING, VFU_NO_PRE).unwrap().is_direct());
    assert_eq!(
        transition(RUNNING, PRE_COPY, VFU_NO_PRE),
        Err(TransitionError::Unsupported(PRE_COPY))
    );
    assert_eq!(
        transition(PRE_COPY, RUNNING, VFU_NO_PRE),
        Err(TransitionError::Unsupported(PRE_COPY))
    );
    assert_eq!(
        transition(PRE_COPY, PRE_COPY, VFU_NO_PRE),
        Err(TransitionError::Unsupported(PRE_COPY))
    );
}

#[test]
fn kernel_combined_transitions() {
    let cases: [(MigState, MigState, &[MigState]); 12] = [
        (RUNNING, STOP, &[RUNNING_P2P, STOP]),
        (STOP, RUNNING, &[RUNNING_P2P, RUNNING]),
        (RUNNING, STOP_COPY, &[RUNNING_P2P, STOP, STOP_COPY]),
        (RUNNING, RESUMING, &[RUNNING_P2P, STOP, RESUMING]),
        (STOP, PRE_COPY, &[RUNNING_P2P, RUNNING, PRE_COPY]),
        (STOP, PRE_COPY_P2P, &[RUNNING_P2P, PRE_COPY_P2P]),
        (RUNNING, PRE_COPY_P2P, &[RUNNING_P2P, PRE_COPY_P2P]),
        // The data session stays open: PRE_COPY_P2P is interior but the whole path saves.
        (PRE_COPY, STOP_COPY, &[PRE_COPY_P2P, STOP_COPY]),
        (PRE_COPY, STOP, &[RUNNING, RUNNING_P2P, STOP]),
        (PRE_COPY_P2P, RUNNING, &[RUNNING_P2P, RUNNING]),
        (PRE_COPY, RESUMING, &[RUNNING, RUNNING_P2P, STOP, RESUMING]),
        (RESUMING, PRE_COPY, &[STOP, RUNNING_P2P, RUNNING, PRE_COPY]),
    ];
    for (from, to, want) in cases {
        assert_eq!(
            transition(from, to, KERNEL).unwrap(),
            want,
            "{from} -> {to}"
        );
    }
    assert_eq!(
        transition(STOP_COPY, PRE_COPY_P2P, KERNEL),
        Err(TransitionError::StopCopyToPreCopy(PRE_COPY_P2P))
    );
    assert_eq!(
        transition(RUNNING, STOP, KERNEL_NO_PRE).unwrap(),
        [RUNNING_P2P, STOP]
    );
}

/// The P2P states only refine the vfio-user paths: dropping them from a kernel path gives the
/// vfio-user path between the same two states.
#[test]
fn p2p_paths_collapse_to_vfio_user_paths() {
    for (p2p, plain) in [(KERNEL, VFU), (KERNEL_NO_PRE, VFU_NO_PRE)] {
        for from in MigState::ALL.into_iter().filter(|s| !s.is_p2p()) {
            for to in MigState::ALL.into_iter().filter(|s| !s.is_p2p()) {
                let a = transition(from, to, p2p).map(|p| {
                    p.iter()
                        .copied()
                        .filter(|s| !s.is_p2p())
                        .collect::<Vec<_>>()
                });
                let b = transition(from, to, plain).map(|p| p.to_vec());
                assert_eq!(a, b, "{from} -> {to}");
            }
        }
    }
}

/// Every successful path is a chain of direct arcs ending in the target, never revisits a
/// state, and passes through a saving state only while the whole path saves.
#[test]
fn paths_are_well_formed() {
    for sup in ALL_SUPPORT {
        for from in MigState::ALL {
            for to in MigState::ALL {
                let Ok(path) = transition(from, to, sup) else {
                    continue;
                };
                if from == to {
                    assert!(path.is_empty());
                    continue;
                }
                assert_eq!(path.last(), Some(&to));
                let mut here = from;
                let mut seen = Vec::from([from]);
                for &s in &path {
                    assert!(direct_arc(here, s, sup), "{here} -> {s} in {path}");
                    assert!(!seen.contains(&s));
                    seen.push(s);
                    here = s;
                }
                let all_saving = seen.iter().all(|&s| is_saving(s));
                for &s in &path[..path.len() - 1] {
                    assert!(all_saving || !is_saving(s), "{from} -> {to}: {path}");
                }
            }
        }
    }
}

#[test]
fn every_legal_pair_has_a_path() {
    for sup in ALL_SUPPORT {
        for from in MigState::ALL {
            for to in MigState::ALL {
                match transition(from, to, sup) {
                    Err(TransitionError::NoPath { .. }) => panic!("{from} -> {to}"),
                    Err(TransitionError::Unsupported(s)) => assert!(!sup.supports(s)),
                    Err(TransitionError::ErrorRequested) => assert_eq!(to, ERROR),
                    Err(TransitionError::LeaveError) => assert_eq!(from, ERROR),
                    Err(TransitionError::StopCopyToPreCopy(_)) => {
                        assert_eq!(from, STOP_COPY);
                        assert!(to == PRE_COPY || to == PRE_COPY_P2P);
                    }
                    Err(e @ TransitionError::UnknownState(_)) => panic!("{e}"),
                    Ok(_) => {}
                }
            }
        }
    }
}

#[test]
fn errors() {
    for sup in ALL_SUPPORT {
        // ERROR can never be requested, not even from ERROR.
        for from in MigState::ALL {
            assert_eq!(
                transition(from, ERROR, sup),
                Err(TransitionError::ErrorRequested)
            );
        }
        // Only DEVICE_RESET leaves ERROR.
        for to in [STOP, RUNNING, STOP_COPY, RESUMING] {
            assert_eq!(transition(ERROR, to, sup), Err(TransitionError::LeaveError));
        }
        // Unknown values, including libvfio-user's off-by-one 8.
        for bad in [MigState(8), MigState(9), MigState(u32::MAX)] {
            assert_eq!(
                transition(RUNNING, bad, sup),
                Err(TransitionError::UnknownState(bad))
            );
            assert_eq!(
                transition(bad, RUNNING, sup),
                Err(TransitionError::UnknownState(bad))
            );
            assert_eq!(
                transition(bad, bad, sup),
                Err(TransitionError::UnknownState(bad))
            );
        }
    }
    // P2P states on a vfio-user peer.
    for sup in [VFU, VFU_NO_PRE] {
        for p2p in [RUNNING_P2P, PRE_COPY_P2P] {
            assert_eq!(
                transition(RUNNING, p2p, sup),
                Err(TransitionError::Unsupported(p2p))
            );
            assert_eq!(
                transition(p2p, RUNNING, sup),
                Err(TransitionError::Unsupported(p2p))
            );
        }
    }
    assert_eq!(
        transition(STOP, PRE_COPY_P2P, KERNEL_NO_PRE),
        Err(TransitionError::Unsupported(PRE_COPY_P2P))
    );
    assert_eq!(
        transition(STOP_COPY, PRE_COPY, VFU),
        Err(TransitionError::StopCopyToPreCopy(PRE_COPY))
    );
}

#[test]
fn error_ids_and_messages() {
    let all = [
        TransitionError::UnknownState(MigState(8)),
        TransitionError::ErrorRequested,
        TransitionError::LeaveError,
        TransitionError::Unsupported(RUNNING_P2P),
        TransitionError::StopCopyToPreCopy(PRE_COPY),
        TransitionError::NoPath {
            from: STOP,
            to: RUNNING,
        },
    ];
    let mut ids: Vec<_> = all.iter().map(|e| e.id()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), all.len());
    assert!(ids.iter().all(|id| id.starts_with("mig-")));
    assert_eq!(
        TransitionError::StopCopyToPreCopy(PRE_COPY).to_string(),
        "STOP_COPY cannot go back to PRE_COPY"
    );
    assert_eq!(
        TransitionError::Unsupported(RUNNING_P2P).to_string(),
        "migration state RUNNING_P2P (5) is not supported by the device"
    );
    assert_eq!(
        TransitionError::UnknownState(MigState(8)).to_string(),
        "unknown migration state 8 (valid states are 0-7)"
    );
}

#[test]
fn path_type() {
    let p = transition(RESUMING, PRE_COPY, VFU).unwrap();
    assert_eq!(p.len(), 3);
    assert!(!p.is_direct());
    assert_eq!(p.to_string(), "STOP -> RUNNING -> PRE_COPY");
    assert_eq!(format!("{p:?}"), "[STOP (1), RUNNING (2), PRE_COPY (6)]");
    assert_eq!(p, &[STOP, RUNNING, PRE_COPY][..]);
    assert_eq!(Path::empty().to_string(), "(no-op)");
    assert_eq!(Path::default(), transition(STOP, STOP, VFU).unwrap());
    assert_ne!(p, Path::empty());
    let collected: Vec<MigState> = (&p).into_iter().copied().collect();
    assert_eq!(collected, [STOP, RUNNING, PRE_COPY]);
}

#[test]
fn data_helpers() {
    for s in MigState::ALL.iter().copied().chain([MigState(8)]) {
        let saving = matches!(s, PRE_COPY | STOP_COPY | PRE_COPY_P2P);
        assert_eq!(is_saving(s), saving, "{s}");
        assert_eq!(allows_mig_data_read(s), saving, "{s}");
        assert_eq!(allows_mig_data_write(s), s == RESUMING, "{s}");
    }
}
