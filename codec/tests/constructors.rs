//! The constructors of the request and reply structs: the bytes they give match the spec's tables, and
//! the `argsz` they set is the one the spec gives, so that `encode_exact` (every field as given) and
//! `encode` (argsz computed) write the same message for what they build.

#![allow(clippy::unwrap_used)] // test code: a failure is a test failure

use vfu_codec::vfio::caps::Version;
use vfu_codec::vfio::migration::MigState;
use vfu_codec::vfio::*;
use vfu_codec::*;
use zerocopy::IntoBytes;

/// Every constructor's struct, as a message, with the payload bytes the spec's table gives.
#[test]
fn constructed_payloads_match_the_spec_tables() {
    let v = Version::new(0, 1);
    let json = br#"{"capabilities":{"max_msg_fds":8}}"#;
    let info = DeviceInfo::reply(VFIO_DEVICE_FLAGS_RESET | VFIO_DEVICE_FLAGS_PCI, 9, 5);
    let unmap = DmaUnmap::new(0, 0x1_0000, 0x2000);
    let irq = IrqSet::new(
        VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER,
        2,
        1,
        3,
    );
    let mig = MigData::new(5);
    let state = FeatureMigState::new(MigState::STOP_COPY.into());
    let head = DeviceFeature::new(
        VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
        VFIO_DEVICE_FEATURE_SET,
    );
    let cases: Vec<(Header, Body<'_>, Vec<u8>)> = vec![
        // §2.1: major 0, minor 1, then the JSON and its NUL.
        (
            Header::command(1, Command::VERSION),
            Body::Version(VersionBody::new(&v, Some(json))),
            [&[0, 0, 1, 0][..], json, &[0]].concat(),
        ),
        // §2.4 reply: argsz 16, flags RESET|PCI, 9 regions, 5 IRQs.
        (
            Header::reply(2, Command::DEVICE_GET_INFO),
            Body::DeviceInfo(&info),
            le32(&[16, 3, 9, 5]),
        ),
        // §2.3: argsz 24, flags 0, address, size.
        (
            Header::command(3, Command::DMA_UNMAP),
            Body::DmaUnmap {
                unmap: &unmap,
                bitmap: None,
                data: &[],
            },
            [le32(&[24, 0]), le64(&[0x1_0000, 0x2000])].concat(),
        ),
        // §2.8: argsz 20 + count for DATA_BOOL, flags BOOL|TRIGGER (0x22), index 2, start 1, count 3.
        (
            Header::command(4, Command::DEVICE_SET_IRQS),
            Body::SetIrqs {
                set: &irq,
                data: &[1, 0, 1],
            },
            [le32(&[23, 0x22, 2, 1, 3]), vec![1, 0, 1]].concat(),
        ),
        // §2.17: argsz 8 + size, size, data.
        (
            Header::command(5, Command::MIG_DATA_WRITE),
            Body::MigData {
                head: &mig,
                data: b"state",
            },
            [le32(&[13, 5]), b"state".to_vec()].concat(),
        ),
        // §2.15 MIG_DEVICE_STATE SET: argsz 16, flags SET|2, device_state STOP_COPY (3), data_fd 0.
        (
            Header::command(6, Command::DEVICE_FEATURE),
            Body::DeviceFeature {
                head: &head,
                data: FeatureData::MigState(&state),
            },
            le32(&[16, 0x2_0002, 3, 0]),
        ),
    ];
    for (h, b, payload) in cases {
        let bytes = enc(&h, &b);
        assert_eq!(&bytes[16..], &payload[..], "{}", b.name());
        let m = decode(&bytes, Direction::ClientToServer).unwrap();
        assert_eq!(m.body.name(), b.name());
        assert_eq!(encode_to_bytes_exact(&m), bytes);
    }
}

/// What the constructors build, encoded with every field as given, is what `encode` writes with argsz
/// computed: the constructors set the spec's argsz themselves.
#[test]
fn constructors_set_the_argsz_encode_computes() {
    let map = DmaMap::new(VFIO_USER_F_DMA_REGION_READ, 0, 0x1000, 0x1000);
    let unmap = DmaUnmap::new(0, 0x1000, 0x1000);
    let all = DmaUnmap::all();
    let info_req = DeviceInfo::request();
    let info = DeviceInfo::reply(3, 9, 5);
    let region_req = RegionInfo::request(7, 32);
    let region = RegionInfo::reply(7, VFIO_REGION_INFO_FLAG_READ, 0x1000, 0);
    let io_req = RegionIoFds::request(0, 16 + 40);
    let io = RegionIoFds::reply(0, 0);
    let irq_req = IrqInfo::request(1);
    let irq = IrqInfo::reply(1, 1, 32);
    let set = IrqSet::new(
        VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
        0,
        0,
        1,
    );
    let bools = IrqSet::new(VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_MASK, 1, 0, 2);
    let mig_req = MigData::new(64);
    let mig = MigData::new(3);
    let pre_req = PrecopyInfo::request();
    let pre = PrecopyInfo::reply(1 << 20, 4096);
    let dirty = DirtyPages::new(VFIO_IOMMU_DIRTY_PAGES_FLAG_START);
    let cases: Vec<(Header, Body<'_>)> = vec![
        (Header::command(1, Command::DMA_MAP), Body::DmaMap(&map)),
        (
            Header::command(1, Command::DMA_UNMAP),
            Body::DmaUnmap {
                unmap: &all,
                bitmap: None,
                data: &[],
            },
        ),
        (
            Header::reply(1, Command::DMA_UNMAP),
            Body::DmaUnmap {
                unmap: &unmap,
                bitmap: None,
                data: &[],
            },
        ),
        (
            Header::command(1, Command::DEVICE_GET_INFO),
            Body::DeviceInfo(&info_req),
        ),
        (
            Header::reply(1, Command::DEVICE_GET_INFO),
            Body::DeviceInfo(&info),
        ),
        (
            Header::command(1, Command::DEVICE_GET_REGION_INFO),
            Body::RegionInfo {
                info: &region_req,
                caps: &[],
            },
        ),
        (
            Header::reply(1, Command::DEVICE_GET_REGION_INFO),
            Body::RegionInfo {
                info: &region,
                caps: &[],
            },
        ),
        (
            Header::command(1, Command::DEVICE_GET_REGION_IO_FDS),
            Body::RegionIoFds {
                head: &io_req,
                entries: IoFdEntries::Spec(&[]),
            },
        ),
        (
            Header::reply(1, Command::DEVICE_GET_REGION_IO_FDS),
            Body::RegionIoFds {
                head: &io,
                entries: IoFdEntries::Spec(&[]),
            },
        ),
        (
            Header::command(1, Command::DEVICE_GET_IRQ_INFO),
            Body::IrqInfo(&irq_req),
        ),
        (
            Header::reply(1, Command::DEVICE_GET_IRQ_INFO),
            Body::IrqInfo(&irq),
        ),
        (
            Header::command(1, Command::DEVICE_SET_IRQS),
            Body::SetIrqs {
                set: &set,
                data: &[],
            },
        ),
        (
            Header::command(1, Command::DEVICE_SET_IRQS),
            Body::SetIrqs {
                set: &bools,
                data: &[1, 1],
            },
        ),
        (
            Header::command(1, Command::MIG_DATA_READ),
            Body::MigData {
                head: &mig_req,
                data: &[],
            },
        ),
        (
            Header::reply(1, Command::MIG_DATA_READ),
            Body::MigData {
                head: &mig,
                data: b"abc",
            },
        ),
        (
            Header::command(1, Command::MIG_DATA_WRITE),
            Body::MigData {
                head: &mig,
                data: b"abc",
            },
        ),
        (
            Header::command(1, Command::GET_PRECOPY_INFO),
            Body::PrecopyInfo(&pre_req),
        ),
        (
            Header::reply(1, Command::GET_PRECOPY_INFO),
            Body::PrecopyInfo(&pre),
        ),
        (
            Header::command(1, Command::DIRTY_PAGES),
            Body::DirtyPages {
                head: &dirty,
                range: None,
                bitmap: &[],
            },
        ),
    ];
    for (h, b) in cases {
        let mut exact = vec![0xa5u8; 256];
        let mut computed = vec![0x5au8; 256];
        let n = encode_exact(&h, &b, &[], &mut exact).unwrap();
        let k = encode(&h, &b, &mut computed).unwrap();
        assert_eq!(
            &exact[..n],
            &computed[..k],
            "{} {:?}",
            b.name(),
            h.message_type()
        );
    }
}

/// A region-info reply with a capability chain: `with_caps` sets CAPS and the offset, and the decoder
/// walks the chain to the capabilities the constructors built.
#[test]
fn region_info_reply_with_capabilities() {
    let info = RegionInfo::reply(
        0,
        VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_MMAP,
        0x4000,
        0,
    )
    .with_caps(32);
    assert_eq!(
        info.flags.get(),
        VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS
    );
    // A SPARSE_MMAP with two areas at payload offset 32, then a TYPE at 32 + 16 + 32 = 80.
    let area = [
        CapSparseMmap::new(80, 2).as_bytes(),
        SparseMmapArea::new(0, 0x1000).as_bytes(),
        SparseMmapArea::new(0x3000, 0x1000).as_bytes(),
        CapType::new(0, 0x8086_0000, 1).as_bytes(),
    ]
    .concat();
    let bytes = enc(
        &Header::reply(9, Command::DEVICE_GET_REGION_INFO),
        &Body::RegionInfo {
            info: &info,
            caps: &area,
        },
    );
    let m = decode(&bytes, Direction::ServerToClient).unwrap();
    let Body::RegionInfo { info: got, .. } = m.body else {
        panic!("not region info: {:?}", m.body)
    };
    assert_eq!(got.argsz.get(), 32 + 64, "encode sets the full size");
    let caps: Vec<RegionCap<'_>> = m.body.region_caps().unwrap().map(|c| c.unwrap()).collect();
    assert_eq!(caps.len(), 2);
    let RegionCap::SparseMmap { at, head, areas } = caps[0] else {
        panic!("{:?}", caps[0])
    };
    assert_eq!((at, head.nr_areas.get(), head.version.get()), (32, 2, 1));
    assert_eq!(areas[1], SparseMmapArea::new(0x3000, 0x1000));
    let RegionCap::Type { at, cap } = caps[1] else {
        panic!("{:?}", caps[1])
    };
    assert_eq!(
        (at, cap.region_type.get(), cap.subtype.get()),
        (80, 0x8086_0000, 1)
    );
    assert_eq!(
        CapHeader::new(VFIO_REGION_INFO_CAP_TYPE, 1, 0).as_bytes(),
        &cap.as_bytes()[..8]
    );
}

/// REGION_WRITE_MULTI entries hold 1 to 8 bytes; a longer write is refused, not cut.
#[test]
fn region_write_entries() {
    let e = RegionWriteEntry::new(2, 0x40, &[1, 2, 3]).unwrap();
    assert_eq!((e.count.get(), e.written()), (3, &[1u8, 2, 3][..]));
    assert_eq!(e.data, [1, 2, 3, 0, 0, 0, 0, 0]);
    assert!(RegionWriteEntry::new(0, 0, &[0; 8]).is_some());
    assert!(RegionWriteEntry::new(0, 0, &[0; 9]).is_none());
    let entries = [e, RegionWriteEntry::new(2, 0x48, &[9; 8]).unwrap()];
    let head = RegionWriteMulti::new(2);
    let bytes = enc(
        &Header::command(1, Command::REGION_WRITE_MULTI),
        &Body::WriteMulti {
            head: &head,
            entries: &entries,
        },
    );
    assert_eq!(bytes.len(), 16 + 8 + 2 * 24);
    let m = decode(&bytes, Direction::ClientToServer).unwrap();
    assert_eq!(
        m.body,
        Body::WriteMulti {
            head: &head,
            entries: &entries
        }
    );
}

/// The IO_FDS entries in both layouts, and the feature, logging and legacy structs, field by field.
#[test]
fn entry_feature_and_legacy_fields() {
    let e = IoFdEntry::new(0x10, 4, 1, 0, 1, 0xdead);
    let s = IoFdShadowEntry::new(&e, 2, 0x800);
    assert_eq!(
        (
            s.gpa_offset.get(),
            s.size.get(),
            s.fd_index.get(),
            s.flags.get()
        ),
        (0x10, 4, 1, 1)
    );
    assert_eq!(
        (
            s.shadow_mem_fd_index.get(),
            s.shadow_offset.get(),
            s.datamatch.get()
        ),
        (2, 0x800, 0xdead)
    );
    assert_eq!(e.as_bytes()[28..32], [0; 4], "padding");
    assert_eq!(FeatureMigration::new(5).flags.get(), 5);
    let c = DmaLoggingControl::new(4096, 1);
    assert_eq!(
        (c.page_size.get(), c.num_ranges.get(), c.reserved.get()),
        (4096, 1, 0)
    );
    let r = DmaLoggingRange::new(0x1000, 0x2000);
    assert_eq!((r.iova.get(), r.length.get()), (0x1000, 0x2000));
    let rep = DmaLoggingReport::new(0, 0x10000, 4096);
    assert_eq!(rep.as_bytes(), &le64(&[0, 0x10000, 4096])[..]);
    let b = DirtyBitmap::new(4096, 8);
    assert_eq!(b.as_bytes(), &le64(&[4096, 8])[..]);
    let range = DirtyPagesRange::new(0x1000, 0x8000, 4096, 8);
    assert_eq!(range.as_bytes(), &le64(&[0x1000, 0x8000, 4096, 8])[..]);
    let f = SparseMmapFdArea::new(0x1000, 0, 0x1000, 3);
    assert_eq!((f.fd_index.get(), f.pad.get()), (3, 0));
    let fds = CapSparseMmapFds::new(0, 1);
    assert_eq!(
        (fds.id.get(), fds.version.get(), fds.nr_areas.get()),
        (VFIO_REGION_INFO_CAP_SPARSE_MMAP_FDS, 1, 1)
    );
    assert_eq!(DmaUnmap::all().flags.get(), VFIO_DMA_UNMAP_FLAG_ALL);
    assert_eq!(Version::new(0, 2), Version::new(0, 2));
    assert_eq!(Version::new(0, 2).as_bytes(), &[0, 0, 2, 0]);
}

/// Re-encodes a decoded message with every field as given.
fn encode_to_bytes_exact(m: &Message<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let n = encode_exact(m.header, &m.body, m.trailing, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// Encodes with argsz computed, into a vector of the message's length.
fn enc(h: &Header, b: &Body<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let n = encode(h, b, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn le32(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn le64(v: &[u64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
