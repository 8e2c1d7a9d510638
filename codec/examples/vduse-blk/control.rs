//! The control channel: one request read from `/dev/vduse/$NAME` in, one response out, every byte
//! through vfu-codec's VDUSE types. The device behind it is a [`Backend`], so the handler is tested
//! with crafted requests and no kernel.
//!
//! A request the handler does not expect never panics it: an unknown type, a request_id it has seen,
//! a queue index out of range, a malformed IOTLB range or a request of a later API version is
//! answered FAILED and logged.

use std::collections::{HashSet, VecDeque};

use vfu_codec::vduse::{
    RequestBody, ResponseBody, VDUSE_MSG_SIZE, VDUSE_REQ_RESULT_FAILED, VDUSE_REQ_RESULT_OK,
    VIRTIO_CONFIG_S_DRIVER_OK, VduseVqState, decode_request, encode_response,
};

/// What the handler needs from the device.
pub trait Backend {
    /// Number of virtqueues.
    fn num_queues(&self) -> u32;
    /// The driver set DRIVER_OK: set the queues up. An error is answered FAILED.
    fn driver_ok(&mut self) -> Result<(), String>;
    /// The driver reset the device (status 0): stop serving the queues.
    fn reset(&mut self);
    /// The split-ring avail index of queue `index` (< `num_queues`), for GET_VQ_STATE.
    fn avail_index(&mut self, index: u32) -> u16;
    /// The mappings of `[start, last]` changed: forget them and look them up again when needed.
    fn iotlb_changed(&mut self, start: u64, last: u64);
}

/// How many recent request ids are remembered to catch a repeat (the kernel numbers requests
/// 0, 1, 2 …; a repeat within this window is answered FAILED).
pub const REMEMBERED_IDS: usize = 4096;

/// The handler's state: the device status and the recent request ids.
#[derive(Debug, Default)]
pub struct Control {
    /// The device status the driver set last.
    pub status: u8,
    recent: VecDeque<u32>,
    seen: HashSet<u32>,
}

/// The outcome of one request.
#[derive(Debug)]
pub struct Handled {
    /// The response to write, `None` when the request could not even be read (not 152 bytes).
    pub response: Option<[u8; VDUSE_MSG_SIZE]>,
    /// One line for the log: what came in and what went out.
    pub log: String,
    /// Whether the request was refused (answered FAILED or not answered).
    pub refused: bool,
}

impl Control {
    pub fn new() -> Self {
        Control::default()
    }

    fn remember(&mut self, id: u32) -> bool {
        if !self.seen.insert(id) {
            return false;
        }
        self.recent.push_back(id);
        if self.recent.len() > REMEMBERED_IDS
            && let Some(old) = self.recent.pop_front()
        {
            self.seen.remove(&old);
        }
        true
    }

    /// Handles one request as read from the device (`bytes`, which should be 152 bytes).
    pub fn handle(&mut self, bytes: &[u8], dev: &mut impl Backend) -> Handled {
        let req = match decode_request(bytes) {
            Ok(r) => r,
            Err(e) => {
                return Handled {
                    response: None,
                    log: format!("unreadable request ({e}); not answered"),
                    refused: true,
                };
            }
        };
        let id = req.request_id();
        let mut state = None;
        let verdict: Result<String, String> = if !self.remember(id) {
            Err(format!("request_id {id} was seen before"))
        } else {
            match req.body {
                RequestBody::SetStatus(s) => {
                    let old = self.status;
                    self.status = s.status;
                    if s.status == 0 {
                        dev.reset();
                        Ok("reset".into())
                    } else if s.status & VIRTIO_CONFIG_S_DRIVER_OK != 0
                        && old & VIRTIO_CONFIG_S_DRIVER_OK == 0
                    {
                        dev.driver_ok().map(|()| "queues started".into())
                    } else {
                        Ok(String::new())
                    }
                }
                RequestBody::GetVqState(q) => {
                    let index = q.index.get();
                    if index >= dev.num_queues() {
                        Err(format!(
                            "queue {index} does not exist (the device has {})",
                            dev.num_queues()
                        ))
                    } else {
                        let avail = dev.avail_index(index);
                        state = Some(VduseVqState::new_split(index, avail));
                        Ok(format!("avail_index {avail}"))
                    }
                }
                RequestBody::UpdateIotlb(r) => {
                    let (start, last) = (r.start.get(), r.last.get());
                    if start > last {
                        Err(format!("IOVA range [{start:#x}, {last:#x}] is empty"))
                    } else {
                        dev.iotlb_changed(start, last);
                        Ok("mappings dropped".into())
                    }
                }
                RequestBody::SetVqGroupAsid(_) => {
                    Err("SET_VQ_GROUP_ASID needs VDUSE API version 1; this device set 0".into())
                }
                RequestBody::Unknown { req_type, .. } => Err(format!(
                    "request type {req_type} is not one this device knows"
                )),
            }
        };
        let (result, note, refused) = match verdict {
            Ok(n) => (VDUSE_REQ_RESULT_OK, n, false),
            Err(n) => (VDUSE_REQ_RESULT_FAILED, n, true),
        };
        let mut out = [0u8; VDUSE_MSG_SIZE];
        let body = match &state {
            Some(s) => ResponseBody::GetVqState(s),
            None => ResponseBody::Raw(&[0; 128]),
        };
        // The buffer is exactly one message long, which is all the encoder needs.
        let response = encode_response(id, result, &body, &mut out)
            .ok()
            .map(|_| out);
        let word = if refused { "FAILED" } else { "OK" };
        let log = if note.is_empty() {
            format!("{req} -> {word}")
        } else {
            format!("{req} -> {word}: {note}")
        };
        Handled {
            response,
            log,
            refused,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use vfu_codec::vduse::{
        VDUSE_GET_VQ_STATE, VduseDevStatus, VduseIovaRange, VduseVqGroupAsid, decode_response,
        encode_request,
    };
    use zerocopy::native_endian::{U32, U64};

    #[derive(Default)]
    struct Fake {
        calls: Vec<String>,
        fail_driver_ok: bool,
    }

    impl Backend for Fake {
        fn num_queues(&self) -> u32 {
            1
        }
        fn driver_ok(&mut self) -> Result<(), String> {
            self.calls.push("driver_ok".into());
            if self.fail_driver_ok {
                Err("no memory".into())
            } else {
                Ok(())
            }
        }
        fn reset(&mut self) {
            self.calls.push("reset".into());
        }
        fn avail_index(&mut self, index: u32) -> u16 {
            self.calls.push(format!("avail_index {index}"));
            41
        }
        fn iotlb_changed(&mut self, start: u64, last: u64) {
            self.calls.push(format!("iotlb {start:#x} {last:#x}"));
        }
    }

    fn request(id: u32, body: RequestBody<'_>) -> [u8; 152] {
        let mut b = [0u8; 152];
        encode_request(id, &body, &mut b).unwrap();
        b
    }

    fn status(id: u32, status: u8) -> [u8; 152] {
        request(id, RequestBody::SetStatus(&VduseDevStatus { status }))
    }

    /// The response's id and result.
    fn answer(h: &Handled) -> (u32, u32) {
        let r = decode_response(h.response.as_ref().unwrap()).unwrap();
        (r.request_id.get(), r.result.get())
    }

    #[test]
    fn the_status_sequence_of_a_virtio_vdpa_bind() {
        let (mut c, mut dev) = (Control::new(), Fake::default());
        for (id, s) in [(0, 0), (1, 1), (2, 3), (3, 0xb), (4, 0xf), (5, 0xf)] {
            let h = c.handle(&status(id, s), &mut dev);
            assert_eq!(answer(&h), (id, VDUSE_REQ_RESULT_OK), "{}", h.log);
        }
        // DRIVER_OK starts the queues once; status 0 resets.
        assert_eq!(dev.calls, ["reset", "driver_ok"]);
        assert_eq!(c.status, 0xf);
        let h = c.handle(&status(6, 0), &mut dev);
        assert_eq!(h.log, "VDUSE_SET_STATUS (1) id 6 status 0x00 -> OK: reset");
    }

    #[test]
    fn get_vq_state_answers_the_avail_index() {
        let (mut c, mut dev) = (Control::new(), Fake::default());
        let h = c.handle(
            &request(9, RequestBody::GetVqState(&VduseVqState::new_split(0, 0))),
            &mut dev,
        );
        let r = decode_response(h.response.as_ref().unwrap()).unwrap();
        assert_eq!(
            (r.request_id.get(), r.result.get()),
            (9, VDUSE_REQ_RESULT_OK)
        );
        assert_eq!(r.vq_state().index.get(), 0);
        assert_eq!(r.vq_state().split().avail_index.get(), 41);
        assert_eq!(
            r.body(VDUSE_GET_VQ_STATE),
            ResponseBody::GetVqState(r.vq_state())
        );
        assert_eq!(r.payload[12..], [0; 116]);
    }

    #[test]
    fn a_queue_out_of_range_is_failed() {
        let (mut c, mut dev) = (Control::new(), Fake::default());
        for index in [1, 7, u32::MAX] {
            let h = c.handle(
                &request(
                    index,
                    RequestBody::GetVqState(&VduseVqState::new_split(index, 0)),
                ),
                &mut dev,
            );
            assert_eq!(answer(&h), (index, VDUSE_REQ_RESULT_FAILED));
            assert!(h.refused);
            assert!(h.log.contains("does not exist"), "{}", h.log);
            // A failed answer carries no queue state.
            assert_eq!(
                decode_response(h.response.as_ref().unwrap())
                    .unwrap()
                    .payload,
                [0; 128]
            );
        }
        assert!(dev.calls.is_empty());
    }

    #[test]
    fn an_unknown_type_is_failed() {
        let (mut c, mut dev) = (Control::new(), Fake::default());
        let raw = [0xffu8; 128];
        let h = c.handle(
            &request(
                3,
                RequestBody::Unknown {
                    req_type: 99,
                    raw: &raw,
                },
            ),
            &mut dev,
        );
        assert_eq!(answer(&h), (3, VDUSE_REQ_RESULT_FAILED));
        assert_eq!(
            h.log,
            "VDUSE request type 99 id 3 -> FAILED: request type 99 is not one this device knows"
        );
        let g = VduseVqGroupAsid {
            group: U32::new(0),
            asid: U32::new(1),
        };
        let h = c.handle(&request(4, RequestBody::SetVqGroupAsid(&g)), &mut dev);
        assert_eq!(answer(&h), (4, VDUSE_REQ_RESULT_FAILED));
        assert!(dev.calls.is_empty());
    }

    #[test]
    fn a_repeated_request_id_is_failed_and_not_acted_on() {
        let (mut c, mut dev) = (Control::new(), Fake::default());
        assert_eq!(
            answer(&c.handle(&status(5, 0xf), &mut dev)),
            (5, VDUSE_REQ_RESULT_OK)
        );
        let h = c.handle(&status(5, 0), &mut dev);
        assert_eq!(answer(&h), (5, VDUSE_REQ_RESULT_FAILED));
        assert!(h.log.contains("request_id 5 was seen before"), "{}", h.log);
        assert_eq!(c.status, 0xf, "the repeat changed nothing");
        assert_eq!(dev.calls, ["driver_ok"]);
    }

    #[test]
    fn ids_are_forgotten_after_the_window() {
        let (mut c, mut dev) = (Control::new(), Fake::default());
        for id in 0..=REMEMBERED_IDS as u32 {
            assert!(!c.handle(&status(id, 1), &mut dev).refused);
        }
        // Id 0 left the window; id 1 is still in it.
        assert!(!c.handle(&status(0, 1), &mut dev).refused);
        assert!(c.handle(&status(2, 1), &mut dev).refused);
        assert_eq!(c.seen.len(), REMEMBERED_IDS);
    }

    #[test]
    fn update_iotlb_drops_the_range_and_refuses_an_empty_one() {
        let (mut c, mut dev) = (Control::new(), Fake::default());
        let all = VduseIovaRange {
            start: U64::new(0),
            last: U64::new(u64::MAX),
        };
        assert!(
            !c.handle(&request(1, RequestBody::UpdateIotlb(&all)), &mut dev)
                .refused
        );
        let bad = VduseIovaRange {
            start: U64::new(0x2000),
            last: U64::new(0x1000),
        };
        let h = c.handle(&request(2, RequestBody::UpdateIotlb(&bad)), &mut dev);
        assert_eq!(answer(&h), (2, VDUSE_REQ_RESULT_FAILED));
        assert_eq!(dev.calls, ["iotlb 0x0 0xffffffffffffffff"]);
    }

    #[test]
    fn a_failing_driver_ok_is_failed() {
        let (mut c, mut dev) = (Control::new(), Fake::default());
        dev.fail_driver_ok = true;
        let h = c.handle(&status(0, 0xf), &mut dev);
        assert_eq!(answer(&h), (0, VDUSE_REQ_RESULT_FAILED));
        assert!(h.log.ends_with("FAILED: no memory"), "{}", h.log);
    }

    #[test]
    fn short_or_long_reads_are_logged_not_answered() {
        let (mut c, mut dev) = (Control::new(), Fake::default());
        for n in [0, 1, 151, 153, 300] {
            let bytes = vec![0u8; n];
            let h = c.handle(&bytes, &mut dev);
            assert!(h.response.is_none() && h.refused);
            assert!(h.log.contains("vduse-size"), "{}", h.log);
        }
        assert!(dev.calls.is_empty());
    }

    #[test]
    fn garbage_never_panics() {
        let (mut c, mut dev) = (Control::new(), Fake::default());
        let mut x = 0x1234_5678_9abc_def0u64;
        for _ in 0..2000 {
            let mut b = [0u8; 152];
            for byte in b.iter_mut() {
                // xorshift
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *byte = x as u8;
            }
            // Small types, so that every known one comes up too.
            b[..4].copy_from_slice(&((x % 6) as u32).to_ne_bytes());
            let h = c.handle(&b, &mut dev);
            let (id, result) = answer(&h);
            assert_eq!(id.to_ne_bytes(), b[4..8]);
            assert!(result == VDUSE_REQ_RESULT_OK || result == VDUSE_REQ_RESULT_FAILED);
        }
    }
}
