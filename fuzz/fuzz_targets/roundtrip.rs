#![no_main]

use vfu_fuzz::roundtrip::{MessageDesc, roundtrip};

libfuzzer_sys::fuzz_target!(|desc: MessageDesc| roundtrip(&desc));
