//! The one table of validation rules: stable id, severity, spec section and a one-line description.
//!
//! Every finding names one of these rules. The table is printed by `vfu-dump validate --list-rules`
//! and in the README, so a rule's id is a stable interface: add new rules, never rename old ones.

use super::types::Severity;

/// One validation rule: what [`RULES`] lists and what every [`Finding`](super::Finding) points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RuleInfo {
    /// Stable kebab-case identifier (`dma-unmap-no-match`); decode errors are `decode/<codec rule id>`.
    pub id: &'static str,
    /// How serious a finding of this rule is.
    pub severity: Severity,
    /// Where the rule comes from: a section of the vfio-user reference (`§2.3`), `vduse`, or `capture`.
    pub section: &'static str,
    /// One line saying what the rule checks.
    pub description: &'static str,
}

macro_rules! rules {
    ($( $(#[$m:meta])* $variant:ident = $id:literal, $sev:ident, $section:literal, $desc:literal; )*) => {
        /// A validation rule, as a value: [`Rule::info`] gives its row of [`RULES`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Rule {
            $( $(#[$m])* #[doc = $desc] $variant, )*
        }

        /// Every rule the validator can report, in a fixed order (the order of [`Rule`]).
        pub const RULES: &[RuleInfo] = &[
            $( RuleInfo { id: $id, severity: Severity::$sev, section: $section, description: $desc }, )*
        ];

        impl Rule {
            /// Every rule, in the order of [`RULES`].
            pub const ALL: &[Rule] = &[ $( Rule::$variant, )* ];
        }
    };
}

rules! {
    // ---- session and header (§1) ----
    VersionNotFirst = "version-not-first", Error, "§1 rule 10",
        "A message other than VERSION was sent before version negotiation completed.";
    VersionRepeated = "version-repeated", Error, "§1 rule 10",
        "VERSION was sent again after negotiation completed, or while one was still unanswered.";
    HeaderFlagsReserved = "header-flags-reserved", Warning, "§1",
        "Header flag bits 6-31 are set; they are undefined and must be sent as 0.";
    NoReplyOnReply = "no-reply-on-reply", Error, "§1 rule 2",
        "NO_REPLY is set on a reply; it is only meaningful on commands.";
    ErrorOnCommand = "error-on-command", Error, "§1 rule 2",
        "ERROR is set on a command; it is only meaningful on replies.";
    HeaderErrnoReserved = "header-errno-reserved", Warning, "§1",
        "error_no is non-zero on a message without ERROR, where it is reserved.";
    UnknownCommand = "unknown-command", Error, "§2",
        "The command number is not one the current spec defines (0, 14, 19 and 20 and up are not).";
    WrongDirection = "wrong-direction", Error, "§2",
        "A command sent the wrong way: DMA_READ/WRITE go server to client, every other command client to server.";
    ReplyUnexpected = "reply-unexpected", Error, "§1 rule 3",
        "A reply whose msg_id matches no outstanding command from the other side (unsolicited, or a second reply).";
    ReplyCommandMismatch = "reply-command-mismatch", Error, "§1 rule 3",
        "A reply carries another command number than the command it answers (accepted under qemu, which matches by id only).";
    ReplyToNoReply = "reply-to-no-reply", Error, "§1 rule 4",
        "A reply was sent to a command that had NO_REPLY set.";
    RequestUnanswered = "request-unanswered", Info, "§1 rule 3",
        "A command that expects a reply had none when the capture ended (the connection may have closed first).";
    PendingOverflow = "pending-overflow", Warning, "§1 rule 3",
        "More than 65536 commands were outstanding on one connection; the oldest are no longer tracked.";
    ErrorReplyPayload = "error-reply-payload", Error, "§1 rule 5",
        "An error reply carries a payload; error replies are header-only (accepted under libvfio-user).";
    RequestRejected = "request-rejected", Info, "§1 rule 5",
        "The peer answered with an error a command the validator found nothing wrong with (a resource limit, or a check it could not make).";
    TruncatedMessage = "truncated-message", Warning, "capture",
        "The stream ended in the middle of this message.";
    CaptureCut = "capture-cut", Info, "capture",
        "The capture holds only the first bytes of this message (its writer's snap length); the message was whole, and what the capture lacks is not checked.";
    MsgSizeOverLimit = "msg-size-over-limit", Warning, "§1 rule 9 [impl]",
        "msg_size exceeds the receiver's limit (libvfio-user: 1 MiB + 32 for client messages; qemu: max_data_xfer_size + 32 for server commands).";
    FdsUnexpected = "fds-unexpected", Error, "§2",
        "A message carries more file descriptors than its command allows (most carry none; DMA_MAP at most one).";
    FdsMissing = "fds-missing", Error, "§2",
        "A message lacks a file descriptor its contents need (region info with MMAP, IO_FDS entries, twin socket, DMA_MAP access mode).";
    FdsOverMax = "fds-over-max", Error, "§2.1, §2.8",
        "More file descriptors than the receiver's max_msg_fds (default 1; qemu assumes 8 for a server that does not say).";

    // ---- VERSION (§2.1) ----
    VersionMajor = "version-major", Error, "§2.1",
        "VERSION major is not 0, or the reply's major differs from the one proposed.";
    VersionMinor = "version-minor", Error, "§2.1",
        "The VERSION reply's minor is greater than the one the client proposed.";
    VersionCapType = "version-cap-type", Error, "§2.1",
        "A known capability has the wrong JSON type (a string, negative or fractional number where an unsigned integer belongs, a non-object).";
    VersionCapValue = "version-cap-value", Warning, "§2.1, §5",
        "A capability value out of range: a zero size, migration.pgsize not a power of two of at least 4096, fd_index in a request, or a profile's limit.";
    VersionCapUnknown = "version-cap-unknown", Info, "§2.1",
        "A capability key the spec does not define; receivers ignore it.";
    VersionCapDuplicate = "version-cap-duplicate", Warning, "§2.1",
        "A capability key appears twice in one object; receivers keep the last one.";
    VersionReplyExtraCap = "version-reply-extra-cap", Warning, "§2.1",
        "The VERSION reply names a capability the client did not offer (libvfio-user's unrequested max_msg_fds, max_data_xfer_size and migration are accepted under libvfio-user).";
    VersionLegacyMigration = "version-legacy-migration", Warning, "§2.1, §4",
        "The legacy migration capability object, which the current spec does not have (accepted under libvfio-user and qemu).";
    TwinSocketNotOffered = "twin-socket-not-offered", Error, "§2.1",
        "The VERSION reply turns twin-socket mode on though the client did not offer it.";
    TwinSocketFdIndex = "twin-socket-fd-index", Error, "§2.1",
        "Twin-socket mode is on but fd_index is missing or names no descriptor of the reply.";
    TwinSocketDmaOnMain = "twin-socket-dma-on-main", Error, "§2.1, §2.11",
        "DMA_READ/WRITE sent on the main socket after twin-socket mode was negotiated.";
    WriteMultiNotNegotiated = "write-multi-not-negotiated", Error, "§2.14",
        "REGION_WRITE_MULTI sent though the server did not advertise write_multiple.";
    QemuReplyBuffer = "qemu-reply-buffer", Warning, "§1 rule 9 [impl]",
        "qemu: the VERSION reply is longer than the client's VERSION request, and the QEMU client rejects it.";

    // ---- argsz, layout and echoes (§1 rule 8, §2) ----
    ArgszTooSmall = "argsz-too-small", Error, "§1 rule 8",
        "A request's argsz is below the fixed part of the reply, or below what the command needs.";
    ArgszMismatch = "argsz-mismatch", Error, "§1 rule 8",
        "argsz differs from its required value: DMA_MAP 32, SET_IRQS the request payload size, a complete reply its payload size.";
    ArgszTooLarge = "argsz-too-large", Warning, "§2.3, §2.6 [impl]",
        "libvfio-user: argsz above 1 MiB, which it refuses.";
    ReplyExceedsArgsz = "reply-exceeds-argsz", Error, "§1 rule 8",
        "A reply payload is longer than the argsz its request offered.";
    PayloadLength = "payload-length", Error, "§2",
        "The payload is longer than the command's layout says (bytes after the body, or beyond count or size).";
    ReplyHeaderOnly = "reply-header-only", Error, "§2.9-§2.12",
        "A success reply without the payload the spec gives it (libvfio-user's count-0 region replies and qemu's DMA_WRITE replies are accepted under their profiles).";
    ReplyEchoMismatch = "reply-echo-mismatch", Error, "§2",
        "A reply does not echo its request (index, address, offset, flags, state), or reports more than was asked.";
    FlagsReserved = "flags-reserved", Error, "§2",
        "Undefined bits are set in a command's flags (DMA_MAP, DMA_UNMAP, info requests, IO_FDS, DEVICE_FEATURE).";
    RequestFieldNonzero = "request-field-nonzero", Warning, "§2.2-§2.15",
        "A request field that must be 0 is not (reply-only fields such as num_regions, size or count; reserved words).";

    // ---- DMA (§2.2, §2.3, §2.11, §2.12) ----
    DmaMapOverlap = "dma-map-overlap", Warning, "§2.2",
        "DMA_MAP overlaps a live window; the server must refuse it with EEXIST.";
    DmaMapOverlapReply = "dma-map-overlap-reply", Error, "§2.2",
        "An overlapping DMA_MAP was accepted, or refused with another errno than EEXIST (libvfio-user's EINVAL for a partial overlap is accepted under its profile).";
    DmaMapRange = "dma-map-range", Error, "§2.2",
        "DMA_MAP size is 0, or address + size overflows.";
    DmaMapAlignment = "dma-map-alignment", Warning, "§2.2",
        "DMA_MAP address or size is not a multiple of the smallest page size in the server's pgsizes (default 4 KiB).";
    DmaMapTooLarge = "dma-map-too-large", Warning, "§2.2 [impl]",
        "libvfio-user: a window larger than 8 TiB, which it refuses with ENOSPC.";
    DmaMapTooMany = "dma-map-too-many", Warning, "§2.2",
        "More live windows than the server's max_dma_maps (default 65535).";
    DmaUnmapNoMatch = "dma-unmap-no-match", Error, "§2.3",
        "DMA_UNMAP address and size do not match a live window exactly.";
    DmaUnmapAll = "dma-unmap-all", Error, "§2.3 [impl]",
        "DMA_UNMAP with UNMAP_ALL needs address and size 0.";
    DmaUnmapBitmap = "dma-unmap-bitmap", Error, "§2.3 [impl]",
        "DMA_UNMAP GET_DIRTY_BITMAP header invalid: pgsize not a power of two, or size not ceil(ceil(size/pgsize)/64)*8.";
    LoggingNotStarted = "logging-not-started", Error, "§2.15",
        "DMA_LOGGING_REPORT (or DMA_UNMAP GET_DIRTY_BITMAP) while dirty-page logging is not started.";
    DmaRwOutsideWindow = "dma-rw-outside-window", Error, "§2.11",
        "DMA_READ/WRITE range is not inside mapped DMA windows.";
    DmaRwPermission = "dma-rw-permission", Error, "§2.11",
        "DMA_READ from a window mapped without READ, or DMA_WRITE to one without WRITE.";
    XferSizeOverMax = "xfer-size-over-max", Error, "§1 rule 9",
        "A data count or size above the receiver's max_data_xfer_size (default 1 MiB).";

    // ---- device, regions and interrupts (§2.4-§2.10, §2.14) ----
    RegionIndex = "region-index", Error, "§2.5, §2.9",
        "Region index at or above num_regions from DEVICE_GET_INFO (libvfio-user: 9, its region count, before DEVICE_GET_INFO).";
    RegionIndexUnverified = "region-index-unverified", Info, "§2.4",
        "Region index beyond the 9 PCI regions while no DEVICE_GET_INFO reply has been seen, so it cannot be checked (not under libvfio-user, which has exactly 9).";
    IrqIndex = "irq-index", Error, "§2.7, §2.8",
        "IRQ index at or above num_irqs from DEVICE_GET_INFO (5 for PCI when not seen).";
    RegionRange = "region-range", Error, "§2.9",
        "offset + count overflows or ends beyond the region size from DEVICE_GET_REGION_INFO.";
    RegionAccessFlags = "region-access-flags", Warning, "§2.9",
        "A region read or write that the region's READ/WRITE flags do not allow.";
    RegionInfoCaps = "region-info-caps", Error, "§2.5",
        "Region info reply invalid: cap_offset outside [32, argsz - 8], CAPS on a cut-short reply, sparse areas beyond the region, fd_index beyond the fds.";
    IoFdsStride48 = "io-fds-stride-48", Warning, "§2.6 [impl]",
        "The IO_FDS reply uses libvfio-user's 48-byte entries instead of the spec's 40 (accepted under libvfio-user).";
    IoFdsEntry = "io-fds-entry", Error, "§2.6",
        "An IO_FDS entry names an fd_index beyond the reply's fds, or lies outside the region.";
    IoFdsNoFd = "io-fds-no-fd", Info, "§2.6 [impl]",
        "libvfio-user: an IO_FDS entry with fd_index 0xFFFFFFFF, an ioeventfd registered without a descriptor (io-fds-entry under the other profiles).";
    DeviceInfoPci = "device-info-pci", Warning, "§2.4",
        "A PCI device reports fewer than 9 regions or fewer than 5 IRQ indices.";
    SetIrqsFlags = "set-irqs-flags", Error, "§2.8",
        "SET_IRQS flags must name exactly one data type and one action, and nothing else.";
    SetIrqsCountZero = "set-irqs-count-zero", Error, "§2.8",
        "SET_IRQS with count 0 needs start 0 and DATA_NONE|ACTION_TRIGGER.";
    SetIrqsRange = "set-irqs-range", Error, "§2.8",
        "SET_IRQS start + count overflows, or exceeds the vector count from GET_IRQ_INFO.";
    SetIrqsErrReq = "set-irqs-err-req", Error, "§2.8",
        "The ERR and REQ IRQ indices allow only ACTION_TRIGGER with count at most 1.";
    SetIrqsBoolPayload = "set-irqs-bool-payload", Error, "§2.8",
        "A DATA_BOOL SET_IRQS payload is not 20 + count bytes.";
    SetIrqsFds = "set-irqs-fds", Error, "§2.8",
        "SET_IRQS carries fds with a data type other than EVENTFD, or an EVENTFD fd count other than 0 or count.";

    // ---- device features and migration (§2.15-§2.17, §3) ----
    FeatureFlags = "feature-flags", Error, "§2.15",
        "DEVICE_FEATURE operations invalid: none of GET/SET/PROBE, GET with SET without PROBE, or one the feature does not have.";
    FeatureUnknown = "feature-unknown", Warning, "§2.15",
        "DEVICE_FEATURE names a feature other than the five defined for vfio-user.";
    FeatureData = "feature-data", Error, "§2.15",
        "DEVICE_FEATURE data missing or invalid for the feature (no state in a MIG_DEVICE_STATE SET, a page_size not a power of two, a zero length).";
    LoggingReportBitmap = "logging-report-bitmap", Error, "§2.15",
        "A DMA_LOGGING_REPORT reply bitmap has bits set beyond the range.";
    LoggingStartPageSize = "logging-start-page-size", Error, "§2.15 [impl]",
        "libvfio-user: DMA_LOGGING_START while logging is already started with another page_size, which it refuses with EINVAL.";
    LoggingReportRange = "logging-report-range", Error, "§2.15 [impl]",
        "libvfio-user: a DMA_LOGGING_REPORT range must start at the base of one DMA window mapped with an fd and lie inside it, and be at least page_size long.";
    MigrationFlags = "migration-flags", Error, "§2.15",
        "The MIGRATION GET reply lacks STOP_COPY, or advertises P2P, which vfio-user does not use.";
    MigTransition = "mig-transition", Error, "§3",
        "MIG_DEVICE_STATE SET asks for a transition the migration state machine forbids.";
    MigDataState = "mig-data-state", Error, "§2.16, §2.17",
        "MIG_DATA_READ outside PRE_COPY/STOP_COPY, or MIG_DATA_WRITE outside RESUMING.";
    MigStateDataFd = "mig-state-data-fd", Info, "§2.15",
        "MIG_DEVICE_STATE SET has data_fd other than 0; it is unused in vfio-user (not reported under libvfio-user, whose client sends -1).";

    // ---- VDUSE ----
    VduseResponseUnexpected = "vduse-response-unexpected", Error, "vduse",
        "A VDUSE response whose request_id matches no outstanding request.";
    VduseDuplicateId = "vduse-duplicate-id", Warning, "vduse",
        "A VDUSE request reuses the request_id of a request still unanswered.";
    VduseReserved = "vduse-reserved", Error, "vduse",
        "A VDUSE request or response has non-zero reserved words.";
    VduseResult = "vduse-result", Error, "vduse",
        "A VDUSE response result other than 0 (OK) or 1 (FAILED).";
    VduseUnionPadding = "vduse-union-padding", Warning, "vduse",
        "Non-zero bytes in the VDUSE union beyond the member in use.";
    VduseVqIndex = "vduse-vq-index", Error, "vduse",
        "A GET_VQ_STATE response does not echo the request's queue index.";
    VduseUnknownType = "vduse-unknown-type", Info, "vduse",
        "A VDUSE request type this validator does not know (newer kernels add types); shown raw.";
    VduseVqRange = "vduse-vq-range", Error, "vduse",
        "A queue index at or above the vq_num of VDUSE_CREATE_DEV (GET_VQ_STATE requests; VQ_SETUP, VQ_GET_INFO, VQ_SETUP_KICKFD and VQ_INJECT_IRQ ioctls).";
    VduseFeatures = "vduse-features", Error, "vduse",
        "VDUSE_DEV_GET_FEATURES returned feature bits that VDUSE_CREATE_DEV did not offer.";
    VduseConfigRange = "vduse-config-range", Error, "vduse",
        "VDUSE_DEV_SET_CONFIG writes beyond the config_size of VDUSE_CREATE_DEV.";
    VduseIoctlFailed = "vduse-ioctl-failed", Info, "vduse",
        "A VDUSE ioctl returned an error (its record's result is -errno).";
    VduseIoctlRecord = "vduse-ioctl-record", Error, "capture",
        "An ioctl record that does not parse: shorter than its head, undefined flags, or arg_len not matching its bytes.";

    // ---- decode errors from vfu_codec ----
    DecodeShortHeader = "decode/short-header", Error, "§1",
        "Decode: fewer than 16 bytes, not even a header.";
    DecodeMsgSizeBelowHeader = "decode/msg-size-below-header", Error, "§1",
        "Decode: msg_size is below the 16-byte header.";
    DecodeMsgTruncated = "decode/msg-truncated", Error, "§1",
        "Decode: the message holds fewer bytes than msg_size declares.";
    DecodeMsgOverlong = "decode/msg-overlong", Error, "§1",
        "Decode: the message holds more bytes than msg_size declares.";
    DecodeBadMessageType = "decode/bad-message-type", Error, "§1 rule 1",
        "Decode: the type bits are neither 0 (command) nor 1 (reply).";
    DecodeShortBody = "decode/short-body", Error, "§2",
        "Decode: the payload is too short for the command's fixed part.";
    DecodeCountExceedsPayload = "decode/count-exceeds-payload", Error, "§2",
        "Decode: a count or length field claims more data than the message holds.";
    DecodeVersionJsonNotTerminated = "decode/version-json-not-terminated", Error, "§2.1",
        "Decode: the VERSION capabilities text does not end with a NUL as its last byte.";
    DecodeVersionJsonSyntax = "decode/version-json-syntax", Error, "§2.1",
        "Decode: the VERSION capabilities text is not valid JSON.";
    DecodeVersionJsonTooLarge = "decode/version-json-too-large", Warning, "§2.1",
        "Decode: the VERSION capabilities JSON nests or lists more than the parser holds.";
    DecodeRegionCapOverlapsFixed = "decode/region-cap-overlaps-fixed", Error, "§2.5",
        "Decode: a region capability starts inside the 32-byte fixed part.";
    DecodeRegionCapOutOfBounds = "decode/region-cap-out-of-bounds", Error, "§2.5",
        "Decode: a region capability header lies outside the payload.";
    DecodeRegionCapLoop = "decode/region-cap-loop", Error, "§2.5",
        "Decode: the region capability chain loops or does not move forward.";
    DecodeRegionCapTruncated = "decode/region-cap-truncated", Error, "§2.5",
        "Decode: a region capability body does not fit in the payload.";
    DecodeIoFdsStride = "decode/io-fds-stride", Error, "§2.6",
        "Decode: no IO_FDS entry stride (40 or 48) fits argsz, count and the bytes present.";
    DecodeVduseSize = "decode/vduse-size", Error, "vduse",
        "Decode: a VDUSE request or response is not exactly 152 bytes.";
    DecodeOther = "decode/other", Error, "§2",
        "Decode: an error of a kind this table does not list yet; the message names the codec's rule.";
}

impl Rule {
    /// This rule's row of [`RULES`].
    pub fn info(self) -> &'static RuleInfo {
        &RULES[self as usize]
    }

    /// The stable id.
    pub fn id(self) -> &'static str {
        self.info().id
    }

    /// The severity.
    pub fn severity(self) -> Severity {
        self.info().severity
    }

    /// The `decode/…` rule for a codec decode error (the codec rule id after the slash).
    pub fn for_decode(rule: &vfu_codec::Rule) -> Rule {
        match rule.id() {
            "short-header" => Rule::DecodeShortHeader,
            "msg-size-below-header" => Rule::DecodeMsgSizeBelowHeader,
            "msg-truncated" => Rule::DecodeMsgTruncated,
            "msg-overlong" => Rule::DecodeMsgOverlong,
            "bad-message-type" => Rule::DecodeBadMessageType,
            "short-body" => Rule::DecodeShortBody,
            "count-exceeds-payload" => Rule::DecodeCountExceedsPayload,
            "version-json-not-terminated" => Rule::DecodeVersionJsonNotTerminated,
            "version-json-syntax" => Rule::DecodeVersionJsonSyntax,
            "version-json-too-large" => Rule::DecodeVersionJsonTooLarge,
            "region-cap-overlaps-fixed" => Rule::DecodeRegionCapOverlapsFixed,
            "region-cap-out-of-bounds" => Rule::DecodeRegionCapOutOfBounds,
            "region-cap-loop" => Rule::DecodeRegionCapLoop,
            "region-cap-truncated" => Rule::DecodeRegionCapTruncated,
            "io-fds-stride" => Rule::DecodeIoFdsStride,
            "vduse-size" => Rule::DecodeVduseSize,
            _ => Rule::DecodeOther,
        }
    }
}

/// The rule with this id, if any.
pub fn rule_by_id(id: &str) -> Option<&'static RuleInfo> {
    RULES.iter().find(|r| r.id == id)
}
