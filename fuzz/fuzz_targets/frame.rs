#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vfu_fuzz::frame(data));
