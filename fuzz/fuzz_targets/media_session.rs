#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| packet_router::fuzzing::media_session(data, std::time::Instant::now()));
