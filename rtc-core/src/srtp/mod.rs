//! SRTP and SRTCP (RFC 3711) protection in place, for the AES_CM_128_HMAC_SHA1_80,
//! AEAD_AES_128_GCM and AEAD_AES_256_GCM (RFC 7714) profiles negotiated by DTLS-SRTP.
//!
//! A [`SrtpSession`] holds the two directions of one DTLS-SRTP association: `outbound`
//! protects what this endpoint sends, `inbound` unprotects what it receives. Packets are
//! transformed in the caller's buffer with no allocation; session keys and cipher contexts are
//! set up once when the session is built.
//!
//! ```
//! use rtc_core::keying::{SrtpKeyingMaterial, SrtpMasterKey, SrtpProfile};
//! use rtc_core::srtp::SrtpSession;
//!
//! // AEAD_AES_256_GCM uses all 32 key bytes and the first 12 salt bytes.
//! let key = SrtpMasterKey { key: [7; 32], salt: [9; 14] };
//! let keying = SrtpKeyingMaterial {
//!     profile: SrtpProfile::AeadAes256Gcm,
//!     local: key.clone(),
//!     remote: key,
//! };
//! let mut sender = SrtpSession::new(&keying)?;
//! let mut receiver = SrtpSession::new(&keying)?;
//!
//! let rtp = [0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 42, 0xde, 0xad, 0xbe, 0xef];
//! let mut buf = [0u8; 1500];
//! buf[..rtp.len()].copy_from_slice(&rtp);
//! let protected_len = sender.outbound.protect_rtp(&mut buf, rtp.len())?;
//! let plain_len = receiver.inbound.unprotect_rtp(&mut buf[..protected_len])?;
//! assert_eq!(&buf[..plain_len], &rtp);
//! # Ok::<(), rtc_core::srtp::SrtpError>(())
//! ```

mod context;
mod kdf;
mod replay;
mod transform;

#[cfg(test)]
mod interop_tests;
#[cfg(test)]
mod tests;

pub use context::{DEFAULT_MAX_STREAMS, SrtpContext};
pub use replay::REPLAY_WINDOW;

use crate::keying::SrtpKeyingMaterial;

/// Why an SRTP or SRTCP packet could not be protected or unprotected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SrtpError {
    /// The packet is shorter than its header, tag and (SRTCP) index need.
    Truncated,
    /// The RTP or RTCP header is malformed (version not 2, or header longer than the packet).
    MalformedHeader,
    /// The given packet length exceeds the buffer.
    LengthOutOfBounds,
    /// The buffer has no room after the packet for the tag (and SRTCP index).
    BufferTooSmall,
    /// The authentication tag does not match: the packet was forged, corrupted, or protected
    /// with other keys.
    AuthenticationFailed,
    /// A packet with this index was already accepted on this stream.
    Replayed,
    /// The packet index lies behind the replay window (or before the stream's first packet).
    TooOld,
    /// The packet belongs to a new SSRC and the context already tracks its maximum number of
    /// streams.
    TooManyStreams,
    /// The packet index space of the key (2^48 SRTP or 2^31 SRTCP packets) is used up: the
    /// session must be re-keyed.
    KeyExhausted,
    /// The crypto library rejected a key or operation.
    Crypto,
}

impl std::fmt::Display for SrtpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SrtpError::Truncated => "packet too short for its header, tag and index",
            SrtpError::MalformedHeader => "malformed RTP or RTCP header",
            SrtpError::LengthOutOfBounds => "packet length exceeds the buffer",
            SrtpError::BufferTooSmall => "no room in the buffer for the tag",
            SrtpError::AuthenticationFailed => "authentication tag mismatch",
            SrtpError::Replayed => "packet replayed",
            SrtpError::TooOld => "packet index behind the replay window",
            SrtpError::TooManyStreams => "too many SSRC streams in this context",
            SrtpError::KeyExhausted => "packet index space of the key exhausted",
            SrtpError::Crypto => "crypto library failure",
        })
    }
}

impl std::error::Error for SrtpError {}

/// Both directions of one DTLS-SRTP association.
#[derive(Debug)]
pub struct SrtpSession {
    /// Protects what this endpoint sends (the `local` keys).
    pub outbound: SrtpContext,
    /// Unprotects what this endpoint receives (the `remote` keys).
    pub inbound: SrtpContext,
}

impl SrtpSession {
    /// Derives the session keys of both directions from the DTLS-SRTP keying material.
    pub fn new(keying: &SrtpKeyingMaterial) -> Result<Self, SrtpError> {
        Ok(Self {
            outbound: SrtpContext::new(keying.profile, &keying.local)?,
            inbound: SrtpContext::new(keying.profile, &keying.remote)?,
        })
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    /// Decodes hex, ignoring whitespace.
    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
