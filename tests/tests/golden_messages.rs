//! Golden messages: one file per command and direction (and the notable variants), in
//! `corpus/messages/`, named `<command>-<request|reply>[-variant].bin`. They are built here with the
//! codec's encoder; the test checks the committed files still equal what the encoder writes
//! (`VFU_BLESS=1` rewrites them), that each decodes to the command and type its name says, and that each
//! re-encodes byte for byte. The fuzzers use them as seeds.

use vfu_codec::vfio::caps::Version;
use vfu_codec::vfio::*;
use vfu_codec::{
    Body, Command, Direction, FeatureData, Header, VersionBody, decode, encode, encode_exact,
};
use zerocopy::IntoBytes;
use zerocopy::little_endian::{U16, U32, U64};

const QEMU_CAPS: &str = r#"{"capabilities":{"migration":{"pgsize":4096,"max_bitmap_size":268435456},"max_msg_fds":16,"max_data_xfer_size":1048576,"pgsizes":4096,"max_dma_maps":65535,"write_multiple":true}}"#;
const LVU_CAPS: &str = r#"{"capabilities":{"max_msg_fds":8,"max_data_xfer_size":1048576,"migration":{"pgsize":4096}}}"#;

fn u32le(v: u32) -> U32 {
    U32::new(v)
}

fn u64le(v: u64) -> U64 {
    U64::new(v)
}

/// Every golden message: (file name, direction, bytes).
fn messages() -> Vec<(String, Direction, Vec<u8>)> {
    let mut out = Vec::new();
    let c2s = Direction::ClientToServer;
    let s2c = Direction::ServerToClient;
    let mut add = |name: &str, dir: Direction, h: Header, b: Body<'_>| {
        let mut buf = vec![0u8; 8192];
        let n = encode(&h, &b, &mut buf).expect("encode golden message");
        buf.truncate(n);
        out.push((format!("{name}.bin"), dir, buf));
    };
    let cmd = |id, c| Header::command(id, c);
    let rep = |id, c| Header::reply(id, c);

    let v = Version {
        major: U16::new(0),
        minor: U16::new(2),
    };
    add(
        "version-request",
        c2s,
        cmd(0, Command::VERSION),
        Body::Version(VersionBody {
            version: &v,
            json: Some(QEMU_CAPS.as_bytes()),
        }),
    );
    add(
        "version-request-no-caps",
        c2s,
        cmd(0, Command::VERSION),
        Body::Version(VersionBody {
            version: &v,
            json: None,
        }),
    );
    add(
        "version-reply",
        s2c,
        rep(0, Command::VERSION),
        Body::Version(VersionBody {
            version: &v,
            json: Some(LVU_CAPS.as_bytes()),
        }),
    );

    let map = DmaMap::new(
        VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE,
        0,
        0x1_0000_0000,
        0x20_0000,
    );
    add(
        "dma_map-request",
        c2s,
        cmd(1, Command::DMA_MAP),
        Body::DmaMap(&map),
    );
    add("dma_map-reply", s2c, rep(1, Command::DMA_MAP), Body::Empty);

    let unmap = DmaUnmap {
        argsz: u32le(24),
        flags: u32le(0),
        address: u64le(0x1_0000_0000),
        size: u64le(0x20_0000),
    };
    add(
        "dma_unmap-request",
        c2s,
        cmd(2, Command::DMA_UNMAP),
        Body::DmaUnmap {
            unmap: &unmap,
            bitmap: None,
            data: &[],
        },
    );
    add(
        "dma_unmap-reply",
        s2c,
        rep(2, Command::DMA_UNMAP),
        Body::DmaUnmap {
            unmap: &unmap,
            bitmap: None,
            data: &[],
        },
    );
    let all = DmaUnmap {
        argsz: u32le(24),
        flags: u32le(VFIO_DMA_UNMAP_FLAG_ALL),
        address: u64le(0),
        size: u64le(0),
    };
    add(
        "dma_unmap-request-unmap-all",
        c2s,
        cmd(3, Command::DMA_UNMAP),
        Body::DmaUnmap {
            unmap: &all,
            bitmap: None,
            data: &[],
        },
    );
    let dirty = DmaUnmap {
        flags: u32le(VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP),
        ..unmap
    };
    let bm = DirtyBitmap {
        pgsize: u64le(4096),
        size: u64le(64),
    };
    let bits = [0x5au8; 64];
    add(
        "dma_unmap-request-dirty-bitmap",
        c2s,
        cmd(4, Command::DMA_UNMAP),
        Body::DmaUnmap {
            unmap: &dirty,
            bitmap: Some(&bm),
            data: &[],
        },
    );
    add(
        "dma_unmap-reply-dirty-bitmap",
        s2c,
        rep(4, Command::DMA_UNMAP),
        Body::DmaUnmap {
            unmap: &dirty,
            bitmap: Some(&bm),
            data: &bits,
        },
    );

    let info_req = DeviceInfo {
        argsz: u32le(16),
        ..Default::default()
    };
    let info = DeviceInfo {
        argsz: u32le(16),
        flags: u32le(VFIO_DEVICE_FLAGS_RESET | VFIO_DEVICE_FLAGS_PCI),
        num_regions: u32le(9),
        num_irqs: u32le(5),
    };
    add(
        "device_get_info-request",
        c2s,
        cmd(5, Command::DEVICE_GET_INFO),
        Body::DeviceInfo(&info_req),
    );
    add(
        "device_get_info-reply",
        s2c,
        rep(5, Command::DEVICE_GET_INFO),
        Body::DeviceInfo(&info),
    );

    let ri_req = RegionInfo {
        argsz: u32le(80),
        index: u32le(2),
        ..Default::default()
    };
    add(
        "device_get_region_info-request",
        c2s,
        cmd(6, Command::DEVICE_GET_REGION_INFO),
        Body::RegionInfo {
            info: &ri_req,
            caps: &[],
        },
    );
    let ri = RegionInfo {
        argsz: u32le(64),
        flags: u32le(
            VFIO_REGION_INFO_FLAG_READ
                | VFIO_REGION_INFO_FLAG_WRITE
                | VFIO_REGION_INFO_FLAG_MMAP
                | VFIO_REGION_INFO_FLAG_CAPS,
        ),
        index: u32le(2),
        cap_offset: u32le(32),
        size: u64le(0x4000),
        offset: u64le(0),
    };
    let mut caps = CapSparseMmap {
        id: U16::new(1),
        version: U16::new(1),
        next: u32le(0),
        nr_areas: u32le(1),
        reserved: u32le(0),
    }
    .as_bytes()
    .to_vec();
    caps.extend_from_slice(
        SparseMmapArea {
            offset: u64le(0),
            size: u64le(0x4000),
        }
        .as_bytes(),
    );
    add(
        "device_get_region_info-reply-sparse-mmap",
        s2c,
        rep(6, Command::DEVICE_GET_REGION_INFO),
        Body::RegionInfo {
            info: &ri,
            caps: &caps,
        },
    );
    let ri_t = RegionInfo {
        argsz: u32le(48),
        flags: u32le(VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_CAPS),
        index: u32le(9),
        size: u64le(0x1000),
        ..ri
    };
    let tcap = CapType {
        id: U16::new(2),
        version: U16::new(1),
        next: u32le(0),
        region_type: u32le(3),
        subtype: u32le(1),
    };
    add(
        "device_get_region_info-reply-type-cap",
        s2c,
        rep(7, Command::DEVICE_GET_REGION_INFO),
        Body::RegionInfo {
            info: &ri_t,
            caps: tcap.as_bytes(),
        },
    );
    let ri_cut = RegionInfo {
        argsz: u32le(64),
        flags: u32le(
            VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP,
        ),
        cap_offset: u32le(0),
        ..ri
    };
    add(
        "device_get_region_info-reply-cut-to-fixed-part",
        s2c,
        rep(8, Command::DEVICE_GET_REGION_INFO),
        Body::RegionInfo {
            info: &ri_cut,
            caps: &[],
        },
    );

    let iof_req = RegionIoFds {
        argsz: u32le(16 + 48),
        index: u32le(0),
        ..Default::default()
    };
    add(
        "device_get_region_io_fds-request",
        c2s,
        cmd(9, Command::DEVICE_GET_REGION_IO_FDS),
        Body::RegionIoFds {
            head: &iof_req,
            entries: IoFdEntries::Spec(&[]),
        },
    );
    let spec_e = [IoFdEntry {
        offset: u64le(0x1000),
        size: u64le(4),
        fd_index: u32le(0),
        entry_type: u32le(0),
        flags: u32le(1),
        padding: u32le(0),
        datamatch: u64le(7),
    }];
    let head40 = RegionIoFds {
        argsz: u32le(16 + 40),
        flags: u32le(0),
        index: u32le(0),
        count: u32le(1),
    };
    add(
        "device_get_region_io_fds-reply-spec-40",
        s2c,
        rep(9, Command::DEVICE_GET_REGION_IO_FDS),
        Body::RegionIoFds {
            head: &head40,
            entries: IoFdEntries::Spec(&spec_e),
        },
    );
    let sh = [IoFdShadowEntry {
        gpa_offset: u64le(0x1000),
        size: u64le(4),
        fd_index: u32le(0),
        entry_type: u32le(2),
        flags: u32le(0),
        shadow_mem_fd_index: u32le(1),
        shadow_offset: u64le(0),
        datamatch: u64le(0),
    }];
    let head48 = RegionIoFds {
        argsz: u32le(16 + 48),
        count: u32le(1),
        ..head40
    };
    add(
        "device_get_region_io_fds-reply-libvfio-user-48",
        s2c,
        rep(10, Command::DEVICE_GET_REGION_IO_FDS),
        Body::RegionIoFds {
            head: &head48,
            entries: IoFdEntries::Shadow(&sh),
        },
    );

    let irq_req = IrqInfo {
        argsz: u32le(16),
        index: u32le(2),
        ..Default::default()
    };
    let irq = IrqInfo {
        argsz: u32le(16),
        flags: u32le(1),
        index: u32le(2),
        count: u32le(32),
    };
    add(
        "device_get_irq_info-request",
        c2s,
        cmd(11, Command::DEVICE_GET_IRQ_INFO),
        Body::IrqInfo(&irq_req),
    );
    add(
        "device_get_irq_info-reply",
        s2c,
        rep(11, Command::DEVICE_GET_IRQ_INFO),
        Body::IrqInfo(&irq),
    );

    let set_ev = IrqSet {
        argsz: u32le(20),
        flags: u32le(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER),
        index: u32le(2),
        start: u32le(0),
        count: u32le(2),
    };
    add(
        "device_set_irqs-request-eventfd",
        c2s,
        cmd(12, Command::DEVICE_SET_IRQS),
        Body::SetIrqs {
            set: &set_ev,
            data: &[],
        },
    );
    let set_b = IrqSet {
        flags: u32le(VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_MASK),
        count: u32le(4),
        ..set_ev
    };
    add(
        "device_set_irqs-request-bool",
        c2s,
        cmd(13, Command::DEVICE_SET_IRQS),
        Body::SetIrqs {
            set: &set_b,
            data: &[1, 0, 1, 1],
        },
    );
    add(
        "device_set_irqs-reply",
        s2c,
        rep(12, Command::DEVICE_SET_IRQS),
        Body::Empty,
    );

    let rd = RegionAccess::new(0, 0x10, 4);
    add(
        "region_read-request",
        c2s,
        cmd(14, Command::REGION_READ),
        Body::RegionRw {
            access: &rd,
            data: &[],
        },
    );
    add(
        "region_read-reply",
        s2c,
        rep(14, Command::REGION_READ),
        Body::RegionRw {
            access: &rd,
            data: &[0xde, 0xad, 0xbe, 0xef],
        },
    );
    let wr = RegionAccess::new(1, 0x100, 8);
    add(
        "region_write-request",
        c2s,
        cmd(15, Command::REGION_WRITE),
        Body::RegionRw {
            access: &wr,
            data: b"vfu-dump",
        },
    );
    add(
        "region_write-reply",
        s2c,
        rep(15, Command::REGION_WRITE),
        Body::RegionRw {
            access: &wr,
            data: &[],
        },
    );

    let dr = DmaAccess::new(0x1_0000_0000, 16);
    add(
        "dma_read-request",
        s2c,
        cmd(1, Command::DMA_READ),
        Body::DmaRw {
            access: &dr,
            data: &[],
        },
    );
    add(
        "dma_read-reply",
        c2s,
        rep(1, Command::DMA_READ),
        Body::DmaRw {
            access: &dr,
            data: &[0x11; 16],
        },
    );
    add(
        "dma_write-request",
        s2c,
        cmd(2, Command::DMA_WRITE),
        Body::DmaRw {
            access: &dr,
            data: &[0x22; 16],
        },
    );
    add(
        "dma_write-reply",
        c2s,
        rep(2, Command::DMA_WRITE),
        Body::DmaRw {
            access: &dr,
            data: &[],
        },
    );

    add(
        "device_reset-request",
        c2s,
        cmd(16, Command::DEVICE_RESET),
        Body::Empty,
    );
    add(
        "device_reset-reply",
        s2c,
        rep(16, Command::DEVICE_RESET),
        Body::Empty,
    );

    let dp_start = DirtyPages {
        argsz: u32le(8),
        flags: u32le(VFIO_IOMMU_DIRTY_PAGES_FLAG_START),
    };
    add(
        "dirty_pages-request-start",
        c2s,
        cmd(17, Command::DIRTY_PAGES),
        Body::DirtyPages {
            head: &dp_start,
            range: None,
            bitmap: &[],
        },
    );
    add(
        "dirty_pages-reply-start",
        s2c,
        rep(17, Command::DIRTY_PAGES),
        Body::DirtyPages {
            head: &dp_start,
            range: None,
            bitmap: &[],
        },
    );
    let dp_get = DirtyPages {
        argsz: u32le(8 + 32 + 8),
        flags: u32le(VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP),
    };
    let range = DirtyPagesRange {
        iova: u64le(0x1_0000_0000),
        size: u64le(0x40000),
        pgsize: u64le(4096),
        bitmap_size: u64le(8),
    };
    add(
        "dirty_pages-request-get-bitmap",
        c2s,
        cmd(18, Command::DIRTY_PAGES),
        Body::DirtyPages {
            head: &dp_get,
            range: Some(&range),
            bitmap: &[],
        },
    );
    add(
        "dirty_pages-reply-get-bitmap",
        s2c,
        rep(18, Command::DIRTY_PAGES),
        Body::DirtyPages {
            head: &dp_get,
            range: Some(&range),
            bitmap: &[0xff, 0, 0, 0, 0, 0, 0, 0x80],
        },
    );

    let wm = RegionWriteMulti { wr_cnt: u64le(2) };
    let entries = [
        RegionWriteEntry {
            offset: u64le(0x10),
            region: u32le(0),
            count: u32le(4),
            data: *b"\x01\x00\x00\x00\x00\x00\x00\x00",
        },
        RegionWriteEntry {
            offset: u64le(0x14),
            region: u32le(0),
            count: u32le(2),
            data: *b"\xff\xff\x00\x00\x00\x00\x00\x00",
        },
    ];
    add(
        "region_write_multi-request",
        c2s,
        Header::new(19, Command::REGION_WRITE_MULTI, 0x10, 0),
        Body::WriteMulti {
            head: &wm,
            entries: &entries,
        },
    );
    add(
        "region_write_multi-reply",
        s2c,
        rep(19, Command::REGION_WRITE_MULTI),
        Body::WriteMulti {
            head: &wm,
            entries: &[],
        },
    );

    let fget = DeviceFeature::new(VFIO_DEVICE_FEATURE_MIGRATION, VFIO_DEVICE_FEATURE_GET);
    let fget = DeviceFeature {
        argsz: u32le(16),
        ..fget
    };
    add(
        "device_feature-request-migration-get",
        c2s,
        cmd(20, Command::DEVICE_FEATURE),
        Body::DeviceFeature {
            head: &fget,
            data: FeatureData::None,
        },
    );
    let mig = FeatureMigration {
        flags: u64le(VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_PRE_COPY),
    };
    add(
        "device_feature-reply-migration-get",
        s2c,
        rep(20, Command::DEVICE_FEATURE),
        Body::DeviceFeature {
            head: &fget,
            data: FeatureData::Migration(&mig),
        },
    );
    let fset = DeviceFeature::new(
        VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
        VFIO_DEVICE_FEATURE_SET,
    );
    let st = FeatureMigState {
        device_state: u32le(3),
        data_fd: 0.into(),
    };
    add(
        "device_feature-request-mig-state-set-stop-copy",
        c2s,
        cmd(21, Command::DEVICE_FEATURE),
        Body::DeviceFeature {
            head: &fset,
            data: FeatureData::MigState(&st),
        },
    );
    add(
        "device_feature-reply-mig-state-set-stop-copy",
        s2c,
        rep(21, Command::DEVICE_FEATURE),
        Body::DeviceFeature {
            head: &fset,
            data: FeatureData::MigState(&st),
        },
    );
    let flog = DeviceFeature::new(
        VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
        VFIO_DEVICE_FEATURE_SET,
    );
    let ctl = DmaLoggingControl {
        page_size: u64le(4096),
        num_ranges: u32le(1),
        reserved: u32le(0),
    };
    let ranges = [DmaLoggingRange {
        iova: u64le(0x1_0000_0000),
        length: u64le(0x20_0000),
    }];
    add(
        "device_feature-request-dma-logging-start",
        c2s,
        cmd(22, Command::DEVICE_FEATURE),
        Body::DeviceFeature {
            head: &flog,
            data: FeatureData::LoggingControl {
                control: &ctl,
                ranges: &ranges,
            },
        },
    );
    add(
        "device_feature-reply-dma-logging-start",
        s2c,
        rep(22, Command::DEVICE_FEATURE),
        Body::DeviceFeature {
            head: &flog,
            data: FeatureData::LoggingControl {
                control: &ctl,
                ranges: &ranges,
            },
        },
    );
    let frep = DeviceFeature {
        argsz: u32le(8 + 24 + 8),
        ..DeviceFeature::new(
            VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
            VFIO_DEVICE_FEATURE_GET,
        )
    };
    let report = DmaLoggingReport {
        iova: u64le(0x1_0000_0000),
        length: u64le(64 * 4096),
        page_size: u64le(4096),
    };
    add(
        "device_feature-request-dma-logging-report",
        c2s,
        cmd(23, Command::DEVICE_FEATURE),
        Body::DeviceFeature {
            head: &frep,
            data: FeatureData::LoggingReport {
                report: &report,
                bitmap: &[],
            },
        },
    );
    add(
        "device_feature-reply-dma-logging-report",
        s2c,
        rep(23, Command::DEVICE_FEATURE),
        Body::DeviceFeature {
            head: &frep,
            data: FeatureData::LoggingReport {
                report: &report,
                bitmap: &[0x0f, 0, 0, 0, 0, 0, 0, 0],
            },
        },
    );

    let mr = MigData {
        argsz: u32le(8 + 64),
        size: u32le(64),
    };
    add(
        "mig_data_read-request",
        c2s,
        cmd(24, Command::MIG_DATA_READ),
        Body::MigData {
            head: &mr,
            data: &[],
        },
    );
    let mr_rep = MigData {
        argsz: u32le(0),
        size: u32le(32),
    };
    add(
        "mig_data_read-reply",
        s2c,
        rep(24, Command::MIG_DATA_READ),
        Body::MigData {
            head: &mr_rep,
            data: &[0x33; 32],
        },
    );
    let mw = MigData {
        argsz: u32le(8 + 32),
        size: u32le(32),
    };
    add(
        "mig_data_write-request",
        c2s,
        cmd(25, Command::MIG_DATA_WRITE),
        Body::MigData {
            head: &mw,
            data: &[0x44; 32],
        },
    );
    add(
        "mig_data_write-reply",
        s2c,
        rep(25, Command::MIG_DATA_WRITE),
        Body::Empty,
    );

    let pc = PrecopyInfo {
        argsz: u32le(24),
        ..Default::default()
    };
    add(
        "get_precopy_info-request",
        c2s,
        cmd(26, Command::GET_PRECOPY_INFO),
        Body::PrecopyInfo(&pc),
    );
    let pc_rep = PrecopyInfo {
        argsz: u32le(24),
        flags: u32le(0),
        initial_bytes: u64le(1 << 20),
        dirty_bytes: u64le(4096),
    };
    add(
        "get_precopy_info-reply",
        s2c,
        rep(26, Command::GET_PRECOPY_INFO),
        Body::PrecopyInfo(&pc_rep),
    );

    add(
        "region_read-reply-error-einval",
        s2c,
        Header::error_reply(27, Command::REGION_READ, 22),
        Body::Error,
    );
    add(
        "unknown-request-command-999",
        c2s,
        cmd(28, Command(999)),
        Body::Unknown(&[1, 2, 3, 4]),
    );
    out
}

#[test]
fn golden_messages_match_the_encoder_and_decode_as_named() {
    let msgs = messages();
    for (name, dir, bytes) in &msgs {
        vfu_tests::golden(&format!("corpus/messages/{name}"), bytes);
        let m = decode(bytes, *dir).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (cmd_name, rest) = name.split_once('-').expect("name has a dash");
        if cmd_name != "unknown" {
            let want = Command::parse(cmd_name)
                .unwrap_or_else(|| panic!("{name}: {cmd_name} is not a command"));
            assert_eq!(m.command(), want, "{name}");
        }
        assert_eq!(m.is_reply(), rest.starts_with("reply"), "{name}");
        let mut again = vec![0u8; bytes.len()];
        let n = encode_exact(m.header, &m.body, m.trailing, &mut again).unwrap();
        assert_eq!(&again[..n], &bytes[..], "{name}");
    }
    // Every named command appears in both directions (as a request and as a reply).
    for c in vfu_codec::header::COMMAND_NAMES {
        let short = c.name.trim_start_matches("VFIO_USER_").to_ascii_lowercase();
        for kind in ["request", "reply"] {
            assert!(
                msgs.iter()
                    .any(|(n, _, _)| n.starts_with(&format!("{short}-{kind}"))),
                "no golden {short}-{kind}"
            );
        }
    }
    // No stale files: everything in corpus/messages is produced here.
    let dir = vfu_tests::corpus_dir().join("messages");
    if !vfu_tests::bless() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let n = e.unwrap().file_name().into_string().unwrap();
            assert!(
                msgs.iter().any(|(m, _, _)| *m == n),
                "stale golden file corpus/messages/{n}"
            );
        }
    }
}
