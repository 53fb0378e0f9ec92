//! The crate's one error type: small and `Copy`, so rejecting a hostile datagram never
//! allocates, with a `Display` that says what was wrong.

use std::fmt;

/// Any error produced by ice-lite: STUN parsing and verification, writing, credentials and the
/// agent's reasons for dropping a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// Fewer bytes than a STUN header (20) or than the header's length field announces.
    Truncated,
    /// The two leading bits of the message type are not zero.
    NotStun,
    /// The magic cookie is not 0x2112A442 (an RFC 3489 message or not STUN at all).
    BadMagicCookie,
    /// The length field is not a multiple of 4 or does not equal the bytes after the header.
    BadLength,
    /// An attribute header or value (with its padding) runs past the end of the message.
    AttributeTruncated,
    /// An attribute follows FINGERPRINT, which must be the last one.
    AttributeAfterFingerprint,
    /// A known attribute has the wrong length or an invalid value; carries its type.
    MalformedAttribute(u16),
    /// The message has no MESSAGE-INTEGRITY attribute.
    MissingIntegrity,
    /// MESSAGE-INTEGRITY does not match the HMAC computed with the given key.
    IntegrityMismatch,
    /// The message has no FINGERPRINT attribute.
    MissingFingerprint,
    /// FINGERPRINT does not match the CRC-32 of the message.
    FingerprintMismatch,
    /// The output buffer is too small for the message being written.
    BufferTooSmall,
    /// Only FINGERPRINT may be written after MESSAGE-INTEGRITY.
    AttributeAfterIntegrity,
    /// An attribute value is longer than a STUN attribute can carry.
    ValueTooLong,
    /// A ufrag or password is too short or contains characters outside ice-char.
    InvalidCredentials,
    /// The STUN message is a request for a method other than Binding.
    UnsupportedMethod,
    /// A Binding request without USERNAME or MESSAGE-INTEGRITY.
    MissingUsername,
    /// USERNAME does not name this agent's ufrag (and the peer's, once known).
    UnknownUsername,
    /// A response to an unauthenticated request would be larger than the request, so it is
    /// not sent (no amplification); carries the error code that was withheld.
    ResponseWithheld(u16),
    /// Consent has expired: the session is over and takes no more checks.
    ConsentExpired,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => f.write_str("stun: message shorter than its header says"),
            Error::NotStun => f.write_str("stun: leading bits of the message type are not zero"),
            Error::BadMagicCookie => f.write_str("stun: wrong magic cookie"),
            Error::BadLength => {
                f.write_str("stun: length field not a multiple of 4 or not the datagram size")
            }
            Error::AttributeTruncated => f.write_str("stun: attribute runs past the message"),
            Error::AttributeAfterFingerprint => f.write_str("stun: attribute after FINGERPRINT"),
            Error::MalformedAttribute(t) => write!(f, "stun: malformed attribute 0x{t:04x}"),
            Error::MissingIntegrity => f.write_str("stun: no MESSAGE-INTEGRITY"),
            Error::IntegrityMismatch => f.write_str("stun: MESSAGE-INTEGRITY mismatch"),
            Error::MissingFingerprint => f.write_str("stun: no FINGERPRINT"),
            Error::FingerprintMismatch => f.write_str("stun: FINGERPRINT mismatch"),
            Error::BufferTooSmall => f.write_str("stun: output buffer too small"),
            Error::AttributeAfterIntegrity => {
                f.write_str("stun: only FINGERPRINT may follow MESSAGE-INTEGRITY")
            }
            Error::ValueTooLong => f.write_str("stun: attribute value too long"),
            Error::InvalidCredentials => {
                f.write_str("ice: ufrag needs >= 4 and pwd >= 22 ice-chars (A-Z a-z 0-9 + /)")
            }
            Error::UnsupportedMethod => f.write_str("ice: request for a method other than Binding"),
            Error::MissingUsername => {
                f.write_str("ice: Binding request without USERNAME or MESSAGE-INTEGRITY")
            }
            Error::UnknownUsername => f.write_str("ice: USERNAME does not match the session"),
            Error::ResponseWithheld(code) => write!(
                f,
                "ice: {code} response withheld, larger than the unauthenticated request"
            ),
            Error::ConsentExpired => f.write_str("ice: consent expired"),
        }
    }
}

impl std::error::Error for Error {}
