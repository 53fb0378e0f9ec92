//! The SHA-256 certificate fingerprint that SDP carries in `a=fingerprint` (RFC 8122) and
//! that binds the DTLS handshake to the signaling channel.
//!
//! Parsing accepts the attribute value in any letter case; display is the canonical
//! `sha-256 AB:CD:...` form. Comparison runs in constant time so that checking a peer's
//! certificate against the expected value leaks nothing about how many bytes matched.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::digest;

use super::DtlsError;

/// Length of a SHA-256 digest.
const SHA256_LEN: usize = 32;

/// The hash function name as SDP spells it (RFC 8122 section 5, matched case-insensitively).
const HASH_NAME: &str = "sha-256";

/// A SHA-256 fingerprint of a DER-encoded certificate.
#[derive(Clone, Copy, Eq)]
pub struct Fingerprint([u8; SHA256_LEN]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_certificate_der(certificate_der: &[u8]) -> Self {
        let digest = digest::digest(&digest::SHA256, certificate_der);
        let mut bytes = [0u8; SHA256_LEN];
        // A SHA-256 digest is always 32 bytes, so both sides have the same length.
        bytes.copy_from_slice(digest.as_ref());
        Fingerprint(bytes)
    }

    /// Wraps a raw 32-byte digest.
    pub const fn from_bytes(bytes: [u8; SHA256_LEN]) -> Self {
        Fingerprint(bytes)
    }

    /// The raw digest.
    pub const fn as_bytes(&self) -> &[u8; SHA256_LEN] {
        &self.0
    }

    /// Parses the SDP attribute value `sha-256 AB:CD:...` (surrounding whitespace, any case).
    pub fn parse(value: &str) -> Result<Self, DtlsError> {
        let value = value.trim();
        let (hash_name, hex) = value
            .split_once([' ', '\t'])
            .ok_or(DtlsError::FingerprintSyntax)?;
        if !hash_name.eq_ignore_ascii_case(HASH_NAME) {
            return Err(DtlsError::FingerprintHashUnsupported);
        }
        let mut bytes = [0u8; SHA256_LEN];
        let mut pairs = hex.trim_start().split(':');
        for byte in &mut bytes {
            let pair = pairs.next().ok_or(DtlsError::FingerprintSyntax)?;
            *byte = parse_hex_pair(pair)?;
        }
        if pairs.next().is_some() {
            return Err(DtlsError::FingerprintSyntax);
        }
        Ok(Fingerprint(bytes))
    }
}

/// One byte from exactly two hex digits; `u8::from_str_radix` alone would also take `+F`.
fn parse_hex_pair(pair: &str) -> Result<u8, DtlsError> {
    let [high, low] = pair.as_bytes() else {
        return Err(DtlsError::FingerprintSyntax);
    };
    let digit = |c: u8| (c as char).to_digit(16).ok_or(DtlsError::FingerprintSyntax);
    // Two hex digits are at most 0xFF, so the value always fits a byte.
    Ok((digit(*high)? * 16 + digit(*low)?) as u8)
}

impl PartialEq for Fingerprint {
    fn eq(&self, other: &Self) -> bool {
        // Fold every byte difference so the time taken does not depend on where they differ.
        let diff = self
            .0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

impl FromStr for Fingerprint {
    type Err = DtlsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Fingerprint::parse(s)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(HASH_NAME)?;
        let mut separator = ' ';
        for byte in &self.0 {
            write!(f, "{separator}{byte:02X}")?;
            separator = ':';
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SHA-256 of the empty input (FIPS 180-2 test vector).
    const EMPTY_SHA256: &str = "sha-256 E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:\
        27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55";

    #[test]
    fn digest_matches_the_fips_vector_and_displays_in_sdp_form() {
        let fingerprint = Fingerprint::of_certificate_der(b"");
        assert_eq!(fingerprint.to_string(), EMPTY_SHA256);
        assert_eq!(fingerprint.to_string().len(), "sha-256 ".len() + 95);
    }

    #[test]
    fn parse_round_trips_and_ignores_case_and_surrounding_space() {
        let expected = Fingerprint::of_certificate_der(b"");
        assert_eq!(Fingerprint::parse(EMPTY_SHA256), Ok(expected));
        let shouted = format!("  {}\r\n", EMPTY_SHA256.to_ascii_uppercase());
        assert_eq!(Fingerprint::parse(&shouted), Ok(expected));
        let lower: Fingerprint = EMPTY_SHA256.to_ascii_lowercase().parse().unwrap();
        assert_eq!(lower, expected);
    }

    #[test]
    fn parse_rejects_malformed_values() {
        let pairs = EMPTY_SHA256.trim_start_matches("sha-256 ");
        let cases = [
            ("", DtlsError::FingerprintSyntax),
            ("sha-256", DtlsError::FingerprintSyntax),
            (
                &format!("sha-1 {pairs}"),
                DtlsError::FingerprintHashUnsupported,
            ),
            (&format!("sha-256 {pairs}:00"), DtlsError::FingerprintSyntax),
            (
                &format!("sha-256 {}", &pairs[3..]),
                DtlsError::FingerprintSyntax,
            ),
            (
                &format!("sha-256 {}", pairs.replace("E3", "G3")),
                DtlsError::FingerprintSyntax,
            ),
            (
                &format!("sha-256 {}", pairs.replace("E3", "+E")),
                DtlsError::FingerprintSyntax,
            ),
            (
                &format!("sha-256 {}", pairs.replace("E3", "E")),
                DtlsError::FingerprintSyntax,
            ),
            (
                &format!("sha-256 {}", pairs.replace(':', "-")),
                DtlsError::FingerprintSyntax,
            ),
        ];
        for (input, error) in cases {
            assert_eq!(Fingerprint::parse(input), Err(error), "input {input:?}");
        }
    }

    #[test]
    fn equality_sees_a_difference_in_any_byte() {
        let base = Fingerprint::from_bytes([7; 32]);
        for index in 0..32 {
            let mut bytes = [7; 32];
            bytes[index] ^= 0x80;
            assert_ne!(base, Fingerprint::from_bytes(bytes), "byte {index}");
        }
        assert_eq!(base, Fingerprint::from_bytes([7; 32]));
    }
}
