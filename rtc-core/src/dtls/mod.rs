//! DTLS-SRTP (RFC 5763, RFC 5764): the certificate an endpoint presents, the SDP fingerprint
//! that pins the peer's, and a sans-IO endpoint that runs the DTLS 1.2 handshake and hands
//! out SRTP master keys once the peer is verified.
//!
//! - [`DtlsCertificate`]: self-signed ECDSA P-256, generated from an injected CSPRNG or
//!   loaded from DER/PEM.
//! - [`Fingerprint`]: `sha-256 AB:CD:...` parse/display, constant-time comparison.
//! - [`DtlsEndpoint`]: `handle_datagram` / `handle_timeout` in, `poll_transmit` /
//!   `poll_event` / `poll_timeout` out; [`DtlsEvent::Connected`] carries
//!   [`crate::keying::SrtpKeyingMaterial`] split for our role.
//!
//! SRTP profiles: the engine (dimpl 0.9) offers as a client, and picks as a server from what
//! the peer offers, in this order: SRTP_AEAD_AES_256_GCM, SRTP_AEAD_AES_128_GCM,
//! SRTP_AES128_CM_HMAC_SHA1_80. All three map to a [`crate::keying::SrtpProfile`]; the
//! exported keying material is split with the chosen profile's key and salt lengths.

mod certificate;
mod endpoint;
mod fingerprint;
#[cfg(test)]
mod interop_tests;

pub use certificate::DtlsCertificate;
pub use endpoint::{DTLS_MTU, DtlsEndpoint, DtlsEvent, DtlsRole, MAX_DATAGRAM_LEN};
pub use fingerprint::Fingerprint;

/// Errors of the dtls module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DtlsError {
    /// Creating a key pair or self-signing the certificate failed.
    CertificateGeneration,
    /// The private key is not a PKCS#8 or SEC1 ECDSA P-256 key.
    PrivateKeyInvalid,
    /// The certificate does not carry the private key's public key.
    CertificateKeyMismatch,
    /// The PEM text lacks a CERTIFICATE or PRIVATE KEY block.
    PemInvalid,
    /// A fingerprint is not `sha-256` followed by 32 colon-separated hex bytes.
    FingerprintSyntax,
    /// A fingerprint names a hash function other than sha-256.
    FingerprintHashUnsupported,
    /// The peer's certificate does not match the fingerprint from its SDP.
    FingerprintMismatch,
    /// The handshake completed without the peer presenting a certificate.
    PeerCertificateMissing,
    /// The peer's certificate or its signature over the handshake was rejected.
    PeerCertificateInvalid,
    /// The peer negotiated an SRTP profile other than AEAD_AES_256_GCM, AEAD_AES_128_GCM or
    /// AES_CM_128_HMAC_SHA1_80, or none at all.
    SrtpProfileUnsupported,
    /// The exported keying material had the wrong length for its profile.
    KeyingMaterialLength,
    /// The peer did not finish the handshake before the retransmission budget ran out.
    HandshakeTimeout,
    /// The peer violated the security policy (for example no extended master secret).
    SecurityPolicy,
    /// A cryptographic operation of the handshake failed.
    Crypto,
    /// The peer sent more than the endpoint buffers.
    QueueFull,
    /// The peer sent a message that is invalid at this point of the handshake.
    Protocol,
    /// The association is closed.
    Closed,
    /// An output did not fit the endpoint's own buffer.
    InternalBufferTooSmall,
}

impl std::fmt::Display for DtlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DtlsError::CertificateGeneration => "certificate generation failed",
            DtlsError::PrivateKeyInvalid => "private key is not an ECDSA P-256 key",
            DtlsError::CertificateKeyMismatch => "certificate does not match the private key",
            DtlsError::PemInvalid => "PEM needs one CERTIFICATE and one PRIVATE KEY block",
            DtlsError::FingerprintSyntax => {
                "fingerprint must be `sha-256` and 32 colon-separated hex bytes"
            }
            DtlsError::FingerprintHashUnsupported => "fingerprint hash is not sha-256",
            DtlsError::FingerprintMismatch => {
                "peer certificate does not match the fingerprint from its SDP"
            }
            DtlsError::PeerCertificateMissing => "peer presented no certificate",
            DtlsError::PeerCertificateInvalid => "peer certificate or signature rejected",
            DtlsError::SrtpProfileUnsupported => "no supported SRTP protection profile negotiated",
            DtlsError::KeyingMaterialLength => "exported keying material has the wrong length",
            DtlsError::HandshakeTimeout => "handshake timed out",
            DtlsError::SecurityPolicy => "peer violated the security policy",
            DtlsError::Crypto => "cryptographic operation failed",
            DtlsError::QueueFull => "peer overran the receive or transmit queue",
            DtlsError::Protocol => "unexpected handshake message",
            DtlsError::Closed => "association is closed",
            DtlsError::InternalBufferTooSmall => "output larger than the endpoint buffer",
        })
    }
}

impl std::error::Error for DtlsError {}
