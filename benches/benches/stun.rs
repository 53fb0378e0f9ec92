//! Criterion bench of the STUN hot path of the media port: parsing a Chrome-like connectivity
//! check with MESSAGE-INTEGRITY and FINGERPRINT verification, writing the success response,
//! and the whole agent round trip.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use ice_lite::{
    Class, IceCredentials, IceLiteAgent, IceLiteConfig, IntegrityKey, METHOD_BINDING, StunMessage,
    StunWriter, write_binding_success,
};

const SERVER_UFRAG: &str = "Sv3Xq9Lm";
const SERVER_PWD: &str = "p4Qz8WcN2rT7vYk1Hb5Jd0Fs";
/// GOOG-NETWORK-INFO: network id and cost, sent by Chrome on every check.
const GOOG_NETWORK_INFO: u16 = 0xC057;

/// A check as Chrome sends it: USERNAME, GOOG-NETWORK-INFO, ICE-CONTROLLING, USE-CANDIDATE,
/// PRIORITY, MESSAGE-INTEGRITY, FINGERPRINT.
fn chrome_check(buf: &mut [u8]) -> usize {
    let mut w = StunWriter::new(buf, METHOD_BINDING, Class::Request, &[0x5a; 12])
        .expect("room for the header");
    w.add_username(&format!("{SERVER_UFRAG}:Ck7/"))
        .expect("room");
    w.add_attribute(GOOG_NETWORK_INFO, &[0x00, 0x01, 0x00, 0x0a])
        .expect("room");
    w.add_ice_controlling(0x6f1c_23aa_90d4_e871).expect("room");
    w.add_use_candidate().expect("room");
    w.add_priority(1_853_824_767).expect("room");
    w.add_message_integrity(&IntegrityKey::new(SERVER_PWD.as_bytes()))
        .expect("room");
    w.finish_with_fingerprint().expect("room")
}

fn stun(c: &mut Criterion) {
    let mut request = [0u8; 256];
    let len = chrome_check(&mut request);
    let request = &request[..len];
    let key = IntegrityKey::new(SERVER_PWD.as_bytes());
    let source: SocketAddr = "198.51.100.23:53412".parse().expect("address");

    c.bench_function("stun/parse_verify_chrome_check", |b| {
        b.iter(|| {
            let msg = StunMessage::parse(black_box(request)).expect("valid check");
            msg.verify_integrity(&key).expect("integrity");
            msg.verify_fingerprint().expect("fingerprint");
            black_box(msg.username())
        })
    });

    let transaction_id = [0x5a; 12];
    let mut out = [0u8; 1500];
    c.bench_function("stun/write_success_response", |b| {
        b.iter(|| {
            write_binding_success(
                black_box(&mut out),
                black_box(&transaction_id),
                black_box(source),
                &key,
            )
            .expect("room")
        })
    });

    let local = IceCredentials::new(SERVER_UFRAG, SERVER_PWD).expect("valid credentials");
    let mut agent = IceLiteAgent::new(local, IceLiteConfig::default());
    let now = Instant::now();
    c.bench_function("stun/agent_check_round_trip", |b| {
        b.iter(|| {
            let msg = StunMessage::parse(black_box(request)).expect("valid check");
            agent
                .handle_binding_request(now, source, &msg, &mut out)
                .response_len()
                .expect("answered")
        })
    });
}

criterion_group!(benches, stun);
criterion_main!(benches);
