#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rtc_core::fuzzing::codec::h264(data));
