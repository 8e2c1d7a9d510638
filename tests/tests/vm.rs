//! VDUSE against the real kernel: runs the VM harness (`scripts/vm/run.sh`) with the guest test
//! `scripts/vm/guest/vduse-blk.sh`, which boots Debian's Linux 6.12 under QEMU (TCG) and drives the
//! `vduse-blk` example through virtio_vdpa (4 MiB O_DIRECT write and read-back, a capacity change)
//! and vhost_vdpa (UPDATE_IOTLB, one GET_ID request, GET_VQ_STATE), then qemu-storage-daemon's
//! vduse-blk export through the same I/O check. The capture the example wrote in the guest must then
//! decode and validate with no finding.
//!
//! Needs qemu-system-x86_64, qemu-storage-daemon, busybox-static, iproute2's vdpa, cpio, xz, kmod and
//! apt's lists with linux-image-6.12-cloud-amd64 (`.ci/run` installs them; `scripts/vm/run.sh
//! --check` names what is missing). Without them the test says it skipped and what is missing,
//! unless `CI=true` or `VFU_REQUIRE_VM=1`, where it fails. `VFU_SKIP_VM=1` skips it outside CI.
//!
//! A second boot runs `scripts/vm/guest/trace-vduse.sh`: `vfu-dump trace` launching the example and
//! qemu-storage-daemon's export while the kernel binds and uses each device; both captures must
//! validate clean and hold the ioctls and the kernel's requests. The two boots run one after the other
//! (a TCG guest wants a whole processor).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use vfu_codec::Direction;
use vfu_codec::vduse::{RequestBody, VDUSE_REQ_RESULT_OK, decode_request, decode_response};
use vfu_dump::capture::{self, OpenOptions, Protocol};
use vfu_dump::validate::{Event, Profile, Protocol as VProtocol, Validator};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Says on the real standard error (not captured by the test harness, so `cargo test` shows it) that
/// the test was skipped and why: `SKIPPED: <test>: <why>`, the marker `.ci/run` looks for.
fn skipped(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {why}");
}

fn env_is(name: &str, value: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == value)
}

/// The guest's summary lines (`guest:`, `blkcheck:`, `vhost:`, `VFU-VM:`) from its console log.
fn summary(console: &Path) -> String {
    let text = std::fs::read_to_string(console).unwrap_or_default();
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| {
            [
                "guest:",
                "blkcheck:",
                "vhost:",
                "vfu-vm-guest:",
                "VFU-VM: kernel",
                "VFU-VM: PASS",
                "VFU-VM: FAIL",
            ]
            .iter()
            .any(|p| l.starts_with(p))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One boot at a time.
static BOOT: Mutex<()> = Mutex::new(());

/// Whether the VM tests can run here: `false` (after saying that `test` skipped, and why) when they
/// skip.
fn vm_available(test: &str) -> bool {
    let required = env_is("CI", "true") || env_is("VFU_REQUIRE_VM", "1");
    if !required && env_is("VFU_SKIP_VM", "1") {
        skipped(test, "VFU_SKIP_VM=1");
        return false;
    }
    let script = root().join("scripts/vm/run.sh");
    let check = Command::new("bash")
        .arg(&script)
        .arg("--check")
        .output()
        .expect("run scripts/vm/run.sh --check");
    let said = String::from_utf8_lossy(&check.stderr).trim().to_owned();
    match check.status.code() {
        Some(0) => {}
        Some(77) if !required => {
            skipped(
                test,
                &format!(
                    "needs {} (scripts/install-test-deps.sh installs them)",
                    said.lines()
                        .map(|l| l.trim().trim_start_matches("vm: missing: "))
                        .filter(|l| !l.is_empty())
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            );
            return false;
        }
        Some(77) => panic!(
            "the VM test is required here (CI=true or VFU_REQUIRE_VM=1) but prerequisites are missing:\n{said}"
        ),
        other => panic!("scripts/vm/run.sh --check exited {other:?}: {said}"),
    }
    true
}

/// Boots the guest with `guest_script ARG` and returns the output folder and the console summary.
fn boot(name: &str, guest_script: &str, arg: &str) -> (PathBuf, String) {
    let out = root().join("target/vm").join(name);
    let _ = std::fs::remove_dir_all(&out);
    let status = Command::new("bash")
        .arg(root().join("scripts/vm/run.sh"))
        .arg("--out")
        .arg(&out)
        .arg(root().join(guest_script))
        .arg(arg)
        .status()
        .expect("run scripts/vm/run.sh");
    let console = out.join("console.log");
    let lines = summary(&console);
    eprintln!("{lines}");
    assert!(
        status.success(),
        "the guest test failed (exit {status}); console: {}\n{lines}",
        console.display()
    );
    (out, lines)
}

#[test]
fn vduse_blk_and_qemu_storage_daemon_in_a_vm() {
    let _one = BOOT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !vm_available("vduse_blk_and_qemu_storage_daemon_in_a_vm") {
        return;
    }
    let (out, lines) = boot("test-out", "scripts/vm/guest/vduse-blk.sh", "all");
    for want in [
        "blkcheck: 4 MiB of random data written to /dev/vda with O_DIRECT read back identical",
        "guest: capacity change: /sys/block/vda/size is 65536",
        "guest: vduse-blk: PASS",
        "guest: qemu-storage-daemon: PASS",
    ] {
        assert!(lines.lines().any(|l| l == want), "no {want:?} in\n{lines}");
    }
    assert!(
        lines.contains("GET_ID through vhost-vdpa answered \"vfu-vduse-blk\""),
        "{lines}"
    );
    assert_eq!(
        lines.matches("read back identical").count(),
        2,
        "the example's and qemu-storage-daemon's I/O checks"
    );

    let log = std::fs::read_to_string(out.join("vduse-blk.log")).unwrap();
    for want in [
        "VDUSE_DESTROY_DEV vduse-blk0: ok",
        "16 control requests, 0 refused",
        "capacity is now 65536 sectors",
    ] {
        assert!(
            log.contains(want),
            "no {want:?} in the daemon's log:\n{log}"
        );
    }

    // The capture the example wrote in the guest.
    let path = out.join("vduse-blk.pcapng");
    let mut reader = capture::open(&path, &OpenOptions::default()).unwrap();
    let mut validator = Validator::new(Profile::Spec);
    let mut findings = Vec::new();
    let mut kinds = Vec::new();
    let mut n = 0;
    while let Some(r) = reader.next_record().unwrap() {
        n += 1;
        assert_eq!(r.protocol, Protocol::Vduse);
        validator.check(
            &Event {
                conn: r.conn,
                index: r.index,
                direction: r.direction,
                protocol: VProtocol::Vduse,
                fds: r.fds,
                truncated: r.truncated,
                bytes: r.data,
            },
            &mut findings,
        );
        match r.direction {
            Direction::ClientToServer => kinds.push(match decode_request(r.data).unwrap().body {
                RequestBody::SetStatus(s) => format!("S{:02x}", s.status),
                RequestBody::UpdateIotlb(_) => "U".into(),
                RequestBody::GetVqState(_) => "G".into(),
                other => format!("{other:?}"),
            }),
            Direction::ServerToClient => {
                assert_eq!(
                    decode_response(r.data).unwrap().result.get(),
                    VDUSE_REQ_RESULT_OK
                )
            }
        }
    }
    findings.extend(validator.finish());
    assert!(findings.is_empty(), "{findings:#?}");
    assert_eq!(n, 32);
    // virtio_vdpa bind, unbind, and the vhost-vdpa user (corpus/README.md).
    assert_eq!(
        kinds.join(" "),
        "S00 S01 S03 S0b S0f S00 S01 S00 S03 S0b U S0f G S00 U S00"
    );
}

#[test]
fn vfu_dump_trace_follows_vduse_daemons_in_a_vm() {
    let _one = BOOT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !vm_available("vfu_dump_trace_follows_vduse_daemons_in_a_vm") {
        return;
    }
    let (out, lines) = boot("trace-out", "scripts/vm/guest/trace-vduse.sh", "all");
    // The guest ran `vfu-dump validate --info` on each capture and failed unless it exited 0.
    for want in [
        "guest: trace-vduse-blk: ",
        "guest: trace-qsd: ",
        "blkcheck: 4 MiB of random data written to /dev/vda with O_DIRECT read back identical",
    ] {
        assert!(
            lines.lines().any(|l| l.starts_with(want)),
            "no {want:?} in\n{lines}"
        );
    }
    for file in ["trace-vduse-blk.pcapng", "trace-qsd.pcapng"] {
        let path = out.join(file);
        let mut reader = capture::open(&path, &OpenOptions::default()).unwrap();
        let (mut create, mut requests, mut responses) = (0, 0, 0);
        while let Some(r) = reader.next_record().unwrap() {
            match (r.protocol, r.direction) {
                (Protocol::VduseIoctl, _)
                    if r.data[..4] == vfu_codec::vduse::VDUSE_CREATE_DEV.to_le_bytes() =>
                {
                    create += 1
                }
                (Protocol::Vduse, Direction::ClientToServer) => requests += 1,
                (Protocol::Vduse, Direction::ServerToClient) => responses += 1,
                _ => {}
            }
        }
        assert_eq!(create, 1, "{file}: one VDUSE_CREATE_DEV");
        assert!(
            requests > 0 && requests == responses,
            "{file}: {requests} kernel requests, {responses} responses"
        );
    }
}
