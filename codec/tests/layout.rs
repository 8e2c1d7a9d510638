//! The layout truth test: every wire struct that mirrors a C struct of `<linux/vfio.h>` or
//! `<linux/vduse.h>` is compared, size and field offset by field offset, with what the C compiler makes
//! of the real header, and so are the VDUSE ioctl numbers and the constants the codec names.
//!
//! The test writes a C program that prints `sizeof`, `offsetof` and the member sizes, compiles it with
//! `cc`, runs it and compares its output with the Rust field tables (`WireStruct::FIELDS`, `SIZE`). It is
//! skipped, with a message, only when `cc` is not installed.
//!
//! Each Rust field is compared with the C member of the same name unless the check lists a rename (the
//! C side may be a nested designator such as `header.id`). A Rust field with no C counterpart
//! (alignment padding spelled out in Rust) must be listed as padding. A listed C member that the header
//! lacks makes the C program fail to compile, which fails the test.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

use vfu_codec::vduse::{self, VDUSE_IOCTLS};
use vfu_codec::vfio;
use vfu_codec::wire::{Layout, Show, WireStruct};

/// How the Rust struct's size relates to the C struct's.
#[derive(Clone, Copy, Debug)]
enum Size {
    /// `SIZE == sizeof` (for a struct ending in a flexible array member, sizeof is the fixed part).
    Exact,
    /// The Rust struct is the documented first `n` bytes of a larger C struct: `SIZE == n <= sizeof`.
    Prefix(usize),
}

/// One Rust struct checked against one C struct.
struct Check {
    /// The C struct tag.
    c: &'static str,
    /// The Rust layout.
    rust: Layout,
    /// The size relation.
    size: Size,
    /// Rust field → C member designator, where the names differ.
    renames: &'static [(&'static str, &'static str)],
    /// Rust fields with no C counterpart (explicit padding).
    padding: &'static [&'static str],
}

const fn check<T: WireStruct>(c: &'static str) -> Check {
    Check {
        c,
        rust: Layout::of::<T>(),
        size: Size::Exact,
        renames: &[],
        padding: &[],
    }
}

impl Check {
    const fn renames(mut self, r: &'static [(&'static str, &'static str)]) -> Self {
        self.renames = r;
        self
    }
    const fn padding(mut self, p: &'static [&'static str]) -> Self {
        self.padding = p;
        self
    }
    const fn prefix(mut self, n: usize) -> Self {
        self.size = Size::Prefix(n);
        self
    }

    /// The C member designator for a Rust field, or `None` for listed padding.
    fn c_member(&self, rust_field: &str) -> Option<&'static str> {
        if self.padding.contains(&rust_field) {
            return None;
        }
        let renamed = self.renames.iter().find(|(r, _)| *r == rust_field);
        let same = self.rust.fields.iter().find(|f| f.name == rust_field);
        match (renamed, same) {
            (Some((_, c)), _) => Some(c),
            (None, Some(f)) => Some(f.name),
            (None, None) => panic!("{} has no field {rust_field}", self.rust.name),
        }
    }
}

/// The C program's input: every check.
fn checks() -> Vec<Check> {
    vec![
        // ---------------------------------------------------------------- <linux/vfio.h>
        // The header's vfio_device_info is larger (cap_offset on 6.1, more on newer kernels);
        // vfio-user carries the first 16 bytes.
        check::<vfio::DeviceInfo>("vfio_device_info").prefix(16),
        check::<vfio::RegionInfo>("vfio_region_info"),
        check::<vfio::CapHeader>("vfio_info_cap_header"),
        // C nests `struct vfio_info_cap_header header`; the Rust struct flattens it.
        check::<vfio::CapSparseMmap>("vfio_region_info_cap_sparse_mmap").renames(&[
            ("id", "header.id"),
            ("version", "header.version"),
            ("next", "header.next"),
        ]),
        check::<vfio::SparseMmapArea>("vfio_region_sparse_mmap_area"),
        check::<vfio::CapType>("vfio_region_info_cap_type").renames(&[
            ("id", "header.id"),
            ("version", "header.version"),
            ("next", "header.next"),
            ("region_type", "type"),
        ]),
        check::<vfio::IrqInfo>("vfio_irq_info"),
        check::<vfio::IrqSet>("vfio_irq_set"),
        // vfio-user DMA_MAP reuses the type1 layout: its file `offset` sits where the kernel's
        // process `vaddr` does, and its `address` is the kernel's `iova`.
        check::<vfio::DmaMap>("vfio_iommu_type1_dma_map")
            .renames(&[("offset", "vaddr"), ("address", "iova")]),
        check::<vfio::DmaUnmap>("vfio_iommu_type1_dma_unmap").renames(&[("address", "iova")]),
        check::<vfio::DeviceFeature>("vfio_device_feature"),
        check::<vfio::FeatureMigration>("vfio_device_feature_migration"),
        check::<vfio::FeatureMigState>("vfio_device_feature_mig_state"),
        // C ends with `__aligned_u64 ranges`, a user pointer to the range array; vfio-user carries
        // the ranges inline after the first 16 bytes instead.
        check::<vfio::DmaLoggingControl>("vfio_device_feature_dma_logging_control")
            .prefix(16)
            .renames(&[("reserved", "__reserved")]),
        check::<vfio::DmaLoggingRange>("vfio_device_feature_dma_logging_range"),
        // C ends with `__aligned_u64 bitmap`, a user pointer; vfio-user carries the bitmap inline.
        check::<vfio::DmaLoggingReport>("vfio_device_feature_dma_logging_report").prefix(24),
        // ---------------------------------------------------------------- <linux/vduse.h>
        // The raw 128-byte union is compared with `__u32 padding[32]`, the union member that spans
        // all of it (the other members' offsets are checked in `union_members` below).
        check::<vduse::VduseDevRequest>("vduse_dev_request")
            .renames(&[("req_type", "type"), ("payload", "padding")]),
        check::<vduse::VduseDevResponse>("vduse_dev_response").renames(&[("payload", "padding")]),
        // The raw `state` bytes are the `split`/`packed` union; `packed` is the member spanning it.
        check::<vduse::VduseVqState>("vduse_vq_state").renames(&[("state", "packed")]),
        check::<vduse::VduseVqStateSplit>("vduse_vq_state_split"),
        check::<vduse::VduseVqStatePacked>("vduse_vq_state_packed"),
        check::<vduse::VduseDevStatus>("vduse_dev_status"),
        check::<vduse::VduseIovaRange>("vduse_iova_range"),
        // VduseVqGroupAsid (SET_VQ_GROUP_ASID, VDUSE API v1) is not in the Linux 6.1 header: skipped.
        check::<vduse::VduseDevConfig>("vduse_dev_config"),
        check::<vduse::VduseIotlbEntry>("vduse_iotlb_entry").padding(&["pad"]),
        check::<vduse::VduseConfigData>("vduse_config_data"),
        check::<vduse::VduseVqConfig>("vduse_vq_config"),
        check::<vduse::VduseVqInfo>("vduse_vq_info")
            .renames(&[("state", "packed")])
            .padding(&["pad"]),
        check::<vduse::VduseVqEventfd>("vduse_vq_eventfd"),
        check::<vduse::VduseIovaUmem>("vduse_iova_umem"),
        check::<vduse::VduseIovaInfo>("vduse_iova_info"),
    ]
}

/// C union members that the Rust side keeps as raw bytes: (C struct, member, expected offset).
fn union_members() -> Vec<(&'static str, &'static str, usize)> {
    let state_at = |l: Layout| {
        l.fields
            .iter()
            .find(|f| f.name == "state")
            .expect("state field")
            .offset
    };
    let p = vduse::VDUSE_PAYLOAD_OFFSET;
    vec![
        ("vduse_dev_request", "vq_state", p),
        ("vduse_dev_request", "s", p),
        ("vduse_dev_request", "iova", p),
        ("vduse_dev_response", "vq_state", p),
        (
            "vduse_vq_state",
            "split",
            state_at(Layout::of::<vduse::VduseVqState>()),
        ),
        (
            "vduse_vq_info",
            "split",
            state_at(Layout::of::<vduse::VduseVqInfo>()),
        ),
    ]
}

/// C constants the codec also defines: (C expression, Rust value, whether the 6.1 header may lack it).
fn constants() -> Vec<(&'static str, i128, bool)> {
    use vduse::*;
    use vfio::*;
    vec![
        ("VDUSE_BASE", VDUSE_BASE.into(), false),
        ("VDUSE_API_VERSION", VDUSE_API_VERSION.into(), false),
        ("VDUSE_NAME_MAX", VDUSE_NAME_MAX as i128, false),
        ("VDUSE_GET_VQ_STATE", VDUSE_GET_VQ_STATE.into(), false),
        ("VDUSE_SET_STATUS", VDUSE_SET_STATUS.into(), false),
        ("VDUSE_UPDATE_IOTLB", VDUSE_UPDATE_IOTLB.into(), false),
        // VDUSE_SET_VQ_GROUP_ASID (API v1) is an enum value newer headers add: not checkable on 6.1.
        ("VDUSE_REQ_RESULT_OK", VDUSE_REQ_RESULT_OK.into(), false),
        (
            "VDUSE_REQ_RESULT_FAILED",
            VDUSE_REQ_RESULT_FAILED.into(),
            false,
        ),
        ("VDUSE_ACCESS_RO", VDUSE_ACCESS_RO.into(), false),
        ("VDUSE_ACCESS_WO", VDUSE_ACCESS_WO.into(), false),
        ("VDUSE_ACCESS_RW", VDUSE_ACCESS_RW.into(), false),
        ("VDUSE_IOVA_CAP_UMEM", VDUSE_IOVA_CAP_UMEM.into(), false),
        (
            "VDUSE_EVENTFD_DEASSIGN",
            VDUSE_EVENTFD_DEASSIGN.into(),
            false,
        ),
        (
            "VIRTIO_CONFIG_S_ACKNOWLEDGE",
            VIRTIO_CONFIG_S_ACKNOWLEDGE.into(),
            false,
        ),
        (
            "VIRTIO_CONFIG_S_DRIVER",
            VIRTIO_CONFIG_S_DRIVER.into(),
            false,
        ),
        (
            "VIRTIO_CONFIG_S_DRIVER_OK",
            VIRTIO_CONFIG_S_DRIVER_OK.into(),
            false,
        ),
        (
            "VIRTIO_CONFIG_S_FEATURES_OK",
            VIRTIO_CONFIG_S_FEATURES_OK.into(),
            false,
        ),
        (
            "VIRTIO_CONFIG_S_NEEDS_RESET",
            VIRTIO_CONFIG_S_NEEDS_RESET.into(),
            false,
        ),
        (
            "VIRTIO_CONFIG_S_FAILED",
            VIRTIO_CONFIG_S_FAILED.into(),
            false,
        ),
        (
            "VFIO_DEVICE_FLAGS_RESET",
            VFIO_DEVICE_FLAGS_RESET.into(),
            false,
        ),
        ("VFIO_DEVICE_FLAGS_PCI", VFIO_DEVICE_FLAGS_PCI.into(), false),
        (
            "VFIO_REGION_INFO_FLAG_READ",
            VFIO_REGION_INFO_FLAG_READ.into(),
            false,
        ),
        (
            "VFIO_REGION_INFO_FLAG_WRITE",
            VFIO_REGION_INFO_FLAG_WRITE.into(),
            false,
        ),
        (
            "VFIO_REGION_INFO_FLAG_MMAP",
            VFIO_REGION_INFO_FLAG_MMAP.into(),
            false,
        ),
        (
            "VFIO_REGION_INFO_FLAG_CAPS",
            VFIO_REGION_INFO_FLAG_CAPS.into(),
            false,
        ),
        (
            "VFIO_REGION_INFO_CAP_SPARSE_MMAP",
            VFIO_REGION_INFO_CAP_SPARSE_MMAP.into(),
            false,
        ),
        (
            "VFIO_REGION_INFO_CAP_TYPE",
            VFIO_REGION_INFO_CAP_TYPE.into(),
            false,
        ),
        (
            "VFIO_IRQ_SET_DATA_NONE",
            VFIO_IRQ_SET_DATA_NONE.into(),
            false,
        ),
        (
            "VFIO_IRQ_SET_DATA_BOOL",
            VFIO_IRQ_SET_DATA_BOOL.into(),
            false,
        ),
        (
            "VFIO_IRQ_SET_DATA_EVENTFD",
            VFIO_IRQ_SET_DATA_EVENTFD.into(),
            false,
        ),
        (
            "VFIO_IRQ_SET_ACTION_MASK",
            VFIO_IRQ_SET_ACTION_MASK.into(),
            false,
        ),
        (
            "VFIO_IRQ_SET_ACTION_UNMASK",
            VFIO_IRQ_SET_ACTION_UNMASK.into(),
            false,
        ),
        (
            "VFIO_IRQ_SET_ACTION_TRIGGER",
            VFIO_IRQ_SET_ACTION_TRIGGER.into(),
            false,
        ),
        (
            "VFIO_IRQ_SET_DATA_TYPE_MASK",
            VFIO_IRQ_SET_DATA_TYPE_MASK.into(),
            false,
        ),
        (
            "VFIO_IRQ_SET_ACTION_TYPE_MASK",
            VFIO_IRQ_SET_ACTION_TYPE_MASK.into(),
            false,
        ),
        (
            "VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP",
            VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP.into(),
            false,
        ),
        (
            "VFIO_DMA_UNMAP_FLAG_ALL",
            VFIO_DMA_UNMAP_FLAG_ALL.into(),
            false,
        ),
        (
            "VFIO_DEVICE_FEATURE_MASK",
            VFIO_DEVICE_FEATURE_MASK.into(),
            false,
        ),
        (
            "VFIO_DEVICE_FEATURE_GET",
            VFIO_DEVICE_FEATURE_GET.into(),
            false,
        ),
        (
            "VFIO_DEVICE_FEATURE_SET",
            VFIO_DEVICE_FEATURE_SET.into(),
            false,
        ),
        (
            "VFIO_DEVICE_FEATURE_PROBE",
            VFIO_DEVICE_FEATURE_PROBE.into(),
            false,
        ),
        (
            "VFIO_DEVICE_FEATURE_MIGRATION",
            VFIO_DEVICE_FEATURE_MIGRATION.into(),
            false,
        ),
        (
            "VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE",
            VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE.into(),
            false,
        ),
        (
            "VFIO_DEVICE_FEATURE_DMA_LOGGING_START",
            VFIO_DEVICE_FEATURE_DMA_LOGGING_START.into(),
            false,
        ),
        (
            "VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP",
            VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP.into(),
            false,
        ),
        (
            "VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT",
            VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT.into(),
            false,
        ),
        (
            "VFIO_MIGRATION_STOP_COPY",
            VFIO_MIGRATION_STOP_COPY.into(),
            false,
        ),
        ("VFIO_MIGRATION_P2P", VFIO_MIGRATION_P2P.into(), false),
        // Added after Linux 6.1.
        (
            "VFIO_MIGRATION_PRE_COPY",
            VFIO_MIGRATION_PRE_COPY.into(),
            true,
        ),
    ]
}

/// Writes the C program.
fn c_program(checks: &[Check]) -> String {
    let mut c = String::from(
        "#include <stddef.h>\n#include <stdio.h>\n#include <linux/ioctl.h>\n\
         #include <linux/virtio_config.h>\n#include <linux/vfio.h>\n#include <linux/vduse.h>\n\n\
         #define MSIZE(T, m) sizeof(((T *)0)->m)\n\nint main(void)\n{\n",
    );
    for ch in checks {
        let t = format!("struct {}", ch.c);
        writeln!(c, "\tprintf(\"S {} %zu\\n\", sizeof({t}));", ch.c).unwrap();
        for f in ch.rust.fields {
            if let Some(m) = ch.c_member(f.name) {
                writeln!(
                    c,
                    "\tprintf(\"F {} {} %zu %zu\\n\", offsetof({t}, {m}), MSIZE({t}, {m}));",
                    ch.c, f.name
                )
                .unwrap();
            }
        }
    }
    for (s, m, _) in union_members() {
        let t = format!("struct {s}");
        writeln!(
            c,
            "\tprintf(\"U {s} {m} %zu %zu\\n\", offsetof({t}, {m}), MSIZE({t}, {m}));"
        )
        .unwrap();
    }
    for i in VDUSE_IOCTLS {
        let n = i.name;
        writeln!(
            c,
            "\tprintf(\"I {n} %lu %lu %lu %lu %lu\\n\", (unsigned long)({n}), \
             (unsigned long)_IOC_DIR({n}), (unsigned long)_IOC_TYPE({n}), \
             (unsigned long)_IOC_NR({n}), (unsigned long)_IOC_SIZE({n}));"
        )
        .unwrap();
    }
    for (k, _, optional) in constants() {
        let line = format!("\tprintf(\"K {k} %lld\\n\", (long long)({k}));\n");
        if optional {
            write!(
                c,
                "#ifdef {k}\n{line}#else\n\tprintf(\"K {k} absent\\n\");\n#endif\n"
            )
            .unwrap();
        } else {
            c.push_str(&line);
        }
    }
    c.push_str("\treturn 0;\n}\n");
    c
}

/// Compiles and runs the program; `None` when `cc` is not installed.
fn run_c(source: &str) -> Option<String> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("vfu-codec-layout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    let src = dir.join("layout.c");
    let exe = dir.join("layout");
    std::fs::write(&src, source).expect("write C program");
    let out = match Command::new("cc")
        .args(["-std=gnu11", "-Wall", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
    {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("running cc: {e}"),
    };
    assert!(
        out.status.success(),
        "the C program did not compile (a listed C member or macro is missing from the header?):\n{}\n\
         program: {}",
        String::from_utf8_lossy(&out.stderr),
        src.display()
    );
    let run = Command::new(&exe).output().expect("run the C program");
    assert!(run.status.success(), "the C program failed: {run:?}");
    let text = String::from_utf8(run.stdout).expect("C output is UTF-8");
    let _ = std::fs::remove_dir_all(&dir);
    Some(text)
}

#[derive(Default)]
struct COutput {
    sizes: BTreeMap<String, usize>,
    /// (C struct, Rust field) → (offset, size).
    fields: BTreeMap<(String, String), (usize, usize)>,
    /// (C struct, member) → (offset, size).
    unions: BTreeMap<(String, String), (usize, usize)>,
    /// name → (number, dir, type, nr, size).
    ioctls: BTreeMap<String, [u64; 5]>,
    /// name → value, `None` when the header lacks it.
    constants: BTreeMap<String, Option<i128>>,
}

fn parse(text: &str) -> COutput {
    let mut o = COutput::default();
    let num = |s: &str| s.parse::<usize>().expect("number");
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["S", s, n] => {
                o.sizes.insert(s.to_string(), num(n));
            }
            ["F", s, f, off, size] => {
                o.fields
                    .insert((s.to_string(), f.to_string()), (num(off), num(size)));
            }
            ["U", s, m, off, size] => {
                o.unions
                    .insert((s.to_string(), m.to_string()), (num(off), num(size)));
            }
            ["I", n, rest @ ..] if rest.len() == 5 => {
                let mut v = [0u64; 5];
                for (d, s) in v.iter_mut().zip(rest) {
                    *d = s.parse().expect("number");
                }
                o.ioctls.insert(n.to_string(), v);
            }
            ["K", k, "absent"] => {
                o.constants.insert(k.to_string(), None);
            }
            ["K", k, v] => {
                o.constants
                    .insert(k.to_string(), Some(v.parse().expect("number")));
            }
            _ => panic!("unexpected line from the C program: {line:?}"),
        }
    }
    o
}

#[test]
fn layouts_match_the_kernel_headers() {
    let checks = checks();

    // The check list itself must be consistent before it can be trusted.
    for ch in &checks {
        let name = ch.rust.name;
        for (r, _) in ch.renames {
            assert!(
                ch.rust.fields.iter().any(|f| f.name == *r),
                "{name}: rename of unknown field {r}"
            );
        }
        for p in ch.padding {
            let f = ch
                .rust
                .fields
                .iter()
                .find(|f| f.name == *p)
                .unwrap_or_else(|| panic!("{name}: padding {p} is not a field"));
            assert_eq!(
                f.show,
                Show::Reserved,
                "{name}.{p}: padding must be Reserved"
            );
            assert!(
                !ch.renames.iter().any(|(r, _)| r == p),
                "{name}.{p}: both padding and renamed"
            );
        }
        // The field table tiles the struct: no gap, no overlap, nothing past the end.
        let mut at = 0;
        for f in ch.rust.fields {
            assert_eq!(f.offset, at, "{name}.{}: field table has a gap", f.name);
            at += f.size;
        }
        assert_eq!(at, ch.rust.size, "{name}: fields do not add up to SIZE");
    }

    let source = c_program(&checks);
    let Some(text) = run_c(&source) else {
        // On the real standard error, which the test harness does not capture.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"SKIPPED: layouts_match_the_kernel_headers: needs cc (apt-get install gcc)\n",
        );
        return;
    };
    let c = parse(&text);

    let mut bad = Vec::new();
    let mut n_fields = 0;
    for ch in &checks {
        let name = ch.rust.name;
        let csize = c.sizes[ch.c];
        match ch.size {
            Size::Exact if csize != ch.rust.size => bad.push(format!(
                "{name}: SIZE {} but sizeof(struct {}) = {csize}",
                ch.rust.size, ch.c
            )),
            Size::Prefix(n) if ch.rust.size != n || csize < n => bad.push(format!(
                "{name}: documented prefix {n}, SIZE {}, sizeof(struct {}) = {csize}",
                ch.rust.size, ch.c
            )),
            _ => {}
        }
        for f in ch.rust.fields {
            let Some(m) = ch.c_member(f.name) else {
                continue;
            };
            n_fields += 1;
            let Some(&(off, size)) = c.fields.get(&(ch.c.to_string(), f.name.to_string())) else {
                bad.push(format!("{name}.{}: no output for C member {m}", f.name));
                continue;
            };
            if off != f.offset {
                bad.push(format!(
                    "{name}.{}: Rust offset {} but offsetof(struct {}, {m}) = {off}",
                    f.name, f.offset, ch.c
                ));
            }
            if size != f.size {
                bad.push(format!(
                    "{name}.{}: Rust size {} but sizeof(struct {}.{m}) = {size}",
                    f.name, f.size, ch.c
                ));
            }
        }
    }

    for (s, m, want) in union_members() {
        let (off, size) = c.unions[&(s.to_string(), m.to_string())];
        if off != want {
            bad.push(format!(
                "union member {s}.{m}: offsetof = {off}, Rust raw bytes start at {want}"
            ));
        }
        let span = if s.starts_with("vduse_dev_") {
            vduse::VDUSE_PAYLOAD_SIZE
        } else {
            8
        };
        if size > span {
            bad.push(format!(
                "union member {s}.{m}: {size} bytes does not fit the {span}-byte union"
            ));
        }
    }

    for i in VDUSE_IOCTLS {
        let [number, dir, ty, nr, size] = c.ioctls[i.name];
        let d = vduse::IoctlNumber::decode(i.number);
        if u64::from(i.number) != number {
            bad.push(format!(
                "{}: Rust {:#010x}, C {:#010x}",
                i.name, i.number, number
            ));
        }
        let ours = [
            u64::from(d.dir.0),
            u64::from(d.ty),
            u64::from(d.nr),
            u64::from(d.size),
        ];
        if ours != [dir, ty, nr, size] {
            bad.push(format!(
                "{}: IoctlNumber::decode gives dir/type/nr/size {ours:?}, _IOC_* give {:?}",
                i.name,
                [dir, ty, nr, size]
            ));
        }
        if i.arg.size() as u64 != size {
            bad.push(format!(
                "{}: argument {} is {} bytes, _IOC_SIZE is {size}",
                i.name,
                i.arg.name(),
                i.arg.size()
            ));
        }
    }

    let mut n_consts = 0;
    for (k, want, optional) in constants() {
        match c.constants[k] {
            Some(v) => {
                n_consts += 1;
                if v != want {
                    bad.push(format!("{k}: Rust {want}, C {v}"));
                }
            }
            None => assert!(optional, "{k} missing"),
        }
    }

    assert!(
        bad.is_empty(),
        "layout mismatches with the kernel headers:\n  {}",
        bad.join("\n  ")
    );
    println!(
        "checked {} structs ({n_fields} fields, {} union members), {} ioctls, {n_consts} constants against C",
        checks.len(),
        union_members().len(),
        VDUSE_IOCTLS.len()
    );
}
