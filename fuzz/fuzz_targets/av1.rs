#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rtc_core::fuzzing::codec::av1(data));
