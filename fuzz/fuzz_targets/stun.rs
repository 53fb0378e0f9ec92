#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ice_lite::fuzzing::stun(data, std::time::Instant::now()));
