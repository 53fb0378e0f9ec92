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
///
/// `now` is only the origin of the harness's virtual time: the caller (the fuzz target, the
/// corpus replay test) reads the clock, the crate never does.
pub fn stun(data: &[u8], now: Instant) {
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
    let first: SocketAddr = SocketAddr::from(([192, 0, 2, 1], 50000));
    let second: SocketAddr = SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], 50001));
    let mut out = [0u8; 1500];
    for (at, source) in [(now, first), (now + Duration::from_secs(20), second)] {
        if let Some(len) = agent
            .handle_binding_request(at, source, &msg, &mut out)
            .response_len()
        {
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
        Err(_) => assert_eq!(
            kind,
            crate::DatagramKind::Stun,
            "only STUN can fail to parse"
        ),
    }
}

/// Decodes the input as an RFC 4571 stream twice: at once, and in reads whose sizes the
/// input itself chooses (its bytes, cycled). Both must give the same frames and the same
/// verdict, whatever the pieces.
pub fn rfc4571(data: &[u8]) {
    use crate::framing::FrameDecoder;
    const MAX: usize = 1500;
    fn decode(data: &[u8], mut piece: impl FnMut(usize) -> usize) -> (Vec<Vec<u8>>, bool) {
        let mut decoder = FrameDecoder::new(MAX);
        let mut frames = Vec::new();
        let mut offset = 0;
        let mut round = 0;
        loop {
            loop {
                match decoder.next_frame() {
                    Ok(Some(frame)) => {
                        assert!(frame.len() <= MAX, "frame above the maximum");
                        frames.push(frame.to_vec());
                    }
                    Ok(None) => break,
                    Err(_) => return (frames, true),
                }
            }
            let spare = decoder.spare();
            assert!(!spare.is_empty(), "no room after the frames were taken");
            let Some(rest) = data.get(offset..) else {
                return (frames, false);
            };
            if rest.is_empty() {
                return (frames, false);
            }
            let len = piece(round).clamp(1, spare.len()).min(rest.len());
            if let (Some(target), Some(source)) = (spare.get_mut(..len), rest.get(..len)) {
                target.copy_from_slice(source);
            }
            decoder.filled(len);
            offset += len;
            round += 1;
        }
    }
    let whole = decode(data, |_| usize::MAX);
    let pieces = decode(data, |round| {
        data.get(round % data.len().max(1))
            .map_or(1, |&b| usize::from(b))
    });
    assert_eq!(
        whole, pieces,
        "the frames depend on how the stream was read"
    );
}

#[cfg(test)]
mod tests {
    //! The seed corpus was generated by a separate implementation (Python's hmac, hashlib and
    //! zlib), so these tests also check our HMAC and CRC framing against an independent one.

    use super::*;
    use crate::{Class, Error, IceEvent};

    macro_rules! seed {
        ($name:literal) => {
            include_bytes!(concat!("../../../fuzz/corpus/stun/", $name))
        };
    }

    fn agent() -> IceLiteAgent {
        let mut agent = IceLiteAgent::new(
            IceCredentials::new(FUZZ_UFRAG, FUZZ_PWD).unwrap(),
            IceLiteConfig::default(),
        );
        agent.set_remote_credentials(IceCredentials::new(FUZZ_REMOTE_UFRAG, FUZZ_PWD).unwrap());
        agent
    }

    fn answer(bytes: &[u8]) -> Result<Option<(Class, Option<u16>)>, Error> {
        let msg = StunMessage::parse(bytes)?;
        let mut agent = agent();
        let mut out = [0u8; 200];
        let source = SocketAddr::from(([192, 0, 2, 1], 50000));
        let answer = match agent.handle_binding_request(
            crate::test_time::origin(),
            source,
            &msg,
            &mut out,
        ) {
            crate::BindingOutcome::Refused {
                error,
                response: None,
            } => return Err(error),
            outcome => outcome.response_len(),
        };
        Ok(answer.map(|len| {
            let response = StunMessage::parse(&out[..len]).unwrap();
            (response.class(), response.error_code().map(|e| e.code))
        }))
    }

    #[test]
    fn independently_generated_checks_get_the_answers_the_rfcs_ask_for() {
        let success = Ok(Some((Class::SuccessResponse, None)));
        assert_eq!(answer(seed!("chrome_check_use_candidate.bin")), success);
        assert_eq!(
            answer(seed!("chrome_check_without_use_candidate.bin")),
            success
        );
        assert_eq!(
            answer(seed!("check_ice_controlled_role_conflict.bin")),
            Ok(Some((Class::ErrorResponse, Some(487))))
        );
        let unauthorized = Ok(Some((Class::ErrorResponse, Some(401))));
        assert_eq!(answer(seed!("check_wrong_password.bin")), unauthorized);
        assert_eq!(answer(seed!("check_unknown_ufrag.bin")), unauthorized);
        assert_eq!(
            answer(seed!("check_bad_fingerprint.bin")),
            Err(Error::FingerprintMismatch)
        );
        assert_eq!(
            answer(seed!("check_without_fingerprint.bin")),
            Err(Error::MissingFingerprint)
        );
        assert_eq!(answer(seed!("binding_indication_keepalive.bin")), Ok(None));
        // 44 bytes in, a 48-byte 400 would come out: withheld rather than amplified.
        assert_eq!(
            answer(seed!("request_without_integrity.bin")),
            Err(Error::ResponseWithheld(400))
        );
    }

    #[test]
    fn independently_generated_check_nominates() {
        let msg = StunMessage::parse(seed!("chrome_check_use_candidate.bin")).unwrap();
        assert_eq!(
            msg.verify_integrity(&IntegrityKey::new(FUZZ_PWD.as_bytes())),
            Ok(())
        );
        assert_eq!(msg.verify_fingerprint(), Ok(()));
        let mut agent = agent();
        let source = SocketAddr::from(([192, 0, 2, 1], 50000));
        let mut out = [0u8; 200];
        agent
            .handle_binding_request(crate::test_time::origin(), source, &msg, &mut out)
            .response_len()
            .unwrap();
        assert_eq!(agent.poll_event(), Some(IceEvent::Nominated(source)));
    }

    #[test]
    fn every_framing_seed_decodes_alike_in_any_pieces() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/rfc4571");
        let mut seeds = 0;
        for entry in std::fs::read_dir(path).unwrap() {
            rfc4571(&std::fs::read(entry.unwrap().path()).unwrap());
            seeds += 1;
        }
        assert!(seeds > 0);
    }

    #[test]
    fn random_streams_decode_alike_in_any_pieces() {
        // A stable-toolchain stand-in for the fuzzer: short lengths are likely, so streams
        // hold many whole frames as well as oversized ones.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..5000 {
            let len = (next() % 4000) as usize;
            let mut data = Vec::with_capacity(len);
            while data.len() < len {
                let frame = (next() % 1600) as usize;
                let header = if next() % 16 == 0 {
                    0xFFFF
                } else {
                    frame as u16
                };
                data.extend_from_slice(&header.to_be_bytes());
                data.extend((0..frame).map(|_| next() as u8));
            }
            data.truncate(len);
            rfc4571(&data);
        }
    }

    #[test]
    fn every_seed_runs_through_both_harnesses() {
        for dir in ["stun", "demux"] {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/");
            for entry in std::fs::read_dir(format!("{path}{dir}")).unwrap() {
                let data = std::fs::read(entry.unwrap().path()).unwrap();
                stun(&data, crate::test_time::origin());
                demux(&data);
            }
        }
    }
}
