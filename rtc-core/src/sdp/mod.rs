//! SDP (RFC 8866) parsing and offer/answer negotiation (RFC 3264, JSEP) for Sluice.
//!
//! Sluice is ICE-lite, the DTLS server, and bundles all media on one transport with RTCP
//! multiplexed. Two directions of negotiation:
//!
//! - Publishers and WHEP players offer, Sluice answers: [`answer_offer`].
//! - Subscribers: Sluice offers with [`build_subscriber_offer`] and applies the browser's
//!   answer with [`apply_subscriber_answer`].
//!
//! Both yield a [`NegotiatedSession`]: per mid, the kind, direction, codecs with their payload
//! types and RTX, header extension ids, simulcast rids and the remote SSRCs, plus the remote
//! ICE credentials and DTLS fingerprint.
//!
//! ```
//! use rtc_core::sdp::{answer_offer, Capabilities, LocalParams};
//! # let offer = include_str!("fixtures/chromium-publish.sdp");
//! let local = LocalParams {
//!     ice_ufrag: "sluice".into(),
//!     ice_pwd: "0123456789abcdefghijkl".into(),
//!     fingerprint: "sha-256 AB:CD".into(),
//!     candidates: vec!["1 1 udp 2130706431 203.0.113.7 3478 typ host".into()],
//!     session_id: 1,
//!     session_version: 1,
//! };
//! let (answer, session) = answer_offer(offer, &local, &Capabilities::default())?;
//! assert!(answer.contains("a=setup:passive"));
//! assert_eq!(session.media[1].codecs[0].name, "VP8");
//! # Ok::<(), rtc_core::sdp::SdpError>(())
//! ```
//!
//! The model ([`SessionDescription`]) owns its strings: SDP is exchanged once per
//! negotiation, never per packet. The parser bounds everything before it allocates.

mod answer;
mod attribute;
mod codec;
mod error;
mod local;
pub(crate) mod negotiated;
mod session;
mod subscriber;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

pub use answer::{Capabilities, answer_offer, answer_offer_sending};
pub use attribute::{
    Attribute, Direction, Extmap, Fingerprint, Fmtp, Msid, Rid, RtcpFb, Rtpmap, Setup, Simulcast,
    SimulcastStream, SsrcAttribute, SsrcGroup, fmtp_param,
};
pub use codec::{Codec, HeaderExtension, RtcpFeedback};
pub use error::{MlineRef, SdpError, Snippet};
pub use local::LocalParams;
pub use negotiated::{
    ExtensionMap, IceCredentials, MediaKind, NegotiatedCodec, NegotiatedMedia, NegotiatedSession,
    RemoteStream,
};
pub use session::{MediaSection, Origin, SessionDescription};
pub use subscriber::{OutgoingTrack, apply_subscriber_answer, build_subscriber_offer};

/// Largest description accepted, in bytes (browser offers are 4-7 KiB).
pub const MAX_SDP_LEN: usize = 64 * 1024;
/// Longest line accepted, in bytes.
pub const MAX_LINE_LEN: usize = 2048;
/// Most m-lines accepted (a subscriber's answer has one per track it receives).
pub const MAX_MEDIA_SECTIONS: usize = 256;
/// Most attributes accepted at session level or in one media section (a browser's video
/// section has about 150).
pub const MAX_ATTRIBUTES: usize = 512;
