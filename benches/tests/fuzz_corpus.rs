//! Replays every file of the cargo-fuzz seed corpora (and any crash reproducers kept under
//! `fuzz/regressions/`) through the same harnesses the fuzz targets call, so that the stable
//! toolchain guards the parsers in CI without nightly.

use std::path::Path;
use std::time::Instant;

fn replay(target: &str, harness: impl Fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut replayed = 0usize;
    for dir in [
        root.join("corpus").join(target),
        root.join("regressions").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("readable corpus directory").path();
            let data = std::fs::read(&path).expect("readable corpus file");
            harness(&data);
            replayed += 1;
        }
    }
    assert!(
        replayed > 0,
        "the seed corpus of fuzz target {target} is empty"
    );
}

#[test]
fn rtp_corpus() {
    replay("rtp", rtc_core::fuzzing::rtp::run);
}

#[test]
fn rtcp_corpus() {
    replay("rtcp", rtc_core::fuzzing::rtcp::run);
}

#[test]
fn srtp_unprotect_corpus() {
    replay("srtp_unprotect", rtc_core::fuzzing::srtp::run_srtp);
}

#[test]
fn srtcp_unprotect_corpus() {
    replay("srtcp_unprotect", rtc_core::fuzzing::srtp::run_srtcp);
}

#[test]
fn sdp_offer_corpus() {
    replay("sdp_offer", rtc_core::fuzzing::sdp::run);
}

#[test]
fn dtls_record_corpus() {
    replay("dtls_record", |data| {
        rtc_core::fuzzing::dtls::run(data, Instant::now())
    });
}

#[test]
fn stun_corpus() {
    replay("stun", |data| ice_lite::fuzzing::stun(data, Instant::now()));
}

#[test]
fn demux_corpus() {
    replay("demux", ice_lite::fuzzing::demux);
}

#[test]
fn media_session_corpus() {
    replay("media_session", |data| {
        packet_router::fuzzing::media_session(data, Instant::now())
    });
}

#[test]
fn room_protocol_corpus() {
    replay("room_protocol", signaling::fuzzing::room_messages);
}

#[test]
fn access_token_corpus() {
    replay("access_token", signaling::fuzzing::access_token);
}

#[test]
fn rfc4571_corpus() {
    replay("rfc4571", ice_lite::fuzzing::rfc4571);
}

#[test]
fn ice_fragment_corpus() {
    replay("ice_fragment", signaling::fuzzing::ice_fragment);
}

#[test]
fn vp8_corpus() {
    replay("vp8", rtc_core::fuzzing::codec::vp8);
}

#[test]
fn h264_corpus() {
    replay("h264", rtc_core::fuzzing::codec::h264);
}

#[test]
fn vp9_corpus() {
    replay("vp9", rtc_core::fuzzing::codec::vp9);
}

#[test]
fn av1_corpus() {
    replay("av1", rtc_core::fuzzing::codec::av1);
}

#[test]
fn dependency_descriptor_corpus() {
    replay(
        "dependency_descriptor",
        rtc_core::fuzzing::codec::dependency_descriptor,
    );
}
