//! Sans-IO WebRTC media core for Sluice.
//!
//! Everything here is pure computation over byte buffers: no sockets, no threads, no clock
//! reads and no randomness of its own. Time comes in as an [`std::time::Instant`] argument
//! and randomness through an injected RNG or seed, so every decision is testable in virtual
//! time and fuzzable.
//!
//! - [`rtp`]: a borrowed view over an RTP datagram that validates once and then reads and
//!   rewrites in place; RFC 8285 header extensions; sequence-number and timestamp unwrapping.
//! - [`codec`]: VP8, VP9, H.264 and AV1 payload descriptors and the Dependency Descriptor
//!   extension: keyframes, frame starts, layer ids, picture sizes, PictureID rewriting.
//! - [`rtcp`]: compound-packet iteration, typed views and writers for feedback an SFU needs.
//! - [`srtp`]: SRTP and SRTCP protect/unprotect in place (AEAD_AES_128_GCM and
//!   AES_CM_128_HMAC_SHA1_80).
//! - [`dtls`]: the server side of DTLS-SRTP: certificate, fingerprint, handshake driving and
//!   keying-material export.
//! - [`sdp`]: SDP parsing and offer/answer negotiation for publishers and subscribers.
//! - [`ids`]: newtypes for wire numbers and the minted ids of sessions, tracks and
//!   subscriptions (with their node and worker); [`media_api`]: the values the media plane
//!   hands to signaling.

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod codec;
pub mod dtls;
mod error;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod ids;
pub mod keying;
pub mod media_api;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
pub mod srtp;
#[cfg(test)]
mod test_time;

pub use error::Error;
pub use ids::{IdSpace, NodeId, Pt, SeqNo, SessionId, Ssrc, SubscriptionId, TrackId};
pub use keying::{SrtpKeyingMaterial, SrtpProfile};
