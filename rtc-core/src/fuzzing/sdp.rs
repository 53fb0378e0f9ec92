//! Fuzz harness for the sdp module: parse arbitrary text, check that what the writer emits
//! parses back to the same model, answer it as an offer and check that the answer says what
//! the negotiated session says, and apply it as a subscriber's answer.

use crate::Ssrc;
use crate::sdp::negotiated::{select_codecs, select_extensions};
use crate::sdp::{
    Capabilities, Codec, LocalParams, MAX_SDP_LEN, MediaKind, OutgoingTrack, SessionDescription,
    answer_offer, apply_subscriber_answer, build_subscriber_offer,
};

fn local() -> LocalParams {
    LocalParams {
        ice_ufrag: "fuzz".to_owned(),
        ice_pwd: "fuzzpasswordfuzzpassword".to_owned(),
        fingerprint: "sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF".to_owned(),
        candidates: vec!["1 1 udp 2130706431 192.0.2.1 3478 typ host".to_owned()],
        session_id: 1,
        session_version: 1,
    }
}

fn subscriber_offer(local: &LocalParams) -> String {
    let track = |mid: &str, kind, ssrc, rtx: Option<u32>| OutgoingTrack {
        mid: mid.to_owned(),
        kind,
        ssrc: Ssrc(ssrc),
        rtx_ssrc: rtx.map(Ssrc),
        cname: "fuzz".to_owned(),
        stream_id: "s".to_owned(),
        track_id: mid.to_owned(),
        codecs: Vec::new(),
        active: true,
    };
    build_subscriber_offer(
        local,
        &[
            track("0", MediaKind::Audio, 1, None),
            track("1", MediaKind::Video, 2, Some(3)),
        ],
    )
}

/// Feeds arbitrary bytes through the sdp parser and both negotiation directions.
///
/// # Panics
///
/// When the writer emits something the parser reads differently, or an answer disagrees
/// with its negotiated session: those are the bugs this harness looks for.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(sdp) = SessionDescription::parse(text) {
        let written = sdp.to_string();
        // Writing adds CRLFs and a t= line, which can push a near-limit input over it.
        if written.len() <= MAX_SDP_LEN {
            assert_eq!(SessionDescription::parse(&written).as_ref(), Ok(&sdp));
        }
    }
    let local = local();
    let capabilities = Capabilities {
        codecs: Codec::ALL.to_vec(),
    };
    if let Ok((answer, session)) = answer_offer(text, &local, &capabilities)
        && answer.len() <= MAX_SDP_LEN
    {
        let parsed = SessionDescription::parse(&answer);
        assert!(
            parsed.is_ok(),
            "answer does not parse: {parsed:?}\n{answer}"
        );
        if let Ok(parsed) = parsed {
            assert_eq!(parsed.bundle_group(), Some(session.bundle.as_slice()));
            assert_eq!(parsed.media.len(), session.media.len());
            for (section, media) in parsed.media.iter().zip(&session.media) {
                assert_eq!(select_codecs(section, &Codec::ALL), media.codecs);
                assert_eq!(select_extensions(section), media.extensions);
            }
        }
    }
    let _ = apply_subscriber_answer(&subscriber_offer(&local), text);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::Direction;

    /// The subscriber-answer seed must reach the deep end of `apply_subscriber_answer`.
    #[test]
    fn subscriber_answer_seed_is_accepted() {
        let seed =
            include_str!("../../../fuzz/corpus/sdp_offer/subscriber-answer-chromium-like.sdp");
        let session = apply_subscriber_answer(&subscriber_offer(&local()), seed).unwrap();
        assert_eq!(session.media.len(), 2);
        assert!(
            session
                .media
                .iter()
                .all(|m| m.direction == Direction::SendOnly)
        );
        assert_eq!(session.media[1].codecs.len(), 2);
    }
}
