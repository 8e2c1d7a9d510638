//! Unit tests: the VDUSE validator.

use super::*;

fn vduse(v: &mut Validator, index: u64, direction: Direction, bytes: &[u8]) -> Vec<Finding> {
    v.check_event(&Event {
        conn: 3,
        index,
        direction,
        protocol: Protocol::Vduse,
        fds: 0,
        truncated: false,
        bytes,
    })
}

fn vq_request(id: u32, index: u32) -> Vec<u8> {
    let mut buf = vec![0u8; 152];
    encode_request(
        id,
        &RequestBody::GetVqState(&VduseVqState::new_split(index, 0)),
        &mut buf,
    )
    .expect("encode");
    buf
}

fn vq_response(id: u32, result: u32, index: u32) -> Vec<u8> {
    let mut buf = vec![0u8; 152];
    encode_response(
        id,
        result,
        &ResponseBody::GetVqState(&VduseVqState::new_split(index, 9)),
        &mut buf,
    )
    .expect("encode");
    buf
}

#[test]
fn vduse_pairs_by_request_id() {
    let mut v = Validator::new(Profile::Spec);
    none(&vduse(&mut v, 0, C2S, &vq_request(1, 2)));
    let mut status = vec![0u8; 152];
    encode_request(
        2,
        &RequestBody::SetStatus(&VduseDevStatus { status: 0x0f }),
        &mut status,
    )
    .expect("encode");
    none(&vduse(&mut v, 1, C2S, &status));
    // Answered out of order, by request_id.
    let mut ok = vec![0u8; 152];
    encode_response(2, 0, &ResponseBody::Raw(&[0; 128]), &mut ok).expect("encode");
    none(&vduse(&mut v, 2, S2C, &ok));
    none(&vduse(&mut v, 3, S2C, &vq_response(1, 0, 2)));
    only(
        &vduse(&mut v, 4, S2C, &vq_response(1, 0, 2)),
        "vduse-response-unexpected",
        0,
    );
    none(&vduse(&mut v, 5, C2S, &vq_request(7, 0)));
    only(
        &vduse(&mut v, 6, C2S, &vq_request(7, 0)),
        "vduse-duplicate-id",
        4,
    );
    let f = v.finish();
    assert_eq!(
        pairs(&f),
        vec![("request-unanswered", 0), ("request-unanswered", 0)]
    );
    assert_eq!((f[0].index, f[1].index), (5, 6));
}

#[test]
fn vduse_fields() {
    let mut v = Validator::new(Profile::Spec);
    let mut req = vq_request(1, 2);
    req[16] = 1;
    only(&vduse(&mut v, 0, C2S, &req), "vduse-reserved", 16);
    only(
        &vduse(&mut v, 1, S2C, &vq_response(1, 2, 2)),
        "vduse-result",
        4,
    );
    none(&vduse(&mut v, 2, C2S, &vq_request(2, 2)));
    only(
        &vduse(&mut v, 3, S2C, &vq_response(2, 0, 3)),
        "vduse-vq-index",
        24,
    );
    let mut req = vq_request(3, 2);
    req[24 + 40] = 1;
    only(&vduse(&mut v, 4, C2S, &req), "vduse-union-padding", 64);
    let mut resp = vq_response(3, 0, 2);
    resp[24 + 12] = 1;
    only(&vduse(&mut v, 5, S2C, &resp), "vduse-union-padding", 36);
    let mut unknown = vq_request(4, 0);
    unknown[0] = 9;
    let f = vduse(&mut v, 6, C2S, &unknown);
    only(&f, "vduse-unknown-type", 0);
    assert_eq!(f[0].severity, Severity::Info);
    only(
        &vduse(&mut v, 7, C2S, &[0u8; 100]),
        "decode/vduse-size",
        100,
    );
    let f = v.check_event(&Event {
        conn: 3,
        index: 8,
        direction: C2S,
        protocol: Protocol::Vduse,
        fds: 0,
        truncated: true,
        bytes: &[0; 40],
    });
    only(&f, "truncated-message", 40);
}

/// The rule ids of some findings.
fn ids(f: &[Finding]) -> Vec<&'static str> {
    f.iter().map(|x| x.rule.id).collect()
}

fn ioctl(
    v: &mut Validator,
    index: u64,
    request: u32,
    result: i32,
    arg_in: Option<&[u8]>,
    arg_out: Option<&[u8]>,
) -> Vec<Finding> {
    let mut bytes = Vec::new();
    crate::capture::ioctl::IoctlRecord {
        request,
        result,
        arg_in,
        arg_out,
    }
    .encode(&mut bytes);
    v.check_event(&Event {
        conn: 3,
        index,
        direction: Direction::ServerToClient,
        protocol: Protocol::VduseIoctl,
        fds: 0,
        truncated: false,
        bytes: &bytes,
    })
}

/// A VDUSE_CREATE_DEV argument: 2 queues, features 0x1_0000_0004, a 24-byte config space.
fn create_dev() -> Vec<u8> {
    let mut cfg = vec![0u8; 336 + 24];
    cfg[..4].copy_from_slice(b"blk0");
    cfg[264..272].copy_from_slice(&0x1_0000_0004u64.to_ne_bytes());
    cfg[272..276].copy_from_slice(&2u32.to_ne_bytes());
    cfg[332..336].copy_from_slice(&24u32.to_ne_bytes());
    cfg
}

#[test]
fn vduse_ioctls_bound_queues_features_and_config() {
    use vfu_codec::vduse::{
        VDUSE_CREATE_DEV, VDUSE_DEV_GET_FEATURES, VDUSE_DEV_SET_CONFIG, VDUSE_VQ_GET_INFO,
        VDUSE_VQ_SETUP,
    };
    let mut v = Validator::new(Profile::Spec);
    // Before CREATE_DEV nothing is known: no finding for queue 7.
    assert!(
        ids(&vduse(
            &mut v,
            0,
            Direction::ClientToServer,
            &vq_request(1, 7)
        ))
        .is_empty()
    );
    vduse(&mut v, 1, Direction::ServerToClient, &vq_response(1, 0, 7));
    let cfg = create_dev();
    assert!(ioctl(&mut v, 2, VDUSE_CREATE_DEV, 0, Some(&cfg), None).is_empty());
    // Queues 0 and 1 exist, 2 does not.
    let mut vq = [0u8; 32];
    assert!(ioctl(&mut v, 3, VDUSE_VQ_SETUP, 0, Some(&vq), None).is_empty());
    vq[..4].copy_from_slice(&2u32.to_ne_bytes());
    let f = ioctl(&mut v, 4, VDUSE_VQ_SETUP, 0, Some(&vq), None);
    assert_eq!(ids(&f), ["vduse-vq-range"]);
    assert_eq!(f[0].offset, 16);
    let mut info = [0u8; 48];
    info[..4].copy_from_slice(&5u32.to_ne_bytes());
    let f = ioctl(&mut v, 5, VDUSE_VQ_GET_INFO, -22, Some(&info), None);
    assert_eq!(ids(&f), ["vduse-ioctl-failed", "vduse-vq-range"]);
    assert!(f[0].message.contains("EINVAL"), "{}", f[0].message);
    let f = vduse(&mut v, 6, Direction::ClientToServer, &vq_request(2, 3));
    assert_eq!(ids(&f), ["vduse-vq-range"]);
    assert_eq!(f[0].offset, 24);
    // Features: a subset is fine, a bit not offered is not.
    let ok = 0x4u64.to_ne_bytes();
    assert!(ioctl(&mut v, 7, VDUSE_DEV_GET_FEATURES, 0, None, Some(&ok)).is_empty());
    let bad = 0x8000_0004u64.to_ne_bytes();
    let f = ioctl(&mut v, 8, VDUSE_DEV_GET_FEATURES, 0, None, Some(&bad));
    assert_eq!(ids(&f), ["vduse-features"]);
    assert!(f[0].message.contains("0x80000000"), "{}", f[0].message);
    // Config writes: within the 24 bytes, then past them.
    let mut set = vec![0u8; 8 + 4];
    set[..4].copy_from_slice(&20u32.to_ne_bytes());
    set[4..8].copy_from_slice(&4u32.to_ne_bytes());
    assert!(ioctl(&mut v, 9, VDUSE_DEV_SET_CONFIG, 0, Some(&set), None).is_empty());
    set[..4].copy_from_slice(&21u32.to_ne_bytes());
    let f = ioctl(&mut v, 10, VDUSE_DEV_SET_CONFIG, 0, Some(&set), None);
    assert_eq!(ids(&f), ["vduse-config-range"]);
}

#[test]
fn vduse_malformed_ioctl_records_name_the_offset() {
    let mut v = Validator::new(Profile::Spec);
    let f = v.check_event(&Event {
        conn: 3,
        index: 0,
        direction: Direction::ServerToClient,
        protocol: Protocol::VduseIoctl,
        fds: 0,
        truncated: false,
        bytes: &[1, 2, 3],
    });
    assert_eq!(ids(&f), ["vduse-ioctl-record"]);
    assert_eq!(f[0].offset, 3);
}
