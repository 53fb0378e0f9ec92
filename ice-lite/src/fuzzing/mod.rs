//! Fuzz harnesses for the STUN codec and the demux; see `rtc_core::fuzzing` for the scheme.
//! Each must never panic on any input.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::{
    Datagram, IceCredentials, IceLiteAgent, IceLiteConfig, IntegrityKey, StunMessage, classify,
};

/// The agent's credentials in the harness; seeds carrying USERNAME "fuzz:peer" and keyed with
/// this password reach the agent's success path.
pub const FUZZ_UFRAG: &str = "fuzz";
/// See [`FUZZ_UFRAG`].
pub const FUZZ_PWD: &str = "fuzzpasswordfuzzpassword";
/// The peer's ufrag the harness expects.
pub const FUZZ_REMOTE_UFRAG: &str = "peer";

/// Parses, reads every attribute, verifies integrity with a fixed key and the fingerprint,
/// then feeds the message into an agent twice (from two addresses, across a timeout).
pub fn stun(data: &[u8]) {
    let Ok(msg) = StunMessage::parse(data) else {
        return;
    };
    exercise_view(&msg);
    let Ok(local) = IceCredentials::new(FUZZ_UFRAG, FUZZ_PWD) else {
        return;
    };
    let mut agent = IceLiteAgent::new(local, IceLiteConfig::default());
    if let Ok(remote) = IceCredentials::new(FUZZ_REMOTE_UFRAG, FUZZ_PWD) {
        agent.set_remote_credentials(remote);
    }
    // The harness plays the IO shell here: it is the only place in src/ that reads the
    // clock, and only to have an origin; the agent itself takes time as an argument.
    let now = Instant::now();
    let first: SocketAddr = SocketAddr::from(([192, 0, 2, 1], 50000));
    let second: SocketAddr = SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], 50001));
    let mut out = [0u8; 1500];
    for (at, source) in [(now, first), (now + Duration::from_secs(20), second)] {
        if let Ok(Some(len)) = agent.handle_binding_request(at, source, &msg, &mut out) {
            // Whatever the agent writes must itself be a valid STUN message.
            if let Some(response) = out.get(..len) {
                assert!(
                    StunMessage::parse(response).is_ok(),
                    "agent wrote invalid STUN"
                );
            }
        }
        while agent.poll_event().is_some() {}
    }
    if let Some(deadline) = agent.poll_timeout() {
        agent.handle_timeout(deadline);
    }
    let _ = (
        agent.selected_address(),
        agent.is_validated(first),
        agent.stats(),
    );
}

fn exercise_view(msg: &StunMessage<'_>) {
    let _ = (msg.method(), msg.class(), msg.transaction_id());
    let _ = (
        msg.username(),
        msg.priority(),
        msg.use_candidate(),
        msg.software(),
    );
    let _ = (
        msg.ice_controlling(),
        msg.ice_controlled(),
        msg.xor_mapped_address(),
    );
    let _ = msg.error_code();
    for attribute in msg.attributes() {
        std::hint::black_box(attribute);
    }
    let key = IntegrityKey::new(FUZZ_PWD.as_bytes());
    let _ = msg.verify_integrity(&key);
    let _ = msg.verify_fingerprint();
}

/// Classifies the datagram and parses what the class says (STUN here; the other classes are
/// handed on as the bytes they are).
pub fn demux(data: &[u8]) {
    let kind = classify(data);
    match Datagram::parse(data) {
        Ok(datagram) => {
            assert_eq!(datagram.kind(), kind, "parse and classify disagree");
            if let Datagram::Stun(msg) = datagram {
                exercise_view(&msg);
            }
        }
        Err(_) => assert_eq!(kind, crate::PacketKind::Stun, "only STUN can fail to parse"),
    }
}
