//! The real VDUSE captures in `corpus/` (Linux 6.12; see the VDUSE section of `corpus/README.md`):
//! `vduse-6.12-blk.pcapng`, recorded by an independent C daemon, and `vduse-6.12-blk-example.pcapng`,
//! recorded by the `vduse-blk` example in the VM harness. Every message decodes and re-encodes byte
//! for byte, the validator finds nothing, and the traffic is what the README's table says.

#![allow(clippy::unwrap_used)]

use vfu_codec::Direction;
use vfu_codec::vduse::{
    RequestBody, VDUSE_GET_VQ_STATE, VDUSE_MSG_SIZE, VDUSE_REQ_RESULT_OK, VDUSE_SET_STATUS,
    VDUSE_UPDATE_IOTLB, decode_request, decode_response, encode_request, encode_response,
};
use vfu_dump::capture::{Protocol, Record};
use vfu_dump::validate::{Event, Profile, Protocol as VProtocol, Validator};
use vfu_tests::load;

const C_DAEMON: &str = "vduse-6.12-blk.pcapng";
const EXAMPLE: &str = "vduse-6.12-blk-example.pcapng";

/// The statuses the kernel set, in order, with the two UPDATE_IOTLB (`U`) and the GET_VQ_STATE
/// (`G`) between them, as the README's table lists them.
const SEQUENCE: &[&str] = &[
    "S00", "S01", "S03", "S0b", "S0f", // virtio_vdpa bind
    "S00", "S01", // unbind
    "S00", "S03", "S0b", "U", "S0f", "G", "S00", "U", "S00", // vhost_vdpa user
];

fn check(name: &str) -> Vec<Record> {
    let recs = load(name);
    assert_eq!(recs.len(), 32, "{name}");
    let mut seen = Vec::new();
    for (i, pair) in recs.chunks(2).enumerate() {
        let (req, resp) = (&pair[0], &pair[1]);
        for r in pair {
            assert_eq!(r.protocol, Protocol::Vduse, "{name} #{}", r.index);
            assert_eq!(r.data.len(), VDUSE_MSG_SIZE, "{name} #{}", r.index);
            assert_eq!((r.fds, r.truncated), (0, false), "{name} #{}", r.index);
        }
        assert_eq!(
            req.direction,
            Direction::ClientToServer,
            "{name} #{}",
            req.index
        );
        assert_eq!(
            resp.direction,
            Direction::ServerToClient,
            "{name} #{}",
            resp.index
        );
        assert!(
            resp.ts_ns >= req.ts_ns,
            "{name} #{}: answered before asked",
            resp.index
        );

        let q = decode_request(&req.data).unwrap_or_else(|e| panic!("{name} #{}: {e}", req.index));
        assert_eq!(
            q.request_id(),
            i as u32,
            "{name}: ids run from 0 with no gap"
        );
        let mut again = [0u8; VDUSE_MSG_SIZE];
        encode_request(q.request_id(), &q.body, &mut again).unwrap();
        assert_eq!(again[..], req.data[..], "{name} #{}: re-encoded", req.index);
        seen.push(match q.body {
            RequestBody::SetStatus(s) => format!("S{:02x}", s.status),
            RequestBody::UpdateIotlb(r) => {
                assert_eq!(
                    (r.start.get(), r.last.get()),
                    (0, u64::MAX),
                    "{name}: whole range"
                );
                "U".into()
            }
            RequestBody::GetVqState(s) => {
                assert_eq!(s.index.get(), 0);
                "G".into()
            }
            other => panic!("{name} #{}: {other:?}", req.index),
        });

        let a =
            decode_response(&resp.data).unwrap_or_else(|e| panic!("{name} #{}: {e}", resp.index));
        assert_eq!(a.request_id.get(), q.request_id(), "{name} #{}", resp.index);
        assert_eq!(
            a.result.get(),
            VDUSE_REQ_RESULT_OK,
            "{name} #{}",
            resp.index
        );
        let mut again = [0u8; VDUSE_MSG_SIZE];
        encode_response(
            a.request_id.get(),
            a.result.get(),
            &a.body(q.req_type()),
            &mut again,
        )
        .unwrap();
        assert_eq!(
            again[..],
            resp.data[..],
            "{name} #{}: re-encoded",
            resp.index
        );
    }
    assert_eq!(seen, SEQUENCE, "{name}");
    let count = |t: u32| {
        recs.iter()
            .filter(|r| r.direction == Direction::ClientToServer)
            .filter(|r| decode_request(&r.data).is_ok_and(|q| q.req_type() == t))
            .count()
    };
    assert_eq!(
        (
            count(VDUSE_GET_VQ_STATE),
            count(VDUSE_SET_STATUS),
            count(VDUSE_UPDATE_IOTLB)
        ),
        (1, 13, 2),
        "{name}: the README's table"
    );
    recs
}

#[test]
fn the_c_daemons_capture_is_what_its_readme_says() {
    check(C_DAEMON);
}

#[test]
fn the_examples_capture_is_what_the_readme_says() {
    check(EXAMPLE);
}

#[test]
fn the_validator_finds_nothing_in_either() {
    for name in [C_DAEMON, EXAMPLE] {
        for profile in [Profile::Spec, Profile::Qemu, Profile::LibvfioUser] {
            let mut v = Validator::new(profile);
            let mut out = Vec::new();
            for r in load(name) {
                v.check(
                    &Event {
                        conn: r.conn,
                        index: r.index,
                        direction: r.direction,
                        protocol: VProtocol::Vduse,
                        fds: r.fds,
                        truncated: r.truncated,
                        bytes: &r.data,
                    },
                    &mut out,
                );
            }
            out.extend(v.finish());
            assert!(out.is_empty(), "{name} [{profile}]: {out:#?}");
        }
    }
}

/// The kernel asked both daemons the same things, byte for byte; they answered alike but for the
/// avail index of the one GET_VQ_STATE (what each daemon's vhost-vdpa client had done).
#[test]
fn the_kernel_asked_both_daemons_the_same() {
    let (c, ex) = (check(C_DAEMON), check(EXAMPLE));
    for (a, b) in c.iter().zip(&ex) {
        if a.direction == Direction::ClientToServer {
            assert_eq!(a.data, b.data, "request #{}", a.index);
            continue;
        }
        let (ra, rb) = (
            decode_response(&a.data).unwrap(),
            decode_response(&b.data).unwrap(),
        );
        if ra.request_id.get() == 12 {
            assert_eq!(
                ra.vq_state().split().avail_index.get(),
                5,
                "the C daemon's client"
            );
            assert_eq!(
                rb.vq_state().split().avail_index.get(),
                1,
                "one GET_ID through vhost-vdpa"
            );
        } else {
            assert_eq!(a.data, b.data, "response #{}", a.index);
        }
    }
}
