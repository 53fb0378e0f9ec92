//! What negotiated descriptions mean for a session: the router's published and subscribed
//! streams, the DTLS role, the ICE credentials, and Sluice's offers to subscribers. Pure
//! functions of their arguments (randomness comes from the caller's RNG).

use ice_lite::IceCredentials;
use packet_router::{CodecParams, ExtensionIds, SubscribedStream};
use rand::{Rng, RngCore};
use rtc_core::Ssrc;
use rtc_core::dtls::{DtlsRole, Fingerprint};
use rtc_core::sdp::{
    Direction, HeaderExtension, LocalParams, NegotiatedMedia, NegotiatedSession, OutgoingTrack,
    Setup,
};

use crate::SfuError;
use crate::session::SubscriberState;

/// The characters of ICE username fragments; the first one of a ufrag Sluice generates
/// names the worker that owns the session.
const ICE_CHARS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Fresh credentials whose ufrag starts with the character of `worker`.
pub(crate) fn credentials_for(worker: usize, rng: &mut impl RngCore) -> IceCredentials {
    let generated = IceCredentials::generate(rng);
    let prefix = ICE_CHARS.get(worker).copied().map_or('A', char::from);
    IceCredentials::new(&format!("{prefix}{}", generated.ufrag()), generated.pwd())
        .unwrap_or(generated)
}

/// The worker a ufrag of ours belongs to.
pub fn ufrag_owner(ufrag: &str) -> Option<usize> {
    let first = *ufrag.as_bytes().first()?;
    ICE_CHARS.iter().position(|&c| c == first)
}

/// What Sluice's own descriptions carry besides the media: its credentials, fingerprint and
/// candidates, and the `o=` line's numbers.
pub(crate) fn local_params(
    fingerprint: &str,
    candidates: &[String],
    ice: &IceCredentials,
    session_id: u64,
    version: u64,
) -> LocalParams {
    LocalParams {
        ice_ufrag: ice.ufrag().to_owned(),
        ice_pwd: ice.pwd().to_owned(),
        fingerprint: fingerprint.to_owned(),
        candidates: candidates.to_vec(),
        session_id,
        session_version: version,
    }
}

/// A fresh `o=` session id (positive as a signed 64-bit number, as RFC 4566 suggests).
pub(crate) fn sdp_session_id(rng: &mut impl RngCore) -> u64 {
    rng.random_range(1..i64::MAX as u64)
}

/// The peer's certificate fingerprint from its description.
pub(crate) fn remote_fingerprint(negotiated: &NegotiatedSession) -> Result<Fingerprint, SfuError> {
    Fingerprint::parse(&format!(
        "{} {}",
        negotiated.remote_fingerprint.hash, negotiated.remote_fingerprint.value
    ))
    .map_err(|e| SfuError::BadOffer(format!("a=fingerprint: {e}")))
}

/// The peer's ICE credentials from its description.
pub(crate) fn remote_credentials(
    negotiated: &NegotiatedSession,
) -> Result<IceCredentials, SfuError> {
    IceCredentials::new(&negotiated.remote_ice.ufrag, &negotiated.remote_ice.pwd)
        .map_err(|e| SfuError::BadOffer(format!("remote ICE credentials: {e}")))
}

/// Sluice's DTLS role: the client when the peer said `setup:passive` (FFmpeg's WHIP muxer
/// offers so; a browser may answer so), and starts the handshake once ICE has given it an
/// address; otherwise the server.
pub(crate) fn dtls_role(negotiated: &NegotiatedSession) -> DtlsRole {
    if negotiated.remote_setup == Setup::Passive {
        DtlsRole::Client
    } else {
        DtlsRole::Server
    }
}

/// The header extension ids an m-line negotiated, as the router uses them.
pub(crate) fn extension_ids(media: &NegotiatedMedia) -> ExtensionIds {
    let id = |ext| media.extensions.id(ext);
    ExtensionIds {
        mid: id(HeaderExtension::Mid),
        rid: id(HeaderExtension::RtpStreamId),
        repaired_rid: id(HeaderExtension::RepairedRtpStreamId),
        abs_send_time: id(HeaderExtension::AbsSendTime),
        transport_cc: id(HeaderExtension::TransportWideCc),
        audio_level: id(HeaderExtension::AudioLevel),
        dependency_descriptor: id(HeaderExtension::DependencyDescriptor),
    }
}

/// The codecs an m-line negotiated, as the router uses them.
pub(crate) fn codec_params(media: &NegotiatedMedia) -> Vec<CodecParams> {
    media
        .codecs
        .iter()
        .map(|c| CodecParams {
            codec: c.codec,
            pt: c.pt,
            rtx_pt: c.rtx_pt,
        })
        .collect()
}

/// The m-lines on which Sluice receives media from the peer.
pub(crate) fn receiving(negotiated: &NegotiatedSession) -> impl Iterator<Item = &NegotiatedMedia> {
    negotiated
        .media
        .iter()
        .filter(|m| m.accepted && matches!(m.direction, Direction::RecvOnly | Direction::SendRecv))
}

/// The m-lines on which Sluice sends media to the peer.
pub(crate) fn sending(negotiated: &NegotiatedSession) -> impl Iterator<Item = &NegotiatedMedia> {
    negotiated
        .media
        .iter()
        .filter(|m| m.accepted && matches!(m.direction, Direction::SendOnly | Direction::SendRecv))
}

/// What the router sends a subscriber on an m-line: Sluice's SSRCs and random initial
/// sequence number and timestamp (RFC 3550 5.1).
pub(crate) fn subscribed_stream(
    media: &NegotiatedMedia,
    ssrc: Ssrc,
    rtx_ssrc: Option<Ssrc>,
    rng: &mut impl RngCore,
) -> SubscribedStream {
    let has_rtx = media.codecs.iter().any(|c| c.rtx_pt.is_some());
    SubscribedStream {
        ssrc,
        rtx_ssrc: rtx_ssrc.filter(|_| has_rtx),
        codecs: codec_params(media),
        extensions: extension_ids(media),
        // Redundant audio (of Opus, the one audio codec forwarded).
        red_pt: media.codecs.iter().find_map(|c| c.red_pt),
        initial_seq: rng.random(),
        initial_timestamp: rng.random(),
    }
}

/// The outgoing m-lines of Sluice's offer to a subscriber: one per slot, inactive where the
/// track has gone.
pub(crate) fn subscriber_offer_tracks(subscriber: &SubscriberState) -> Vec<OutgoingTrack> {
    subscriber
        .slots
        .iter()
        .map(|slot| OutgoingTrack {
            mid: slot.mid.clone(),
            kind: slot.kind,
            ssrc: slot.ssrc,
            rtx_ssrc: (slot.kind == packet_router::MediaKind::Video).then_some(slot.rtx_ssrc),
            cname: subscriber.cname.clone(),
            stream_id: slot
                .track
                .map_or_else(String::new, |t| format!("stream-{}", t.0)),
            track_id: slot
                .track
                .map_or_else(String::new, |t| format!("track-{}", t.0)),
            codecs: Vec::new(),
            active: slot.track.is_some(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_ufrag_names_its_worker() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for worker in [0, 1, 7, 63] {
            let credentials = credentials_for(worker, &mut rng);
            assert_eq!(ufrag_owner(credentials.ufrag()), Some(worker));
        }
        assert_eq!(ufrag_owner(""), None);
        assert_eq!(ufrag_owner("-x"), None);
    }
}
