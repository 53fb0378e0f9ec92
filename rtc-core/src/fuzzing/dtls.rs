//! Fuzz harness for the DTLS endpoint (target `dtls_record`).
//!
//! Input: a sequence of frames, each a big-endian `u16` length and that many bytes, fed as
//! datagrams into a fresh server endpoint
//! without the cookie exchange (a fuzzer cannot compute the cookie MAC, and with it nothing
//! past the ClientHello would be reached). A zero length advances virtual time by one second
//! and fires the timer instead, so retransmission and timeout paths are reached too. After
//! every step all outputs are drained, as a real run loop would.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rand::SeedableRng;

use crate::dtls::{DTLS_MTU, DtlsCertificate, DtlsEndpoint, Fingerprint};

/// Generating a certificate costs far more than one run, so it is made once per process.
fn fixture() -> Option<&'static DtlsCertificate> {
    static FIXTURE: OnceLock<Option<DtlsCertificate>> = OnceLock::new();
    FIXTURE
        .get_or_init(|| {
            // A fixed seed keeps runs reproducible; no secret depends on it.
            let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
            DtlsCertificate::generate(&mut rng).ok()
        })
        .as_ref()
}

/// Feeds arbitrary bytes through the dtls endpoint, with virtual time starting at `start`
/// (the caller reads the clock; the crate never does).
pub fn run(data: &[u8], start: Instant) {
    let Some(certificate) = fixture() else {
        return;
    };
    let mut now = start;
    // No input can produce a certificate with this fingerprint; the mismatch path is reached
    // by any input that gets as far as a client certificate.
    let expected = Fingerprint::from_bytes([0x42; 32]);
    let mut endpoint = DtlsEndpoint::new_server_without_cookie(certificate, expected, now);
    let mut out = [0u8; DTLS_MTU];
    let mut rest = data;
    while let [high, low, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*high, *low]));
        let (datagram, after) = tail.split_at_checked(len).unwrap_or((tail, &[]));
        rest = after;
        if len == 0 {
            now += Duration::from_secs(1);
            endpoint.handle_timeout(now);
        } else {
            let _ = endpoint.handle_datagram(now, datagram);
        }
        while endpoint.poll_transmit(&mut out).is_some() {}
        while endpoint.poll_event().is_some() {}
        let _ = endpoint.poll_timeout();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_empty_short_and_oversized_frames() {
        let origin = crate::test_time::origin();
        run(&[], origin);
        run(&[0], origin);
        run(&[0, 0, 0, 0], origin);
        run(&[0xff, 0xff, 22, 0xfe, 0xfd], origin);
        let mut big = vec![0x07, 0xd0];
        big.extend(std::iter::repeat_n(22u8, 2000));
        run(&big, origin);
    }

    /// The seed replaying a real client's flights (its ClientHello, then its certificate
    /// flight renumbered as if no cookie exchange had happened) must get past the Certificate
    /// and ClientKeyExchange parsers to the CertificateVerify signature, which fails because
    /// the transcript holds another server's random. Otherwise the fuzzer would never reach
    /// the certificate parser.
    #[test]
    fn replayed_client_flights_reach_the_signature_check() {
        let seed = include_bytes!(
            "../../../fuzz/corpus/dtls_record/client_hello_then_client_certificate_flight.bin"
        );
        let certificate = fixture().unwrap();
        let origin = crate::test_time::origin();
        let expected = Fingerprint::from_bytes([0x42; 32]);
        let mut endpoint = DtlsEndpoint::new_server_without_cookie(certificate, expected, origin);
        let mut out = [0u8; DTLS_MTU];
        let mut rest = &seed[..];
        let mut results = Vec::new();
        while let [high, low, tail @ ..] = rest {
            let (datagram, after) = tail.split_at(usize::from(u16::from_be_bytes([*high, *low])));
            rest = after;
            results.push(endpoint.handle_datagram(origin, datagram));
            while endpoint.poll_transmit(&mut out).is_some() {}
        }
        assert_eq!(results, vec![Ok(()), Err(crate::dtls::DtlsError::Crypto)]);
    }
}
