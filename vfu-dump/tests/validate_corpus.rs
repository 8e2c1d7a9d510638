//! The validator over the real captures in `corpus/` (see `corpus/README.md` for what they hold).
//!
//! What was checked, by hand and by the tests below:
//!
//! - `lvu-sample-client.pcapng` and `lvu-sample-client-migrated.pcapng` validate under the libvfio-user
//!   profile with one finding, on a command the server refused: the sample client reads region
//!   0xdeadbeef right after VERSION, before any DEVICE_GET_INFO. A libvfio-user device has exactly 9
//!   regions, so under its profile that is a `region-index` error, and the server's EINVAL reply is the
//!   expected answer (no `request-rejected` for a command that already has a finding); under the
//!   other profiles the validator cannot know num_regions yet (PCI only says "at least 9") and reports
//!   the Info `region-index-unverified`. The migrated
//!   capture is a fresh destination server: its device starts RUNNING, and its first SET asks for
//!   RESUMING, a legal combined transition (RUNNING -> STOP -> RESUMING), after which MIG_DATA_WRITE
//!   is allowed; it ends with DMA_UNMAP UNMAP_ALL, which the profile accepts.
//! - `lvu-pytest-subset.pcapng`: the golden file `golden/pytest-findings.txt` lists every finding under
//!   the libvfio-user profile. Each line was compared with the test that sent the message
//!   (libvfio-user `test/py/test_{negotiate,dma_map,dma_unmap,device_get_info,device_get_region_info,
//!   device_get_irq_info,device_set_irqs}.py`) and with the README's list: every one is a deliberate
//!   malformation (several messages break more than one rule, e.g. a bad argsz on an unmap of nothing,
//!   and each broken rule is a line). Two Info lines are not malformations but deliberate failures the
//!   capture cannot explain: the 65th DMA_MAP refused by libvfio-user's 64-window limit
//!   (`request-rejected`, the limit is not on the wire) and the DMA_MAP whose client closed the socket
//!   before the reply (`request-unanswered`, test_dma_map_reply_fail). Two SET_IRQS ranges
//!   (start 2047 count 2, start 2049 count 1 on MSI-X) are `request-rejected` Infos because that
//!   connection never asked GET_IRQ_INFO for the vector count.
//! - `qemu-10.1-seabios.pcapng`: QEMU 10.1's client against libvfio-user's sample server, every command
//!   answered with success. It validates with no finding under the qemu and libvfio-user profiles, and
//!   under spec with only the two `version-legacy-migration` warnings (both sides send the legacy
//!   migration capability). Its memory re-layouts are pipelined bursts (a DMA_UNMAP, then
//!   DMA_MAPs of its pieces before the first reply): the validator applies each command when it is
//!   sent, as the server processes them, so the maps do not overlap the range being unmapped
//!   ([`qemu_bursts_are_pipelined`] checks that the capture really has them).
//! - `lvu-pytest-full.pcapng`: the whole suite through our proxy (`corpus/README.md` says how).
//!   [`full_suite_findings_match_the_error_replies`] checks the same way that each of the 156 refused
//!   commands has a finding and no accepted one has; `golden/pytest-full-findings.txt` lists them.
//! - [`pytest_findings_match_the_error_replies`] checks it mechanically: the server answered 53
//!   commands with an error reply, every one of those commands has a finding, and every finding is on
//!   one of those commands, on the truncated message at the end of a stream, or on the one unanswered
//!   command: the well-formed remainder (all that the server accepted) raises nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use vfu_codec::vfio::{DeviceFeature, DmaAccess, DmaMap, FeatureMigState, MigData, RegionAccess};
use vfu_codec::{Body, Command, Direction, FeatureData, Header, encode};
use vfu_dump::capture::{OpenOptions, Protocol as CaptureProtocol, open};
use vfu_dump::validate::{Event, Finding, Profile, Protocol, Severity, Validator};

const SAMPLE: &str = "lvu-sample-client.pcapng";
const MIGRATED: &str = "lvu-sample-client-migrated.pcapng";
const PYTEST: &str = "lvu-pytest-subset.pcapng";
const QEMU: &str = "qemu-10.1-seabios.pcapng";
const FULL: &str = "lvu-pytest-full.pcapng";

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corpus")
        .join(name)
}

/// Calls `f` with each record of a capture as a validator event.
fn each_event(name: &str, mut f: impl FnMut(&Event<'_>)) {
    let mut reader = open(&corpus(name), &OpenOptions::default()).expect("open capture");
    while let Some(rec) = reader.next_record().expect("read record") {
        f(&Event {
            conn: rec.conn,
            index: rec.index,
            direction: rec.direction,
            protocol: match rec.protocol {
                CaptureProtocol::Vduse => Protocol::Vduse,
                _ => Protocol::VfioUser,
            },
            fds: rec.fds,
            truncated: rec.truncated,
            bytes: rec.data,
        });
    }
}

/// Every finding of a whole capture, `finish` included. `VFU_PRINT=1` prints them.
fn validate(name: &str, profile: Profile) -> Vec<Finding> {
    let mut v = Validator::new(profile);
    let mut out = Vec::new();
    each_event(name, |ev| v.check(ev, &mut out));
    out.extend(v.finish());
    if std::env::var_os("VFU_PRINT").is_some() {
        for f in &out {
            eprintln!("{name} [{profile}] {f}");
        }
    }
    out
}

fn serious(f: &[Finding]) -> Vec<String> {
    f.iter()
        .filter(|x| x.severity >= Severity::Warning)
        .map(|x| x.to_string())
        .collect()
}

#[test]
fn sample_client_under_libvfio_user_flags_only_the_refused_region_read() {
    let f = validate(SAMPLE, Profile::LibvfioUser);
    // The one finding: the deliberate read of region 0xdeadbeef, refused with EINVAL.
    let all: Vec<_> = f.iter().map(|x| (x.rule.id, x.index, x.offset)).collect();
    assert_eq!(all, vec![("region-index", 2, 24)]);
    let mut reply = None;
    each_event(SAMPLE, |ev| {
        if ev.index == 3 {
            reply =
                Header::peek(ev.bytes).map(|h| (h.msg_id.get(), h.is_error(), h.error_no.get()));
        }
    });
    assert_eq!(reply, Some((61455, true, 22)));
    // Under spec the index cannot be checked before DEVICE_GET_INFO.
    let infos: Vec<_> = validate(SAMPLE, Profile::Spec)
        .iter()
        .filter(|x| x.severity == Severity::Info)
        .map(|x| (x.rule.id, x.index))
        .collect();
    assert!(infos.contains(&("region-index-unverified", 2)), "{infos:?}");
}

#[test]
fn migrated_client_validates_clean_under_libvfio_user() {
    let f = validate(MIGRATED, Profile::LibvfioUser);
    assert_eq!(serious(&f), Vec::<String>::new());
    assert!(f.is_empty(), "{f:#?}");
}

/// The departures the libvfio-user profile accepts are real: the strict profile reports them.
#[test]
fn samples_under_the_spec_profile_show_libvfio_users_departures() {
    let ids = |name| {
        validate(name, Profile::Spec)
            .iter()
            .filter(|x| x.severity >= Severity::Warning)
            .map(|x| x.rule.id)
            .collect::<BTreeSet<_>>()
    };
    let sample = ids(SAMPLE);
    for id in [
        "version-reply-extra-cap",
        "version-legacy-migration",
        "payload-length",
    ] {
        assert!(sample.contains(id), "{id} missing from {sample:?}");
    }
    assert!(ids(MIGRATED).contains("flags-reserved"));
}

fn golden_line(f: &Finding) -> String {
    format!(
        "{} {} {} {} {}",
        f.conn, f.index, f.offset, f.rule.id, f.severity
    )
}

#[test]
fn pytest_findings_match_golden() {
    golden("pytest-findings.txt", PYTEST, &[Profile::LibvfioUser]);
}

/// QEMU's session: nothing under its own profile or the server's; the legacy migration capability of
/// both sides under spec.
#[test]
fn full_suite_findings_match_golden() {
    golden("pytest-full-findings.txt", FULL, &[Profile::LibvfioUser]);
}

#[test]
fn qemu_seabios_findings_match_golden() {
    golden("qemu-seabios-findings.txt", QEMU, &Profile::ALL);
}

#[test]
fn qemu_seabios_validates_clean_under_qemu_and_libvfio_user() {
    for p in [Profile::Qemu, Profile::LibvfioUser] {
        let f = validate(QEMU, p);
        assert!(f.is_empty(), "{p}: {f:#?}");
    }
    let f: Vec<_> = validate(QEMU, Profile::Spec)
        .iter()
        .map(|x| (x.rule.id, x.severity, x.index))
        .collect();
    assert_eq!(
        f,
        [
            ("version-legacy-migration", Severity::Warning, 0),
            ("version-legacy-migration", Severity::Warning, 1)
        ]
    );
}

/// The capture holds what its README says: bursts in which DMA_MAPs overlapping the range of a
/// DMA_UNMAP are sent before that unmap is answered, and every command answered with success.
#[test]
fn qemu_bursts_are_pipelined() {
    // Unanswered unmaps by msg_id: their range.
    let mut unmaps: HashMap<u16, (u64, u64)> = HashMap::new();
    let mut bursts = BTreeSet::new();
    let (mut commands, mut ok) = (0, 0);
    each_event(QEMU, |ev| {
        let h = Header::peek(ev.bytes).expect("whole header");
        let id = h.msg_id.get();
        if h.is_reply() {
            assert!(!h.is_error(), "error reply at #{}", ev.index);
            ok += 1;
            unmaps.remove(&id);
            return;
        }
        commands += 1;
        let body =
            |at: usize| u64::from_le_bytes(ev.bytes[at..at + 8].try_into().expect("8 bytes"));
        match h.cmd() {
            Command::DMA_UNMAP => {
                unmaps.insert(id, (body(24), body(32)));
            }
            Command::DMA_MAP => {
                let (addr, size) = (body(32), body(40));
                for (&u, &(ua, us)) in &unmaps {
                    if addr < ua.saturating_add(us) && ua < addr.saturating_add(size) {
                        bursts.insert(u);
                    }
                }
            }
            _ => {}
        }
    });
    assert_eq!(commands, ok, "every command answered");
    // Five bursts (#88, #98, #114, #210, #222): of [0, 256 MiB) at first, then of its pieces.
    assert_eq!(
        bursts.into_iter().collect::<Vec<_>>(),
        [44, 49, 50, 51, 52, 57, 58, 59, 60, 105, 111, 112]
    );
}

/// Compares the findings of `capture` under `profiles` with `tests/golden/<file>`.
fn golden(file: &str, capture: &str, profiles: &[Profile]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(file);
    let mut text = String::new();
    for &p in profiles {
        text.push_str(&format!(
            "# vfu-dump validate --profile {p} corpus/{capture}\n# conn index offset rule severity\n"
        ));
        for f in validate(capture, p) {
            text.push_str(&golden_line(&f));
            text.push('\n');
        }
    }
    if std::env::var_os("VFU_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().expect("golden dir")).expect("mkdir");
        std::fs::write(&path, &text).expect("write golden file");
        return;
    }
    let want = std::fs::read_to_string(&path)
        .expect("golden file missing: run with VFU_BLESS=1 to create it");
    if want != text {
        let (want, got): (Vec<_>, Vec<_>) = (want.lines().collect(), text.lines().collect());
        let missing: Vec<_> = want.iter().filter(|l| !got.contains(l)).collect();
        let extra: Vec<_> = got.iter().filter(|l| !want.contains(l)).collect();
        panic!(
            "findings differ from {} (VFU_BLESS=1 rewrites it)\nmissing: {missing:#?}\nextra: {extra:#?}",
            path.display()
        );
    }
}

/// Every command the libvfio-user server refused has a finding; every finding is on a refused command
/// (or its error reply), the stream's truncated tail, or the one command left unanswered.
#[test]
fn pytest_findings_match_the_error_replies() {
    let findings = matched_with_error_replies(PYTEST, 53, &[]);
    // Only resource limits and checks the capture cannot make are Info; malformations are not.
    let infos: Vec<_> = findings
        .iter()
        .filter(|f| f.severity == Severity::Info)
        .map(|f| f.rule.id)
        .collect();
    assert_eq!(
        infos,
        [
            "request-rejected",
            "request-rejected",
            "request-rejected",
            "request-unanswered"
        ]
    );
}

/// libvfio-user's whole Python suite through the relay: every command the server refused (156) has
/// a finding, and no command it accepted has one. The other findings are on replies: two Info notes
/// on IO_FDS entries without a descriptor, the test_unsolicited_reply test's bogus reply from the
/// client, and two DMA_LOGGING_REPORT replies in which libvfio-user sets bits beyond the range
/// (test_dirty_pages_get_modified asks for pages 0x10-0x1f of a 32-page window and expects the bits
/// of pages 0x26 and 0x27 back: libvfio-user copies the window's bitmap bytes, a departure from
/// §2.15, "bits beyond the range must be 0").
#[test]
fn full_suite_findings_match_the_error_replies() {
    let findings = matched_with_error_replies(
        FULL,
        156,
        &[
            ("io-fds-no-fd", 2),
            ("logging-report-bitmap", 2),
            ("reply-unexpected", 1),
        ],
    );
    assert!(findings.len() > 156, "{}", findings.len());
}

/// Checks, under the libvfio-user profile, that exactly `refusals` commands of `capture` got an error
/// reply, that each of them has a finding, and that every other finding is on the stream's truncated
/// tail, an unanswered command, or one of `other` (rule, count) on a message that is no command the
/// server answered. Returns the findings.
fn matched_with_error_replies(
    capture: &str,
    refusals: usize,
    other: &[(&str, usize)],
) -> Vec<Finding> {
    // Commands by (conn, direction, msg_id), oldest first.
    let mut open: HashMap<(u32, Direction, u16), Vec<u64>> = HashMap::new();
    let mut refused: BTreeSet<u64> = BTreeSet::new();
    let mut accepted: BTreeSet<u64> = BTreeSet::new();
    // Error reply index -> the command it answers.
    let mut error_replies: HashMap<u64, u64> = HashMap::new();
    let mut truncated: BTreeSet<u64> = BTreeSet::new();
    each_event(capture, |ev| {
        if ev.truncated {
            truncated.insert(ev.index);
            return;
        }
        let Some(h) = Header::peek(ev.bytes) else {
            return;
        };
        if !h.is_reply() {
            let key = (ev.conn, ev.direction, h.msg_id.get());
            if !h.no_reply() {
                open.entry(key).or_default().push(ev.index);
            }
            return;
        }
        let key = (ev.conn, ev.direction.reverse(), h.msg_id.get());
        let Some(cmd) = open
            .get_mut(&key)
            .filter(|v| !v.is_empty())
            .map(|v| v.remove(0))
        else {
            return;
        };
        if h.is_error() {
            refused.insert(cmd);
            error_replies.insert(ev.index, cmd);
        } else {
            accepted.insert(cmd);
        }
    });
    assert_eq!(refused.len(), refusals, "error replies");
    let unanswered: BTreeSet<u64> = open.values().flatten().copied().collect();

    let findings = validate(capture, Profile::LibvfioUser);
    // A request-rejected finding is on the error reply; it is about the command.
    let about = |f: &Finding| match error_replies.get(&f.index) {
        Some(&cmd) if f.rule.id == "request-rejected" => cmd,
        _ => f.index,
    };
    let flagged: BTreeSet<u64> = findings.iter().map(about).collect();
    let unflagged: Vec<_> = refused.difference(&flagged).collect();
    assert!(
        unflagged.is_empty(),
        "refused commands without a finding: {unflagged:?}"
    );
    let mut others: HashMap<&str, usize> = HashMap::new();
    for f in &findings {
        let i = about(f);
        assert!(
            !accepted.contains(&i),
            "finding on a command the server accepted: {f}"
        );
        let expected = refused.contains(&i)
            || truncated.contains(&i)
            || (unanswered.contains(&i) && f.rule.id == "request-unanswered");
        if !expected {
            *others.entry(f.rule.id).or_default() += 1;
        }
    }
    let mut others: Vec<_> = others.into_iter().collect();
    others.sort_unstable();
    assert_eq!(others, other, "findings on other messages");
    findings
}

/// Every profile gets through every capture (and the findings print with `VFU_PRINT=1`).
#[test]
fn every_profile_over_every_capture() {
    for name in [SAMPLE, MIGRATED, PYTEST, QEMU, FULL] {
        for p in Profile::ALL {
            let f = validate(name, p);
            let count = |s| f.iter().filter(|x| x.severity == s).count();
            eprintln!(
                "{name} [{p}]: {} errors, {} warnings, {} infos",
                count(Severity::Error),
                count(Severity::Warning),
                count(Severity::Info)
            );
        }
    }
}

// ---- allocation ---------------------------------------------------------------------------------------

/// Counts this thread's allocations (tests run on several threads).
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

fn message(h: Header, body: Body<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let n = encode(&h, &body, &mut buf).expect("encode");
    buf.truncate(n);
    buf
}

/// Checking well-formed steady-state traffic allocates nothing (findings do: each has its message
/// string): region accesses, posted writes, server DMA and migration data, after the session is set up.
#[test]
fn steady_state_checking_does_not_allocate() {
    let (c2s, s2c) = (Direction::ClientToServer, Direction::ServerToClient);
    let cmd = Header::command;
    let rep = Header::reply;
    // MIG_DEVICE_STATE SET PRE_COPY, so that MIG_DATA_READ is allowed.
    let state_head = DeviceFeature {
        argsz: 16.into(),
        flags: 0x20002.into(),
    };
    let pre_copy = FeatureMigState {
        device_state: 6.into(),
        data_fd: 0.into(),
    };
    let set_pre_copy = Body::DeviceFeature {
        head: &state_head,
        data: FeatureData::MigState(&pre_copy),
    };
    let setup = vec![
        (
            c2s,
            0,
            message(cmd(1, Command::VERSION), Body::Unknown(&[0; 4])),
        ),
        (
            s2c,
            0,
            message(rep(1, Command::VERSION), Body::Unknown(&[0; 4])),
        ),
        (
            c2s,
            1,
            message(
                cmd(2, Command::DMA_MAP),
                Body::DmaMap(&DmaMap::new(3, 0, 0x10000, 0x10000)),
            ),
        ),
        (s2c, 0, message(rep(2, Command::DMA_MAP), Body::Empty)),
        (
            c2s,
            0,
            message(cmd(9, Command::DEVICE_FEATURE), set_pre_copy),
        ),
        (
            s2c,
            0,
            message(rep(9, Command::DEVICE_FEATURE), set_pre_copy),
        ),
    ];
    let read = RegionAccess::new(0, 0, 4);
    let write = RegionAccess::new(0, 8, 4);
    let dma_write = DmaAccess::new(0x10100, 64);
    let dma_read = DmaAccess::new(0x10200, 64);
    let mig = MigData {
        argsz: 72.into(),
        size: 64.into(),
    };
    let posted = Header::new(
        4,
        Command::REGION_WRITE,
        vfu_codec::header::VFIO_USER_F_NO_REPLY,
        0,
    );
    let traffic = vec![
        (
            c2s,
            0,
            message(
                cmd(3, Command::REGION_READ),
                Body::RegionRw {
                    access: &read,
                    data: &[],
                },
            ),
        ),
        (
            s2c,
            0,
            message(
                rep(3, Command::REGION_READ),
                Body::RegionRw {
                    access: &read,
                    data: &[1; 4],
                },
            ),
        ),
        (
            c2s,
            0,
            message(
                posted,
                Body::RegionRw {
                    access: &write,
                    data: &[2; 4],
                },
            ),
        ),
        (
            s2c,
            0,
            message(
                cmd(5, Command::DMA_WRITE),
                Body::DmaRw {
                    access: &dma_write,
                    data: &[3; 64],
                },
            ),
        ),
        (
            c2s,
            0,
            message(
                rep(5, Command::DMA_WRITE),
                Body::DmaRw {
                    access: &dma_write,
                    data: &[],
                },
            ),
        ),
        (
            s2c,
            0,
            message(
                cmd(6, Command::DMA_READ),
                Body::DmaRw {
                    access: &dma_read,
                    data: &[],
                },
            ),
        ),
        (
            c2s,
            0,
            message(
                rep(6, Command::DMA_READ),
                Body::DmaRw {
                    access: &dma_read,
                    data: &[4; 64],
                },
            ),
        ),
        (
            c2s,
            0,
            message(
                cmd(8, Command::MIG_DATA_READ),
                Body::MigData {
                    head: &mig,
                    data: &[],
                },
            ),
        ),
        (
            s2c,
            0,
            message(
                rep(8, Command::MIG_DATA_READ),
                Body::MigData {
                    head: &mig,
                    data: &[5; 64],
                },
            ),
        ),
    ];
    for p in Profile::ALL {
        let mut v = Validator::new(p);
        let mut out = Vec::new();
        let mut index = 0;
        let mut run =
            |v: &mut Validator, out: &mut Vec<Finding>, msgs: &[(Direction, u32, Vec<u8>)]| {
                for (direction, fds, bytes) in msgs {
                    let ev = Event {
                        conn: 0,
                        index,
                        direction: *direction,
                        protocol: Protocol::VfioUser,
                        fds: *fds,
                        truncated: false,
                        bytes,
                    };
                    index += 1;
                    v.check(&ev, out);
                }
            };
        run(&mut v, &mut out, &setup);
        run(&mut v, &mut out, &traffic);
        let before = allocations();
        let start = std::time::Instant::now();
        for _ in 0..10_000 {
            run(&mut v, &mut out, &traffic);
        }
        let elapsed = start.elapsed();
        let allocated = allocations() - before;
        assert!(out.is_empty(), "{p}: {out:#?}");
        assert_eq!(
            allocated, 0,
            "{p}: allocations while checking well-formed traffic"
        );
        let n = 10_000 * traffic.len();
        eprintln!(
            "{p}: {n} messages in {elapsed:?} ({:.0} ns/message), no allocation",
            elapsed.as_nanos() as f64 / n as f64
        );
    }
}
