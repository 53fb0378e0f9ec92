#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rtc_core::fuzzing::dtls::run(data, std::time::Instant::now()));
