//! Unit tests: what commands change follows them in the order they were sent, answered or not, and is
//! undone when the reply is an error (DMA windows, dirty-page logging, the migration state, resets).

use super::*;

const EEXIST: u32 = 17;
const ENOENT: u32 = 2;
const EINVAL: u32 = 22;

/// One message of a burst: the i-th command, or the reply to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Cmd(usize),
    Rep(usize),
}

/// Every order in which `n` commands, sent in order, and their replies can be seen, each reply after
/// its command. With `in_order` the replies keep the commands' order too, as a server that answers in
/// the order it processes does (§1 rule 7).
fn orders(n: usize, in_order: bool) -> Vec<Vec<Step>> {
    fn go(
        n: usize,
        in_order: bool,
        sent: usize,
        answered: &mut Vec<bool>,
        seq: &mut Vec<Step>,
        out: &mut Vec<Vec<Step>>,
    ) {
        if seq.len() == 2 * n {
            out.push(seq.clone());
            return;
        }
        if sent < n {
            seq.push(Step::Cmd(sent));
            go(n, in_order, sent + 1, answered, seq, out);
            seq.pop();
        }
        for i in 0..sent {
            if answered[i] {
                continue;
            }
            answered[i] = true;
            seq.push(Step::Rep(i));
            go(n, in_order, sent, answered, seq, out);
            seq.pop();
            answered[i] = false;
            if in_order {
                break; // only the oldest unanswered one
            }
        }
    }
    let mut out = Vec::new();
    go(
        n,
        in_order,
        0,
        &mut vec![false; n],
        &mut Vec::new(),
        &mut out,
    );
    out
}

#[test]
fn orders_are_counted_right() {
    // Catalan numbers for in-order replies; 1·3·5·…·(2n-1) when replies may come in any order.
    assert_eq!(orders(3, true).len(), 5);
    assert_eq!(orders(5, true).len(), 42);
    assert_eq!(orders(8, true).len(), 1430);
    assert_eq!(orders(3, false).len(), 15);
    assert_eq!(orders(5, false).len(), 945);
    for o in orders(4, false) {
        for (at, step) in o.iter().enumerate() {
            if let Step::Rep(i) = step {
                assert!(o[..at].contains(&Step::Cmd(*i)), "{o:?}");
            }
        }
    }
}

fn map_cmd(id: u16, flags: u32, addr: u64, size: u64) -> (Vec<u8>, u32) {
    let fds = u32::from(flags & 2 != 0); // QEMU sends RAM with its memfd, ROM without
    (
        enc(
            cmd(id, Command::DMA_MAP),
            Body::DmaMap(&DmaMap::new(flags, 0, addr, size)),
        ),
        fds,
    )
}

fn map_rep(id: u16) -> Vec<u8> {
    enc(rep(id, Command::DMA_MAP), Body::Empty)
}

fn unmap_cmd(id: u16, addr: u64, size: u64) -> Vec<u8> {
    enc(
        cmd(id, Command::DMA_UNMAP),
        Body::DmaUnmap {
            unmap: &unmap(24, 0, addr, size),
            bitmap: None,
            data: &[],
        },
    )
}

fn unmap_rep(id: u16, addr: u64, size: u64) -> Vec<u8> {
    enc(
        rep(id, Command::DMA_UNMAP),
        Body::DmaUnmap {
            unmap: &unmap(24, 0, addr, size),
            bitmap: None,
            data: &[],
        },
    )
}

fn refused(id: u16, c: Command, errno: u32) -> Vec<u8> {
    enc(Header::error_reply(id, c, errno), Body::Error)
}

/// A command of a burst with its success reply.
struct Exchange {
    command: Vec<u8>,
    fds: u32,
    reply: Vec<u8>,
}

fn map_x(id: u16, flags: u32, addr: u64, size: u64) -> Exchange {
    let (command, fds) = map_cmd(id, flags, addr, size);
    Exchange {
        command,
        fds,
        reply: map_rep(id),
    }
}

fn unmap_x(id: u16, addr: u64, size: u64) -> Exchange {
    Exchange {
        command: unmap_cmd(id, addr, size),
        fds: 0,
        reply: unmap_rep(id, addr, size),
    }
}

/// QEMU 10.1 realizing the device (as in `corpus/qemu-10.1-seabios.pcapng`): guest RAM with its
/// memfd, the BIOS ROM without an fd.
fn qemu_session(p: Profile) -> S {
    let mut s = negotiated(p);
    for (id, flags, addr, size) in [(1, 3, 0, 0x1000_0000), (2, 1, 0xfffc_0000, 0x4_0000)] {
        let (c, fds) = map_cmd(id, flags, addr, size);
        none(&s.cf(&c, fds));
        none(&s.s(&map_rep(id)));
    }
    s
}

/// Plays `burst` in `order`; every message must raise nothing.
#[track_caller]
fn play(s: &mut S, burst: &[Exchange], order: &[Step]) {
    for step in order {
        let f = match *step {
            Step::Cmd(i) => s.cf(&burst[i].command, burst[i].fds),
            Step::Rep(i) => s.s(&burst[i].reply),
        };
        assert!(f.is_empty(), "{order:?} at {step:?}: {f:#?}");
    }
}

/// The first re-layout of the capture: RAM [0, 256 MiB) unmapped, then mapped again in four pieces
/// (the legacy VGA and option ROM holes read-only, without an fd), all sent before the first reply.
fn first_relayout() -> Vec<Exchange> {
    vec![
        unmap_x(44, 0, 0x1000_0000),
        map_x(45, 3, 0, 0xc_0000),
        map_x(46, 1, 0xc_0000, 0x2_0000),
        map_x(47, 1, 0xe_0000, 0x2_0000),
        map_x(48, 3, 0x10_0000, 0xff0_0000),
    ]
}

/// The second: the four pieces unmapped and four others mapped, in one burst.
fn second_relayout() -> Vec<Exchange> {
    vec![
        unmap_x(49, 0, 0xc_0000),
        unmap_x(50, 0xc_0000, 0x2_0000),
        unmap_x(51, 0xe_0000, 0x2_0000),
        unmap_x(52, 0x10_0000, 0xff0_0000),
        map_x(53, 3, 0, 0xd_8000),
        map_x(54, 1, 0xd_8000, 0x8000),
        map_x(55, 1, 0xe_0000, 0x1_0000),
        map_x(56, 3, 0xf_0000, 0xff1_0000),
    ]
}

/// After the bursts the windows are the new pieces: each unmaps exactly, the old range does not.
#[track_caller]
fn windows_are(s: &mut S, pieces: &[(u64, u64)], gone: (u64, u64)) {
    only(
        &s.c(&unmap_cmd(900, gone.0, gone.1)),
        "dma-unmap-no-match",
        24,
    );
    none(&s.s(&refused(900, Command::DMA_UNMAP, ENOENT)));
    for (i, &(addr, size)) in pieces.iter().enumerate() {
        let id = 901 + i as u16;
        s.ok(&unmap_cmd(id, addr, size), &unmap_rep(id, addr, size));
    }
}

/// The burst that made 19 false alarms: an unmap takes effect before the maps sent after it, in
/// every order its replies can come, under every profile.
#[test]
fn qemu_unmap_then_map_burst_in_every_order() {
    let burst = first_relayout();
    let pieces = [
        (0, 0xc_0000),
        (0xc_0000, 0x2_0000),
        (0xe_0000, 0x2_0000),
        (0x10_0000, 0xff0_0000),
    ];
    let all = orders(burst.len(), false);
    assert_eq!(all.len(), 945);
    for p in Profile::ALL {
        for order in &all {
            let mut s = qemu_session(p);
            play(&mut s, &burst, order);
            windows_are(&mut s, &pieces, (0, 0x1000_0000));
        }
    }
}

#[test]
fn qemu_second_relayout_in_every_in_order_interleaving() {
    let (first, second) = (first_relayout(), second_relayout());
    let in_sequence: Vec<Step> = (0..first.len())
        .map(Step::Cmd)
        .chain((0..first.len()).map(Step::Rep))
        .collect();
    let pieces = [
        (0, 0xd_8000),
        (0xd_8000, 0x8000),
        (0xe_0000, 0x1_0000),
        (0xf_0000, 0xff1_0000),
    ];
    let all = orders(second.len(), true);
    assert_eq!(all.len(), 1430);
    for p in Profile::ALL {
        for order in &all {
            let mut s = qemu_session(p);
            play(&mut s, &first, &in_sequence);
            play(&mut s, &second, order);
            windows_are(&mut s, &pieces, (0, 0xc_0000));
        }
    }
}

/// The checks of a command see every earlier one: a map sent after an unmap of another range still
/// overlaps what is live.
#[test]
fn a_pipelined_map_is_checked_against_the_windows_as_the_server_will_have_them() {
    let mut s = qemu_session(Profile::Spec);
    none(&s.c(&unmap_cmd(10, 0xfffc_0000, 0x4_0000)));
    let (c, fds) = map_cmd(11, 3, 0x8000, 0x1000);
    only(&s.cf(&c, fds), "dma-map-overlap", 32);
    // The ROM's range is free already.
    let (c, fds) = map_cmd(12, 1, 0xfffc_0000, 0x4_0000);
    none(&s.cf(&c, fds));
    none(&s.s(&unmap_rep(10, 0xfffc_0000, 0x4_0000)));
    none(&s.s(&refused(11, Command::DMA_MAP, EEXIST)));
    none(&s.s(&map_rep(12)));
}

/// A refused DMA_UNMAP leaves its window live: the maps of its pieces sent behind it overlap it, so
/// EEXIST is their expected answer and success is a violation.
#[test]
fn a_refused_unmap_is_undone_for_the_maps_behind_it() {
    for accepted in [false, true] {
        let mut s = qemu_session(Profile::Spec);
        none(&s.c(&unmap_cmd(10, 0, 0x1000_0000)));
        let (c, fds) = map_cmd(11, 3, 0, 0x8_0000);
        none(&s.cf(&c, fds));
        // Nothing in the unmap was wrong: the refusal is a fact to report, not a violation.
        only(
            &s.s(&refused(10, Command::DMA_UNMAP, EINVAL)),
            "request-rejected",
            12,
        );
        if accepted {
            only(&s.s(&map_rep(11)), "dma-map-overlap-reply", 0);
        } else {
            none(&s.s(&refused(11, Command::DMA_MAP, EEXIST)));
        }
        // RAM is still the one window: it unmaps exactly.
        s.ok(
            &unmap_cmd(12, 0, 0x1000_0000),
            &unmap_rep(12, 0, 0x1000_0000),
        );
    }
    // Refused with another errno than EEXIST: as for any overlapping map.
    let mut s = qemu_session(Profile::Spec);
    none(&s.c(&unmap_cmd(10, 0, 0x1000_0000)));
    let (c, fds) = map_cmd(11, 3, 0, 0x8_0000);
    none(&s.cf(&c, fds));
    s.s(&refused(10, Command::DMA_UNMAP, EINVAL));
    only(
        &s.s(&refused(11, Command::DMA_MAP, ENOENT)),
        "dma-map-overlap-reply",
        12,
    );
}

/// A refused DMA_MAP takes its window away again: an unmap of it sent behind it then matches
/// nothing, and its refusal is expected.
#[test]
fn a_refused_map_is_undone_for_the_commands_behind_it() {
    let mut s = qemu_session(Profile::Spec);
    let (c, fds) = map_cmd(10, 3, 0x2000_0000, 0x1000);
    none(&s.cf(&c, fds));
    none(&s.c(&unmap_cmd(11, 0x2000_0000, 0x1000)));
    only(
        &s.s(&refused(10, Command::DMA_MAP, 28)),
        "request-rejected",
        12,
    );
    none(&s.s(&refused(11, Command::DMA_UNMAP, ENOENT)));
    only(
        &s.c(&unmap_cmd(12, 0x2000_0000, 0x1000)),
        "dma-unmap-no-match",
        24,
    );
}

/// A refused UNMAP_ALL leaves every window: the server's DMA into them is fine.
#[test]
fn a_refused_unmap_all_keeps_the_windows() {
    let mut s = qemu_session(Profile::Qemu);
    let all = enc(
        cmd(10, Command::DMA_UNMAP),
        Body::DmaUnmap {
            unmap: &unmap(24, 2, 0, 0),
            bitmap: None,
            data: &[],
        },
    );
    none(&s.c(&all));
    let read = enc(
        cmd(1, Command::DMA_READ),
        Body::DmaRw {
            access: &DmaAccess::new(0x1000, 8),
            data: &[],
        },
    );
    // While the unmap is unanswered the server may finish DMA under way (§2.3).
    none(&s.s(&read));
    only(
        &s.s(&refused(10, Command::DMA_UNMAP, EINVAL)),
        "request-rejected",
        12,
    );
    none(&s.c(&enc(
        rep(1, Command::DMA_READ),
        Body::DmaRw {
            access: &DmaAccess::new(0x1000, 8),
            data: &[0; 8],
        },
    )));
    let read = enc(
        cmd(2, Command::DMA_READ),
        Body::DmaRw {
            access: &DmaAccess::new(0x2000, 8),
            data: &[],
        },
    );
    none(&s.s(&read));
    // Accepted this time: the windows are gone once it is answered.
    none(&s.c(&all));
    none(&s.s(&enc(
        rep(10, Command::DMA_UNMAP),
        Body::DmaUnmap {
            unmap: &unmap(24, 2, 0, 0),
            bitmap: None,
            data: &[],
        },
    )));
    let read = enc(
        cmd(3, Command::DMA_READ),
        Body::DmaRw {
            access: &DmaAccess::new(0x3000, 8),
            data: &[],
        },
    );
    only(&s.s(&read), "dma-rw-outside-window", 16);
}

fn log_start(id: u16, page_size: u64) -> (Vec<u8>, Vec<u8>) {
    let control = DmaLoggingControl {
        page_size: U64::new(page_size),
        num_ranges: U32::ZERO,
        reserved: U32::ZERO,
    };
    let data = FeatureData::LoggingControl {
        control: &control,
        ranges: &[],
    };
    (
        feat(id, feature(24, SET | F_LOG_START), data),
        feat_rep(id, feature(24, SET | F_LOG_START), data),
    )
}

fn log_stop(id: u16) -> (Vec<u8>, Vec<u8>) {
    (
        feat(id, feature(8, SET | F_LOG_STOP), FeatureData::None),
        feat_rep(id, feature(8, SET | F_LOG_STOP), FeatureData::None),
    )
}

fn log_report(id: u16, iova: u64, length: u64) -> Vec<u8> {
    let r = DmaLoggingReport {
        iova: U64::new(iova),
        length: U64::new(length),
        page_size: U64::new(4096),
    };
    feat(
        id,
        feature(40, GET | F_LOG_REPORT),
        FeatureData::LoggingReport {
            report: &r,
            bitmap: &[],
        },
    )
}

/// Logging started or stopped by a command counts from that command on, and not at all if it is
/// refused.
#[test]
fn logging_follows_start_and_stop_in_order_and_is_undone_when_refused() {
    let mut s = qemu_session(Profile::Spec);
    // A START pipelined ahead of a REPORT: the REPORT is fine.
    let (start, start_ok) = log_start(10, 4096);
    none(&s.c(&start));
    none(&s.c(&log_report(11, 0, 0x4000)));
    // The START is refused: logging never started.
    only(
        &s.s(&refused(10, Command::DEVICE_FEATURE, EINVAL)),
        "request-rejected",
        12,
    );
    s.s(&refused(11, Command::DEVICE_FEATURE, EINVAL));
    only(&s.c(&log_report(12, 0, 0x4000)), "logging-not-started", 20);
    s.s(&refused(12, Command::DEVICE_FEATURE, EINVAL));
    s.ok(&start, &start_ok);
    // A refused STOP leaves it running.
    let (stop, stop_ok) = log_stop(13);
    none(&s.c(&stop));
    only(
        &s.s(&refused(13, Command::DEVICE_FEATURE, EINVAL)),
        "request-rejected",
        12,
    );
    none(&s.c(&log_report(14, 0, 0x4000)));
    // An accepted STOP counts from the command on, before its reply.
    none(&s.c(&stop));
    only(&s.c(&log_report(15, 0, 0x4000)), "logging-not-started", 20);
    none(&s.s(&stop_ok));
}

/// A refused MIG_DEVICE_STATE SET leaves the device where it was: the next transition and the next
/// migration data are checked from there.
#[test]
fn a_refused_transition_leaves_the_state_it_was_in() {
    let mut s = negotiated(Profile::Spec);
    none(&set_state(&mut s, 20, 1)); // STOP
    none(&set_state(&mut s, 21, 3)); // STOP_COPY
    // STOP_COPY -> PRE_COPY is forbidden, and refused.
    let st = mig_state(6, 0);
    let pre_copy = feat(22, feature(16, SET | F_STATE), FeatureData::MigState(&st));
    has(&s.c(&pre_copy), "mig-transition", 24);
    none(&s.s(&refused(22, Command::DEVICE_FEATURE, EINVAL)));
    // Still STOP_COPY, so asking again is the same violation, not one from "an unknown state".
    let f = s.c(&pre_copy);
    has(&f, "mig-transition", 24);
    assert!(f[0].message.contains("from STOP_COPY"), "{f:#?}");
    s.s(&refused(22, Command::DEVICE_FEATURE, EINVAL));
    // STOP_COPY -> STOP, a single arc, refused: still STOP_COPY, where MIG_DATA_READ is valid.
    let st = mig_state(1, 0);
    let stop = feat(23, feature(16, SET | F_STATE), FeatureData::MigState(&st));
    none(&s.c(&stop));
    only(
        &s.s(&refused(23, Command::DEVICE_FEATURE, EINVAL)),
        "request-rejected",
        12,
    );
    let read = enc(
        cmd(24, Command::MIG_DATA_READ),
        Body::MigData {
            head: &mig_data(8 + 64, 64),
            data: &[],
        },
    );
    none(&s.c(&read));
    // STOP accepted this time, pipelined ahead of a MIG_DATA_WRITE: that is checked in STOP.
    none(&s.c(&stop));
    let write = enc(
        cmd(25, Command::MIG_DATA_WRITE),
        Body::MigData {
            head: &mig_data(8 + 4, 4),
            data: &[0; 4],
        },
    );
    only(&s.c(&write), "mig-data-state", 2);
}

/// Refused on a path of several arcs, the device may have stopped on the way (the uAPI's rule): the
/// state is unknown until a GET says it.
#[test]
fn a_refused_combined_transition_loses_the_state_until_a_get() {
    let mut s = negotiated(Profile::Spec);
    // RUNNING -> STOP_COPY passes through STOP.
    let st = mig_state(3, 0);
    none(&s.c(&feat(
        30,
        feature(16, SET | F_STATE),
        FeatureData::MigState(&st),
    )));
    s.s(&refused(30, Command::DEVICE_FEATURE, EINVAL));
    // Unknown: MIG_DATA_WRITE cannot be judged.
    let write = enc(
        cmd(31, Command::MIG_DATA_WRITE),
        Body::MigData {
            head: &mig_data(8 + 4, 4),
            data: &[0; 4],
        },
    );
    none(&s.c(&write));
    s.s(&refused(31, Command::MIG_DATA_WRITE, EINVAL));
    // GET says STOP.
    let get = feat(32, feature(16, GET | F_STATE), FeatureData::None);
    let stop = mig_state(1, 0);
    s.ok(
        &get,
        &feat_rep(32, feature(16, GET | F_STATE), FeatureData::MigState(&stop)),
    );
    only(&s.c(&write), "mig-data-state", 2);
}

/// DEVICE_RESET moves the device out of ERROR when it is sent; refused, it leaves it there.
#[test]
fn a_refused_reset_leaves_error() {
    let mut s = negotiated(Profile::Spec);
    let get = feat(40, feature(16, GET | F_STATE), FeatureData::None);
    let error = mig_state(0, 0);
    s.ok(
        &get,
        &feat_rep(
            40,
            feature(16, GET | F_STATE),
            FeatureData::MigState(&error),
        ),
    );
    let reset = enc(cmd(41, Command::DEVICE_RESET), Body::Empty);
    none(&s.c(&reset));
    only(
        &s.s(&refused(41, Command::DEVICE_RESET, EINVAL)),
        "request-rejected",
        12,
    );
    let st = mig_state(1, 0);
    let stop = feat(42, feature(16, SET | F_STATE), FeatureData::MigState(&st));
    has(&s.c(&stop), "mig-transition", 24);
    none(&s.s(&refused(42, Command::DEVICE_FEATURE, EINVAL)));
    // Accepted: RUNNING from the command on, so a STOP pipelined behind it is fine.
    none(&s.c(&reset));
    none(&s.c(&feat(
        43,
        feature(16, SET | F_STATE),
        FeatureData::MigState(&st),
    )));
    none(&s.s(&enc(rep(41, Command::DEVICE_RESET), Body::Empty)));
    none(&s.s(&feat_rep(
        43,
        feature(16, SET | F_STATE),
        FeatureData::MigState(&st),
    )));
}
