//! Sans-IO WebRTC media core for Sluice.
//!
//! Everything here is pure computation over byte buffers: no sockets, no threads, no clock
//! reads and no randomness of its own. Time comes in as an [`std::time::Instant`] argument
//! and randomness through an injected RNG or seed, so every decision is testable in virtual
//! time and fuzzable.
//!
//! - [`rtp`]: a borrowed view over an RTP datagram that validates once and then reads and
//!   rewrites in place; RFC 8285 header extensions; sequence-number and timestamp unwrapping.
//! - [`rtcp`]: compound-packet iteration, typed views and writers for feedback an SFU needs.
//! - [`srtp`]: SRTP and SRTCP protect/unprotect in place (AEAD_AES_128_GCM and
//!   AES_CM_128_HMAC_SHA1_80).
//! - [`dtls`]: the server side of DTLS-SRTP: certificate, fingerprint, handshake driving and
//!   keying-material export.
//! - [`sdp`]: SDP parsing and offer/answer negotiation for publishers and subscribers.
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

pub mod dtls;
mod error;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod ids;
pub mod keying;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
pub mod srtp;
#[cfg(test)]
mod test_time;

pub use error::Error;
pub use ids::{Pt, SeqNo, Ssrc};
pub use keying::{SrtpKeyingMaterial, SrtpProfile};
