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
