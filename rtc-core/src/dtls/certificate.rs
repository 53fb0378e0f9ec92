//! The endpoint's own identity: a self-signed ECDSA P-256 certificate whose SHA-256
//! fingerprint goes into SDP, as WebRTC requires (RFC 8827 section 6.5).
//!
//! Randomness: [`DtlsCertificate::generate`] draws the private scalar and the serial number
//! from the caller's CSPRNG. The one exception is the ECDSA nonce of the self-signature,
//! which aws-lc-rs draws internally (its signing API takes no RNG). The validity
//! period is rcgen's fixed default (1975 to 4096), which needs no clock; peers check the
//! fingerprint, never the dates.

use std::fmt;

use aws_lc_rs::agreement;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use rand::CryptoRng;
use rcgen::{CertificateParams, DistinguishedName, DnType, SerialNumber};

use super::{DtlsError, Fingerprint};

/// A uniformly random 256-bit value is outside the P-256 scalar range with probability
/// about 2^-32, so a few attempts only fail if the RNG is broken.
const KEY_ATTEMPTS: usize = 8;

/// Length of an uncompressed P-256 public point (0x04 || X || Y).
const P256_PUBLIC_POINT_LEN: usize = 65;

const PEM_CERTIFICATE: &str = "CERTIFICATE";
const PEM_PKCS8_KEY: &str = "PRIVATE KEY";
const PEM_SEC1_KEY: &str = "EC PRIVATE KEY";

/// A certificate and its private key, ready to hand to any number of [`super::DtlsEndpoint`]s.
#[derive(Clone)]
pub struct DtlsCertificate {
    /// DER certificate and PKCS#8 private key in the form the DTLS engine takes.
    pub(super) engine_form: dimpl::DtlsCertificate,
    fingerprint: Fingerprint,
}

impl DtlsCertificate {
    /// Generates a fresh self-signed ECDSA P-256 certificate with keys drawn from `rng`.
    ///
    /// `rng` must be a cryptographically secure generator (for instance the operating
    /// system's, `rand::rngs::OsRng`): whoever predicts it can impersonate the endpoint.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Result<Self, DtlsError> {
        let key_pkcs8 = generate_p256_pkcs8(rng)?;
        let key_pair = rcgen::KeyPair::try_from(key_pkcs8.as_slice())
            .map_err(|_| DtlsError::CertificateGeneration)?;

        let mut params = CertificateParams::new(Vec::<String>::new())
            .map_err(|_| DtlsError::CertificateGeneration)?;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "sluice");
        params.distinguished_name = name;
        // Firefox rejects a peer certificate whose issuer and serial it has seen with a
        // different key, so every certificate gets its own random serial.
        let mut serial = [0u8; 16];
        rng.fill_bytes(&mut serial);
        serial[0] = (serial[0] & 0x7f) | 0x01; // positive and minimally encoded
        params.serial_number = Some(SerialNumber::from(serial.to_vec()));

        #[expect(
            clippy::disallowed_methods,
            reason = "the documented exception (see the module doc and clippy.toml): aws-lc-rs \
                      draws the ECDSA nonce of the self-signature from the OS"
        )]
        let certificate = params
            .self_signed(&key_pair)
            .map_err(|_| DtlsError::CertificateGeneration)?;
        Self::from_der(certificate.der(), &key_pkcs8)
    }

    /// Loads a DER certificate and its DER private key (PKCS#8, or SEC1 `EC PRIVATE KEY`).
    ///
    /// The key must be ECDSA P-256 and must belong to the certificate.
    pub fn from_der(certificate_der: &[u8], private_key_der: &[u8]) -> Result<Self, DtlsError> {
        let key_pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, private_key_der)
            .or_else(|_| {
                EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_ASN1_SIGNING, private_key_der)
            })
            .map_err(|_| DtlsError::PrivateKeyInvalid)?;
        let key_pkcs8 = key_pair
            .to_pkcs8v1()
            .map_err(|_| DtlsError::PrivateKeyInvalid)?;

        // The SubjectPublicKeyInfo carries the public point verbatim; a certificate that does
        // not contain our point was issued for another key and every handshake would fail.
        let public_point = key_pair.public_key().as_ref();
        let certificate_holds_key = public_point.len() == P256_PUBLIC_POINT_LEN
            && certificate_der
                .windows(P256_PUBLIC_POINT_LEN)
                .any(|window| window == public_point);
        if !certificate_holds_key {
            return Err(DtlsError::CertificateKeyMismatch);
        }

        Ok(DtlsCertificate {
            engine_form: dimpl::DtlsCertificate {
                certificate: certificate_der.to_vec(),
                private_key: key_pkcs8.as_ref().to_vec(),
            },
            fingerprint: Fingerprint::of_certificate_der(certificate_der),
        })
    }

    /// Loads a PEM bundle holding one `CERTIFICATE` and one `PRIVATE KEY` (or
    /// `EC PRIVATE KEY`) block, in any order, as written by [`Self::to_pem`] or openssl.
    pub fn from_pem(pem: &str) -> Result<Self, DtlsError> {
        let blocks = pem::parse_many(pem).map_err(|_| DtlsError::PemInvalid)?;
        let find = |tags: &[&str]| {
            blocks
                .iter()
                .find(|block| tags.contains(&block.tag()))
                .map(pem::Pem::contents)
                .ok_or(DtlsError::PemInvalid)
        };
        let certificate = find(&[PEM_CERTIFICATE])?;
        let key = find(&[PEM_PKCS8_KEY, PEM_SEC1_KEY])?;
        Self::from_der(certificate, key)
    }

    /// The certificate and its PKCS#8 key as PEM, so a server can keep its fingerprint across
    /// restarts.
    pub fn to_pem(&self) -> String {
        pem::encode_many(&[
            pem::Pem::new(PEM_CERTIFICATE, self.engine_form.certificate.clone()),
            pem::Pem::new(PEM_PKCS8_KEY, self.engine_form.private_key.clone()),
        ])
    }

    /// The DER-encoded certificate.
    pub fn certificate_der(&self) -> &[u8] {
        &self.engine_form.certificate
    }

    /// The SHA-256 fingerprint to announce in SDP.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }
}

impl fmt::Debug for DtlsCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the private key.
        f.debug_struct("DtlsCertificate")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// A P-256 key pair in PKCS#8 whose private scalar comes from `rng`.
fn generate_p256_pkcs8<R: CryptoRng + ?Sized>(rng: &mut R) -> Result<Vec<u8>, DtlsError> {
    for _ in 0..KEY_ATTEMPTS {
        let mut scalar = [0u8; 32];
        rng.fill_bytes(&mut scalar);
        // Rejects zero and values at or above the group order: draw again.
        let Ok(private) = agreement::PrivateKey::from_private_key(&agreement::ECDH_P256, &scalar)
        else {
            continue;
        };
        let public = private
            .compute_public_key()
            .map_err(|_| DtlsError::CertificateGeneration)?;
        let key_pair = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            &scalar,
            public.as_ref(),
        )
        .map_err(|_| DtlsError::CertificateGeneration)?;
        scalar.fill(0);
        let pkcs8 = key_pair
            .to_pkcs8v1()
            .map_err(|_| DtlsError::CertificateGeneration)?;
        return Ok(pkcs8.as_ref().to_vec());
    }
    Err(DtlsError::CertificateGeneration)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    use super::*;

    fn seeded(seed: u64) -> ChaCha20Rng {
        ChaCha20Rng::seed_from_u64(seed)
    }

    #[test]
    fn generation_is_driven_by_the_injected_rng() {
        let a = DtlsCertificate::generate(&mut seeded(1)).unwrap();
        let again = DtlsCertificate::generate(&mut seeded(1)).unwrap();
        let b = DtlsCertificate::generate(&mut seeded(2)).unwrap();
        // ECDSA signatures are randomized inside the crypto library, so the certificates
        // differ, but the key (and so the public point) is the RNG's.
        let point = |c: &DtlsCertificate| {
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &c.engine_form.private_key)
                .unwrap()
                .public_key()
                .as_ref()
                .to_vec()
        };
        assert_eq!(point(&a), point(&again));
        assert_ne!(point(&a), point(&b));
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn fingerprint_is_the_sha256_of_the_der() {
        let cert = DtlsCertificate::generate(&mut seeded(3)).unwrap();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert.certificate_der());
        assert_eq!(cert.fingerprint().as_bytes().as_slice(), digest.as_ref());
    }

    #[test]
    fn pem_round_trip_keeps_the_identity() {
        let cert = DtlsCertificate::generate(&mut seeded(4)).unwrap();
        let pem = cert.to_pem();
        assert!(pem.contains("-----BEGIN CERTIFICATE-----"));
        assert!(pem.contains("-----BEGIN PRIVATE KEY-----"));
        let loaded = DtlsCertificate::from_pem(&pem).unwrap();
        assert_eq!(loaded.fingerprint(), cert.fingerprint());
        assert_eq!(loaded.engine_form.private_key, cert.engine_form.private_key);
    }

    #[test]
    fn loading_rejects_bad_or_mismatched_inputs() {
        let a = DtlsCertificate::generate(&mut seeded(5)).unwrap();
        let b = DtlsCertificate::generate(&mut seeded(6)).unwrap();
        assert_eq!(
            DtlsCertificate::from_der(a.certificate_der(), &b.engine_form.private_key).err(),
            Some(DtlsError::CertificateKeyMismatch)
        );
        assert_eq!(
            DtlsCertificate::from_der(a.certificate_der(), b"not a key").err(),
            Some(DtlsError::PrivateKeyInvalid)
        );
        assert_eq!(
            DtlsCertificate::from_pem("no pem here").err(),
            Some(DtlsError::PemInvalid)
        );
        let only_certificate = pem::encode(&pem::Pem::new(
            PEM_CERTIFICATE,
            a.certificate_der().to_vec(),
        ));
        assert_eq!(
            DtlsCertificate::from_pem(&only_certificate).err(),
            Some(DtlsError::PemInvalid)
        );
    }
}
