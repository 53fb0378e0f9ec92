//! Criterion bench: SDP parsing and answering real browser offers (the Chromium publish offer
//! and the Firefox simulcast offer). SDP is per negotiation, not per packet: these figures
//! bound how many WHIP/WHEP/room joins per second one core can negotiate.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rtc_core::sdp::{Capabilities, LocalParams, SessionDescription, answer_offer};

const OFFERS: [(&str, &str); 2] = [
    (
        "chromium_publish",
        include_str!("../../rtc-core/src/sdp/fixtures/chromium-publish.sdp"),
    ),
    (
        "firefox_simulcast",
        include_str!("../../rtc-core/src/sdp/fixtures/firefox-simulcast.sdp"),
    ),
];

fn local() -> LocalParams {
    LocalParams {
        ice_ufrag: "bench".to_owned(),
        ice_pwd: "benchpasswordbenchpassword".to_owned(),
        fingerprint: "sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF".to_owned(),
        candidates: vec!["1 1 udp 2130706431 203.0.113.7 3478 typ host".to_owned()],
        session_id: 1,
        session_version: 1,
    }
}

fn bench_sdp(c: &mut Criterion) {
    let local = local();
    let capabilities = Capabilities::default();
    for (name, offer) in OFFERS {
        c.bench_function(&format!("sdp_parse_{name}"), |b| {
            b.iter(|| SessionDescription::parse(black_box(offer)))
        });
        c.bench_function(&format!("sdp_answer_{name}"), |b| {
            b.iter(|| answer_offer(black_box(offer), &local, &capabilities))
        });
    }
}

criterion_group!(benches, bench_sdp);
criterion_main!(benches);
