#![allow(clippy::unwrap_used)]

extern crate std;

use super::*;
use crate::error::{EncodeError, Rule};
use crate::wire::{Endian, Scalar, WireStruct};
use proptest::prelude::*;
use zerocopy::IntoBytes;
use zerocopy::native_endian::{U32, U64};

/// A GET_VQ_STATE request for queue 2, id 7, as the kernel lays it out on a little-endian host.
static GET_VQ_STATE_LE: [u8; 152] = {
    let mut b = [0u8; 152];
    b[4] = 7; // request_id
    b[24] = 2; // vq_state.index
    b
};

#[test]
#[cfg(target_endian = "little")]
fn parse_get_vq_state() {
    let r = decode_request(&GET_VQ_STATE_LE).unwrap();
    assert_eq!(r.req_type(), VDUSE_GET_VQ_STATE);
    assert_eq!(r.request_id(), 7);
    let RequestBody::GetVqState(s) = r.body else {
        panic!("wrong body {:?}", r.body)
    };
    assert_eq!(s.index.get(), 2);
    assert_eq!(std::format!("{r}"), "VDUSE_GET_VQ_STATE (0) id 7 index 2");
}

#[test]
#[cfg(target_endian = "little")]
fn emit_get_vq_state_sets_every_byte() {
    let mut buf = [0xa5u8; 160];
    let s = VduseVqState {
        index: U32::new(2),
        state: [0; 8],
    };
    let n = encode_request(7, &RequestBody::GetVqState(&s), &mut buf).unwrap();
    assert_eq!(n, 152);
    assert_eq!(&buf[..152], &GET_VQ_STATE_LE[..]);
    assert_eq!(&buf[152..], &[0xa5; 8]);
}

#[test]
fn wrong_sizes() {
    let e = decode_request(&GET_VQ_STATE_LE[..151]).unwrap_err();
    assert_eq!(e.rule, Rule::VduseSize { have: 151 });
    assert_eq!(e.offset, 151);
    let mut long = [0u8; 153];
    long[..152].copy_from_slice(&GET_VQ_STATE_LE);
    let e = decode_response(&long).unwrap_err();
    assert_eq!(e.rule, Rule::VduseSize { have: 153 });
    assert_eq!(e.offset, 152);
    assert!(decode_request(&[]).is_err());
    let s = VduseDevStatus { status: 1 };
    assert_eq!(
        encode_request(1, &RequestBody::SetStatus(&s), &mut [0u8; 151]),
        Err(EncodeError::BufferTooShort {
            need: 152,
            have: 151
        })
    );
}

#[test]
fn views_of_the_unions() {
    let packed = VduseVqStatePacked::new(1, 0x1234, 0, 0x5678);
    let s = VduseVqState::new_packed(9, packed);
    assert_eq!(*s.packed(), packed);
    assert_eq!(s.split().avail_index.get(), 1);
    let s = VduseVqState::new_split(9, 0xbeef);
    assert_eq!(s.split().avail_index.get(), 0xbeef);
    assert_eq!(s.packed().last_avail_idx.get(), 0);
    assert_eq!(s.state[2..], [0; 6]);

    let info = VduseVqInfo {
        state: s.state,
        ..Default::default()
    };
    assert_eq!(info.split().avail_index.get(), 0xbeef);
    assert!(!info.is_ready());
}

#[test]
fn unknown_type_is_kept_raw() {
    let mut raw = [0u8; 128];
    raw[0] = 0xff;
    raw[127] = 1;
    let body = RequestBody::Unknown {
        req_type: 77,
        raw: &raw,
    };
    let mut buf = [0u8; 152];
    encode_request(5, &body, &mut buf).unwrap();
    let r = decode_request(&buf).unwrap();
    assert_eq!(r.body, body);
    assert_eq!(std::format!("{r}"), "VDUSE request type 77 id 5");
}

#[test]
fn dev_config_name() {
    let mut c = VduseDevConfig::default();
    assert!(c.set_name(b"vduse-blk0"));
    assert_eq!(c.name_str(), Some("vduse-blk0"));
    assert!(!c.set_name(&[b'a'; 256]));
    assert!(!c.set_name(b"a\0b"));
    assert!(c.set_name(&[b'a'; 255]));
    assert_eq!(c.name_bytes().len(), 255);
}

#[test]
fn ioctl_numbers() {
    // Worked by hand from _IOC: dir << 30 | size << 16 | 0x81 << 8 | nr.
    assert_eq!(VDUSE_GET_API_VERSION, 0x8008_8100);
    assert_eq!(VDUSE_SET_API_VERSION, 0x4008_8101);
    assert_eq!(VDUSE_CREATE_DEV, 0x4150_8102);
    assert_eq!(VDUSE_DESTROY_DEV, 0x4100_8103);
    assert_eq!(VDUSE_IOTLB_GET_FD, 0xc020_8110);
    assert_eq!(VDUSE_DEV_INJECT_CONFIG_IRQ, 0x0000_8113);
    assert_eq!(VDUSE_VQ_GET_INFO, 0xc030_8115);
    assert_eq!(VDUSE_IOTLB_GET_INFO, 0xc030_811a);
    let d = IoctlNumber::decode(VDUSE_VQ_SETUP);
    assert_eq!(
        d,
        IoctlNumber {
            dir: IoctlDir::WRITE,
            ty: 0x81,
            nr: 0x14,
            size: 32
        }
    );
    for i in VDUSE_IOCTLS {
        let d = IoctlNumber::decode(i.number);
        assert_eq!(d.ty, VDUSE_BASE, "{}", i.name);
        assert_eq!(usize::from(d.size), i.arg.size(), "{}", i.name);
        assert_eq!(vduse_ioctl(i.number), Some(i), "numbers are unique");
    }
    assert_eq!(VDUSE_IOCTLS.len(), 15);
}

#[test]
fn field_tables_are_native_endian() {
    let native = if cfg!(target_endian = "little") {
        Endian::Little
    } else {
        Endian::Big
    };
    for l in LAYOUTS {
        for f in l.fields {
            if let Scalar::U16(e) | Scalar::U32(e) | Scalar::U64(e) | Scalar::I32(e) = f.scalar {
                assert_eq!(e, native, "{}.{}", l.name, f.name);
            }
        }
    }
    assert_eq!(VduseVqEventfd::FIELDS[1].scalar, Scalar::I32(native));
}

fn vq_state() -> impl Strategy<Value = VduseVqState> {
    (any::<u32>(), any::<[u8; 8]>()).prop_map(|(i, s)| VduseVqState {
        index: U32::new(i),
        state: s,
    })
}

#[derive(Debug, Clone)]
enum OwnedBody {
    GetVqState(VduseVqState),
    SetStatus(VduseDevStatus),
    UpdateIotlb(VduseIovaRange),
    SetVqGroupAsid(VduseVqGroupAsid),
    Unknown(u32, [u8; 128]),
}

impl OwnedBody {
    fn view(&self) -> RequestBody<'_> {
        match self {
            OwnedBody::GetVqState(s) => RequestBody::GetVqState(s),
            OwnedBody::SetStatus(s) => RequestBody::SetStatus(s),
            OwnedBody::UpdateIotlb(r) => RequestBody::UpdateIotlb(r),
            OwnedBody::SetVqGroupAsid(g) => RequestBody::SetVqGroupAsid(g),
            OwnedBody::Unknown(t, raw) => RequestBody::Unknown { req_type: *t, raw },
        }
    }
}

fn owned_body() -> impl Strategy<Value = OwnedBody> {
    prop_oneof![
        vq_state().prop_map(OwnedBody::GetVqState),
        any::<u8>().prop_map(|status| OwnedBody::SetStatus(VduseDevStatus { status })),
        (any::<u64>(), any::<u64>()).prop_map(|(s, l)| OwnedBody::UpdateIotlb(VduseIovaRange {
            start: U64::new(s),
            last: U64::new(l)
        })),
        (any::<u32>(), any::<u32>()).prop_map(|(g, a)| OwnedBody::SetVqGroupAsid(
            VduseVqGroupAsid {
                group: U32::new(g),
                asid: U32::new(a)
            }
        )),
        (4u32.., proptest::collection::vec(any::<u8>(), 128)).prop_map(|(t, v)| {
            let mut raw = [0u8; 128];
            raw.copy_from_slice(&v);
            OwnedBody::Unknown(t, raw)
        }),
    ]
}

proptest! {
    #[test]
    fn request_roundtrip(id in any::<u32>(), body in owned_body()) {
        let body = body.view();
        let mut buf = [0xa5u8; 152];
        prop_assert_eq!(encode_request(id, &body, &mut buf), Ok(152));
        let r = decode_request(&buf).unwrap();
        prop_assert_eq!(r.request_id(), id);
        prop_assert_eq!(r.req_type(), body.req_type());
        prop_assert_eq!(r.body, body);
        prop_assert_eq!(r.raw.reserved, [U32::ZERO; 4]);
        prop_assert_eq!(r.raw.payload, body.payload());
    }

    #[test]
    fn response_roundtrip(id in any::<u32>(), result in 0u32..3, s in vq_state(),
                          raw in proptest::collection::vec(any::<u8>(), 128), get in any::<bool>()) {
        let mut bytes = [0u8; 128];
        bytes.copy_from_slice(&raw);
        let body = if get { ResponseBody::GetVqState(&s) } else { ResponseBody::Raw(&bytes) };
        let mut buf = [0xa5u8; 152];
        prop_assert_eq!(encode_response(id, result, &body, &mut buf), Ok(152));
        let r = decode_response(&buf).unwrap();
        prop_assert_eq!(r.request_id.get(), id);
        prop_assert_eq!(r.result.get(), result);
        prop_assert_eq!(r.is_ok(), result == VDUSE_REQ_RESULT_OK);
        let t = if get { VDUSE_GET_VQ_STATE } else { VDUSE_SET_STATUS };
        prop_assert_eq!(r.body(t), body);
        if get {
            prop_assert_eq!(r.vq_state(), &s);
            prop_assert_eq!(&r.payload[12..], &[0u8; 116][..]);
        }
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let ok = bytes.len() == 152;
        prop_assert_eq!(decode_request(&bytes).is_ok(), ok);
        prop_assert_eq!(decode_response(&bytes).is_ok(), ok);
        if let Ok(r) = decode_request(&bytes) {
            // Re-encoding the raw struct gives the input back.
            prop_assert_eq!(r.raw.as_bytes(), &bytes[..]);
        }
    }

    #[test]
    fn ioctl_number_roundtrip(n in any::<u32>()) {
        prop_assert_eq!(IoctlNumber::decode(n).encode(), n);
    }

    #[test]
    fn ioc_fields_roundtrip(dir in 0u8..4, ty in any::<u8>(), nr in any::<u8>(), size in 0usize..(1 << 14)) {
        let n = ioc(IoctlDir(dir), ty, nr, size);
        prop_assert_eq!(IoctlNumber::decode(n), IoctlNumber { dir: IoctlDir(dir), ty, nr, size: size as u16 });
    }
}
