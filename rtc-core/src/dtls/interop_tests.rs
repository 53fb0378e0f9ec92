//! Handshakes between our endpoint and an independent DTLS implementation (the webrtc-rs
//! sans-IO `rtc-dtls` client), in memory and in virtual time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rtc_dtls::config::{ConfigBuilder, ExtendedMasterSecretType};
use rtc_dtls::crypto::Certificate;
use rtc_dtls::endpoint::{Endpoint, EndpointEvent};
use rtc_dtls::extension::extension_use_srtp::SrtpProtectionProfile;

use super::*;
use crate::keying::{SrtpKeyingMaterial, SrtpProfile};

const CLIENT_ADDR: &str = "10.0.0.1:5000";
const SERVER_ADDR: &str = "10.0.0.2:6000";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn server_certificate() -> DtlsCertificate {
    DtlsCertificate::generate(&mut ChaCha20Rng::seed_from_u64(42)).unwrap()
}

/// The independent client: an rtc-dtls endpoint plus what it exported.
struct Client {
    endpoint: Endpoint,
    fingerprint: Fingerprint,
    completed: bool,
}

impl Client {
    fn new(now: Instant, profiles: Vec<SrtpProtectionProfile>) -> Client {
        Self::with_subject_names(now, profiles, vec!["client".to_owned()])
    }

    /// Many subject names make a certificate that spans several datagrams.
    fn with_subject_names(
        now: Instant,
        profiles: Vec<SrtpProtectionProfile>,
        names: Vec<String>,
    ) -> Client {
        let provider = rtc_dtls::crypto_provider::default_provider().unwrap();
        // The independent peer makes its own identity the way its users do; what it draws
        // decides nothing the tests check.
        #[expect(
            clippy::disallowed_methods,
            reason = "the independent test peer's key, drawn from the OS as its users draw it"
        )]
        let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        #[expect(
            clippy::disallowed_methods,
            reason = "the independent test peer's self-signature (aws-lc-rs draws the nonce)"
        )]
        let der = rcgen::CertificateParams::new(names)
            .unwrap()
            .self_signed(&key_pair)
            .unwrap()
            .der()
            .clone();
        let certificate = Certificate {
            certificate: vec![der],
            private_key: rtc_dtls::crypto::CryptoPrivateKey::from_key_pair(
                &key_pair,
                provider.crypto(),
            )
            .unwrap(),
        };
        let fingerprint = Fingerprint::of_certificate_der(certificate.certificate[0].as_ref());
        let config = ConfigBuilder::default()
            .with_crypto_provider(provider)
            .with_certificates(vec![certificate])
            // The server is self-signed: WebRTC pins it by fingerprint, checked in the tests.
            .with_insecure_skip_verify(true)
            .with_extended_master_secret(ExtendedMasterSecretType::Require)
            .with_srtp_protection_profiles(profiles)
            .build(true, Some(addr(SERVER_ADDR)))
            .unwrap();
        let mut endpoint = Endpoint::new(addr(CLIENT_ADDR), Default::default(), None);
        endpoint
            .connect(now, addr(SERVER_ADDR), Arc::new(config), None)
            .unwrap();
        Client {
            endpoint,
            fingerprint,
            completed: false,
        }
    }

    fn receive(&mut self, now: Instant, datagram: &[u8]) {
        // Errors are the client's own business (e.g. an alert after a failed handshake).
        if let Ok(events) =
            self.endpoint
                .read(now, addr(SERVER_ADDR), None, BytesMut::from(datagram))
        {
            for event in events {
                if let EndpointEvent::HandshakeComplete = event {
                    self.completed = true;
                }
            }
        }
    }

    fn transmits(&mut self) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| self.endpoint.poll_transmit())
            .map(|t| t.message.to_vec())
            .collect()
    }

    /// The keys as the client sees them, converted to our contract with roles swapped.
    fn keys(&self) -> SrtpKeyingMaterial {
        let state = self
            .endpoint
            .get_connection_state(addr(SERVER_ADDR))
            .unwrap();
        let profile = match state.srtp_protection_profile() {
            SrtpProtectionProfile::Srtp_Aead_Aes_256_Gcm => SrtpProfile::AeadAes256Gcm,
            SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm => SrtpProfile::AeadAes128Gcm,
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80 => SrtpProfile::AesCm128HmacSha1_80,
            other => panic!("unexpected profile {other:?}"),
        };
        let (key_len, salt_len) = (profile.master_key_len(), profile.master_salt_len());
        let material = state
            .export_keying_material("EXTRACTOR-dtls_srtp", &[], 2 * (key_len + salt_len))
            .unwrap();
        let m = material.as_ref();
        let key = |at: usize| {
            let mut key = [0u8; 32];
            key[..key_len].copy_from_slice(&m[at..at + key_len]);
            key
        };
        let salt = |at: usize| {
            let mut salt = [0u8; 14];
            salt[..salt_len].copy_from_slice(&m[at..at + salt_len]);
            salt
        };
        SrtpKeyingMaterial {
            profile,
            local: crate::keying::SrtpMasterKey {
                key: key(0),
                salt: salt(2 * key_len),
            },
            remote: crate::keying::SrtpMasterKey {
                key: key(key_len),
                salt: salt(2 * key_len + salt_len),
            },
        }
    }
}

/// Server, client and a virtual clock; `drop_server_flight` loses one server flight.
struct Pair {
    now: Instant,
    server: DtlsEndpoint,
    client: Client,
    server_events: Vec<DtlsEvent>,
    server_errors: Vec<DtlsError>,
    /// Every datagram the client sent, in order, for replay and fixtures.
    client_sent: Vec<Vec<u8>>,
    drop_next_server_datagrams: usize,
}

impl Pair {
    fn new(profiles: Vec<SrtpProtectionProfile>) -> Pair {
        Self::with_expected(profiles, None)
    }

    fn with_expected(profiles: Vec<SrtpProtectionProfile>, expected: Option<Fingerprint>) -> Pair {
        let now = crate::test_time::origin();
        let client = Client::new(now, profiles);
        let expected = expected.unwrap_or(client.fingerprint);
        Pair {
            now,
            server: DtlsEndpoint::new_server(&server_certificate(), expected, now),
            client,
            server_events: Vec::new(),
            server_errors: Vec::new(),
            client_sent: Vec::new(),
            drop_next_server_datagrams: 0,
        }
    }

    fn server_receive(&mut self, datagram: &[u8]) {
        if let Err(error) = self.server.handle_datagram(self.now, datagram) {
            self.server_errors.push(error);
        }
    }

    /// One round: client datagrams to the server, server datagrams to the client.
    fn exchange(&mut self) -> usize {
        let mut moved = 0;
        for datagram in self.client.transmits() {
            self.client_sent.push(datagram.clone());
            self.server_receive(&datagram);
            moved += 1;
        }
        let mut buf = [0u8; DTLS_MTU];
        while let Some(len) = self.server.poll_transmit(&mut buf) {
            moved += 1;
            if self.drop_next_server_datagrams > 0 {
                self.drop_next_server_datagrams -= 1;
                continue;
            }
            self.client.receive(self.now, &buf[..len]);
        }
        self.server_events
            .extend(std::iter::from_fn(|| self.server.poll_event()));
        moved
    }

    /// Shuttles datagrams, jumping the clock to the next deadline when both sides are idle.
    fn drive(&mut self, max_rounds: usize) {
        for _ in 0..max_rounds {
            if self.exchange() > 0 {
                continue;
            }
            if self.client.completed && self.server.is_connected() {
                return;
            }
            let deadlines = [
                self.server.poll_timeout(),
                self.client.endpoint.poll_timeout(&addr(SERVER_ADDR)),
            ];
            let Some(next) = deadlines.into_iter().flatten().min() else {
                return;
            };
            self.now = next.max(self.now);
            self.server.handle_timeout(self.now);
            let _ = self
                .client
                .endpoint
                .handle_timeout(addr(SERVER_ADDR), self.now);
        }
    }

    fn server_keys(&self) -> Option<&SrtpKeyingMaterial> {
        self.server_events.iter().find_map(|e| match e {
            DtlsEvent::Connected(keys) => Some(keys),
            _ => None,
        })
    }

    fn assert_same_keys(&self, profile: SrtpProfile) {
        assert!(self.client.completed, "client did not complete");
        let ours = self.server_keys().expect("server emitted no keys");
        let theirs = self.client.keys();
        assert_eq!(ours.profile, profile);
        assert_eq!(theirs.profile, profile);
        // Our sending keys are the client's receiving keys and vice versa.
        assert_eq!(ours.local, theirs.remote);
        assert_eq!(ours.remote, theirs.local);
        assert_ne!(ours.local, ours.remote);
        assert!(self.server_errors.is_empty(), "{:?}", self.server_errors);
    }
}

#[test]
fn handshake_with_gcm_only_client_agrees_on_keys() {
    let mut pair = Pair::new(vec![SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm]);
    pair.drive(50);
    pair.assert_same_keys(SrtpProfile::AeadAes128Gcm);
}

#[test]
fn handshake_with_cm_only_client_agrees_on_keys() {
    let mut pair = Pair::new(vec![SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80]);
    pair.drive(50);
    pair.assert_same_keys(SrtpProfile::AesCm128HmacSha1_80);
}

#[test]
fn server_prefers_gcm_when_both_are_offered() {
    let mut pair = Pair::new(vec![
        SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
        SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
    ]);
    pair.drive(50);
    pair.assert_same_keys(SrtpProfile::AeadAes128Gcm);
}

#[test]
fn fingerprint_mismatch_fails_without_keys_and_ignores_further_input() {
    let wrong = Fingerprint::from_bytes([0xAB; 32]);
    let mut pair = Pair::with_expected(
        vec![SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm],
        Some(wrong),
    );
    pair.drive(50);
    assert_eq!(pair.server_errors, vec![DtlsError::FingerprintMismatch]);
    assert_eq!(
        pair.server_events,
        vec![DtlsEvent::Failed(DtlsError::FingerprintMismatch)]
    );
    assert!(!pair.server.is_connected());
    assert_eq!(pair.server.poll_timeout(), None);
    // Replaying the whole client side changes nothing and emits nothing.
    for datagram in pair.client_sent.clone() {
        assert_eq!(pair.server.handle_datagram(pair.now, &datagram), Ok(()));
    }
    pair.server
        .handle_timeout(pair.now + Duration::from_secs(5));
    assert_eq!(pair.server.poll_event(), None);
    assert_eq!(pair.server.poll_transmit(&mut [0u8; DTLS_MTU]), None);
}

#[test]
fn handshake_without_srtp_fails() {
    let mut pair = Pair::new(vec![]);
    pair.drive(50);
    assert!(pair.server_keys().is_none());
    assert!(
        pair.server_events
            .contains(&DtlsEvent::Failed(DtlsError::SrtpProfileUnsupported)),
        "{:?}",
        pair.server_events
    );
}

#[test]
fn garbage_truncated_and_replayed_datagrams_do_not_disturb_the_handshake() {
    let mut pair = Pair::new(vec![SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm]);
    let mut noise = ChaCha20Rng::seed_from_u64(7);
    for round in 0..50 {
        let client_datagrams = pair.client.transmits();
        for datagram in &client_datagrams {
            pair.client_sent.push(datagram.clone());
            // Before each real datagram: random bytes with a DTLS first byte, a truncated
            // copy, and every earlier client datagram again.
            let mut garbage = vec![0u8; 1 + (rand::RngCore::next_u32(&mut noise) % 300) as usize];
            rand::RngCore::fill_bytes(&mut noise, &mut garbage);
            garbage[0] = 20 + garbage[0] % 44;
            pair.server_receive(&garbage);
            pair.server_receive(&datagram[..datagram.len() / 2]);
            for old in pair.client_sent.clone() {
                pair.server_receive(&old);
            }
        }
        let _ = round;
        let mut buf = [0u8; DTLS_MTU];
        let mut moved = client_datagrams.len();
        while let Some(len) = pair.server.poll_transmit(&mut buf) {
            moved += 1;
            pair.client.receive(pair.now, &buf[..len]);
        }
        pair.server_events
            .extend(std::iter::from_fn(|| pair.server.poll_event()));
        if moved == 0 {
            if pair.client.completed && pair.server.is_connected() {
                break;
            }
            pair.drive(1);
        }
    }
    pair.assert_same_keys(SrtpProfile::AeadAes128Gcm);
    // Replays after the handshake leave the association up.
    for old in pair.client_sent.clone() {
        pair.server_receive(&old);
    }
    assert!(pair.server.is_connected());
    assert!(pair.server_errors.is_empty(), "{:?}", pair.server_errors);
}

#[test]
fn lost_server_flight_is_retransmitted_on_timeout() {
    let mut pair = Pair::new(vec![SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm]);
    // First round: ClientHello -> HelloVerifyRequest. Second: ClientHello with cookie ->
    // the server's certificate flight, which is lost entirely.
    pair.exchange();
    let started = pair.now;
    pair.drop_next_server_datagrams = usize::MAX;
    pair.exchange();
    pair.drop_next_server_datagrams = 0;
    let deadline = pair
        .server
        .poll_timeout()
        .expect("server armed a retransmit timer");
    assert!(deadline > started);
    pair.drive(50);
    pair.assert_same_keys(SrtpProfile::AeadAes128Gcm);
    assert!(
        pair.now > started,
        "only the timer could have recovered the flight"
    );
}

#[test]
fn silent_peer_times_out() {
    let client = Client::new(
        crate::test_time::origin(),
        vec![SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm],
    );
    let now = crate::test_time::origin();
    let mut server = DtlsEndpoint::new_server(&server_certificate(), client.fingerprint, now);
    let mut client = client;
    // Deliver the ClientHello with cookie, then let every server flight vanish.
    let mut t = now;
    for _ in 0..2 {
        for datagram in client.transmits() {
            server.handle_datagram(t, &datagram).unwrap();
        }
        let mut buf = [0u8; DTLS_MTU];
        while let Some(len) = server.poll_transmit(&mut buf) {
            client.receive(t, &buf[..len]);
        }
    }
    let mut buf = [0u8; DTLS_MTU];
    let mut failed = None;
    for _ in 0..100 {
        let Some(deadline) = server.poll_timeout() else {
            break;
        };
        t = deadline.max(t);
        server.handle_timeout(t);
        while server.poll_transmit(&mut buf).is_some() {}
        if let Some(DtlsEvent::Failed(error)) = server.poll_event() {
            failed = Some(error);
            break;
        }
    }
    assert_eq!(failed, Some(DtlsError::HandshakeTimeout));
}

/// Both ends run dimpl, which offers AEAD_AES_256_GCM first and picks it as a server: the
/// handshake connects with 32-byte keys, each side's sending keys being the other's
/// receiving keys, and SRTP protected by one side opens on the other.
#[test]
fn aes_256_gcm_between_two_of_our_endpoints_connects() {
    let now = crate::test_time::origin();
    let server_cert = server_certificate();
    let client_cert = DtlsCertificate::generate(&mut ChaCha20Rng::seed_from_u64(43)).unwrap();
    let mut server = DtlsEndpoint::new_server(&server_cert, client_cert.fingerprint(), now);
    let mut client = DtlsEndpoint::new_client(&client_cert, server_cert.fingerprint(), now);
    let mut buf = [0u8; DTLS_MTU];
    for _ in 0..20 {
        while let Some(len) = client.poll_transmit(&mut buf) {
            server.handle_datagram(now, &buf[..len]).unwrap();
        }
        while let Some(len) = server.poll_transmit(&mut buf) {
            client.handle_datagram(now, &buf[..len]).unwrap();
        }
    }
    let Some(DtlsEvent::Connected(server_keys)) = server.poll_event() else {
        panic!("server did not connect")
    };
    let Some(DtlsEvent::Connected(client_keys)) = client.poll_event() else {
        panic!("client did not connect")
    };
    assert_eq!(server_keys.profile, SrtpProfile::AeadAes256Gcm);
    assert_eq!(client_keys.profile, SrtpProfile::AeadAes256Gcm);
    assert_eq!(server_keys.local, client_keys.remote);
    assert_eq!(server_keys.remote, client_keys.local);
    assert_ne!(server_keys.local, server_keys.remote);
    // All 32 key bytes come from the exporter: none of the upper half stays zero-padded.
    assert_ne!(server_keys.local.key[16..], [0u8; 16]);
    // The salt is 12 bytes; the two padding bytes of the contract stay zero.
    assert_eq!(server_keys.local.salt[12..], [0, 0]);

    let mut sender = crate::srtp::SrtpSession::new(&client_keys).unwrap();
    let mut receiver = crate::srtp::SrtpSession::new(&server_keys).unwrap();
    let rtp = [0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 42, 1, 2, 3, 4];
    let mut packet = [0u8; 64];
    packet[..rtp.len()].copy_from_slice(&rtp);
    let len = sender.outbound.protect_rtp(&mut packet, rtp.len()).unwrap();
    let plain = receiver.inbound.unprotect_rtp(&mut packet[..len]).unwrap();
    assert_eq!(packet[..plain], rtp);
}

#[test]
fn handshake_with_aes_256_gcm_client_agrees_on_keys() {
    let mut pair = Pair::new(vec![SrtpProtectionProfile::Srtp_Aead_Aes_256_Gcm]);
    pair.drive(50);
    pair.assert_same_keys(SrtpProfile::AeadAes256Gcm);
}

/// What a browser offers: all three profiles; the server picks AES-256-GCM.
#[test]
fn server_prefers_aes_256_gcm_when_all_profiles_are_offered() {
    let mut pair = Pair::new(vec![
        SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
        SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
        SrtpProtectionProfile::Srtp_Aead_Aes_256_Gcm,
    ]);
    pair.drive(50);
    pair.assert_same_keys(SrtpProfile::AeadAes256Gcm);
}

/// Our client against an independent server that accepts only `server_profile`: the
/// handshake completes, so our offer includes that profile, and the keys we split from the
/// exporter equal the server's.
fn our_client_handshakes_with_an_independent_server(
    server_profile: SrtpProtectionProfile,
    expected: SrtpProfile,
) {
    let now = crate::test_time::origin();
    let provider = rtc_dtls::crypto_provider::default_provider().unwrap();
    let certificate =
        Certificate::generate_self_signed(vec!["server".to_owned()], provider.crypto()).unwrap();
    let server_fingerprint = Fingerprint::of_certificate_der(certificate.certificate[0].as_ref());
    let config = ConfigBuilder::default()
        .with_crypto_provider(provider)
        .with_certificates(vec![certificate])
        .with_client_auth(rtc_dtls::config::ClientAuthType::RequireAnyClientCert)
        .with_extended_master_secret(ExtendedMasterSecretType::Require)
        .with_srtp_protection_profiles(vec![server_profile])
        .build(false, None)
        .unwrap();
    let mut peer = Endpoint::new(
        addr(SERVER_ADDR),
        Default::default(),
        Some(Arc::new(config)),
    );

    let client_cert = DtlsCertificate::generate(&mut ChaCha20Rng::seed_from_u64(44)).unwrap();
    let mut ours = DtlsEndpoint::new_client(&client_cert, server_fingerprint, now);
    let mut buf = [0u8; DTLS_MTU];
    let mut peer_completed = false;
    for _ in 0..20 {
        while let Some(len) = ours.poll_transmit(&mut buf) {
            let events = peer
                .read(now, addr(CLIENT_ADDR), None, BytesMut::from(&buf[..len]))
                .unwrap();
            peer_completed |= events
                .iter()
                .any(|e| matches!(e, EndpointEvent::HandshakeComplete));
        }
        while let Some(t) = peer.poll_transmit() {
            ours.handle_datagram(now, &t.message).unwrap();
        }
    }
    assert!(peer_completed, "{expected:?}");
    let Some(DtlsEvent::Connected(keys)) = ours.poll_event() else {
        panic!("our client did not connect with {expected:?}")
    };
    assert_eq!(keys.profile, expected);
    let (key_len, salt_len) = (expected.master_key_len(), expected.master_salt_len());
    let state = peer.get_connection_state(addr(CLIENT_ADDR)).unwrap();
    let material = state
        .export_keying_material("EXTRACTOR-dtls_srtp", &[], 2 * (key_len + salt_len))
        .unwrap();
    let m = material.as_ref();
    // client_key | server_key | client_salt | server_salt: we are the client.
    let (keys_end, salts_end) = (2 * key_len, 2 * key_len + 2 * salt_len);
    assert_eq!(&keys.local.key[..key_len], &m[..key_len]);
    assert_eq!(&keys.remote.key[..key_len], &m[key_len..keys_end]);
    assert!(keys.local.key[key_len..].iter().all(|&b| b == 0));
    assert_eq!(
        &keys.local.salt[..salt_len],
        &m[keys_end..keys_end + salt_len]
    );
    assert_eq!(
        &keys.remote.salt[..salt_len],
        &m[keys_end + salt_len..salts_end]
    );
    assert_eq!(ours.role(), DtlsRole::Client);
}

#[test]
fn our_client_role_handshakes_with_an_independent_server() {
    our_client_handshakes_with_an_independent_server(
        SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
        SrtpProfile::AeadAes128Gcm,
    );
}

#[test]
fn our_client_offers_aes_256_gcm_to_an_independent_server() {
    our_client_handshakes_with_an_independent_server(
        SrtpProtectionProfile::Srtp_Aead_Aes_256_Gcm,
        SrtpProfile::AeadAes256Gcm,
    );
}

#[test]
fn our_client_offers_aes_cm_to_an_independent_server() {
    our_client_handshakes_with_an_independent_server(
        SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
        SrtpProfile::AesCm128HmacSha1_80,
    );
}

/// Writes the captured client datagrams as fuzz seeds: `SLUICE_WRITE_DTLS_SEEDS=dir`.
#[test]
fn capture_client_hello_seed() {
    let mut pair = Pair::new(vec![
        SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
        SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
    ]);
    pair.drive(50);
    pair.assert_same_keys(SrtpProfile::AeadAes128Gcm);
    let first = &pair.client_sent[0];
    assert_eq!(first[0], 22, "a handshake record");
    if let Ok(dir) = std::env::var("SLUICE_WRITE_DTLS_SEEDS") {
        for (index, datagram) in pair.client_sent.iter().enumerate() {
            std::fs::write(format!("{dir}/client_datagram_{index}.bin"), datagram).unwrap();
        }
    }
}

#[test]
fn close_notify_ends_the_association_in_both_directions() {
    // The client closes: we report Closed, stop timers and ignore what follows.
    let mut pair = Pair::new(vec![SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm]);
    pair.drive(50);
    pair.assert_same_keys(SrtpProfile::AeadAes128Gcm);
    let _ = pair.client.endpoint.stop(pair.now, addr(SERVER_ADDR));
    pair.exchange();
    assert_eq!(pair.server_events.last(), Some(&DtlsEvent::Closed));
    assert!(!pair.server.is_connected());
    assert_eq!(pair.server.poll_timeout(), None);

    // We close: a close_notify goes out and the client sees the peer leave.
    let mut pair = Pair::new(vec![SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm]);
    pair.drive(50);
    pair.server.close();
    assert_eq!(pair.server.poll_event(), Some(DtlsEvent::Closed));
    let mut buf = [0u8; DTLS_MTU];
    let len = pair.server.poll_transmit(&mut buf).expect("a close_notify");
    let events = pair
        .client
        .endpoint
        .read(
            pair.now,
            addr(SERVER_ADDR),
            None,
            BytesMut::from(&buf[..len]),
        )
        .unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, EndpointEvent::PeerClosed))
    );
}

#[test]
fn client_certificate_larger_than_a_datagram_is_reassembled_and_checked() {
    let names: Vec<String> = (0..150)
        .map(|i| format!("host-{i:03}.example.org"))
        .collect();
    let now = crate::test_time::origin();
    let client = Client::with_subject_names(
        now,
        vec![SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm],
        names,
    );
    let expected = client.fingerprint;
    let mut pair = Pair {
        now,
        server: DtlsEndpoint::new_server(&server_certificate(), expected, now),
        client,
        server_events: Vec::new(),
        server_errors: Vec::new(),
        client_sent: Vec::new(),
        drop_next_server_datagrams: 0,
    };
    pair.drive(50);
    pair.assert_same_keys(SrtpProfile::AeadAes128Gcm);
    let largest = pair.client_sent.iter().map(Vec::len).max().unwrap();
    let total: usize = pair.client_sent.iter().map(Vec::len).sum();
    assert!(
        total > 3 * DTLS_MTU,
        "certificate too small to span datagrams: {total}"
    );
    assert!(largest <= MAX_DATAGRAM_LEN);
}

#[test]
fn application_data_after_the_handshake_is_dropped_without_harm() {
    let mut pair = Pair::new(vec![SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm]);
    pair.drive(50);
    pair.assert_same_keys(SrtpProfile::AeadAes128Gcm);
    // A record larger than our own MTU, as a data channel might send.
    for size in [1, 600, 1400] {
        pair.client
            .endpoint
            .write(pair.now, addr(SERVER_ADDR), &vec![0x5a; size])
            .unwrap();
        pair.exchange();
    }
    assert!(pair.server.is_connected());
    assert!(pair.server_errors.is_empty(), "{:?}", pair.server_errors);
    assert_eq!(pair.server_events.len(), 1, "{:?}", pair.server_events);
}

/// A seeded lossy, reordering network: each datagram we send is lost with probability 1/4
/// (in bursts of at most two, so that the peers' finite retry budgets suffice) and each
/// round's datagrams arrive shuffled in both directions. Our retransmissions (of the
/// certificate flight on our timer, of the final flight when the client repeats its own)
/// must still bring the handshake home.
///
/// Only our direction loses datagrams: the rtc-dtls 0.21 client, when its certificate flight
/// is lost and our timer resends our previous flight first, drops its retransmission timer
/// and never repeats its flight, which no server can recover from.
#[test]
fn handshake_completes_over_a_lossy_reordering_network() {
    use rand::Rng;
    use rand::seq::SliceRandom;

    let mut lost_any = false;
    for seed in 0..16u64 {
        let mut net = ChaCha20Rng::seed_from_u64(seed);
        let mut pair = Pair::new(vec![SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm]);
        let mut burst = 0;
        for _ in 0..400 {
            let mut to_server = pair.client.transmits();
            pair.client_sent.extend(to_server.iter().cloned());
            let mut to_client = Vec::new();
            let mut buf = [0u8; DTLS_MTU];
            while let Some(len) = pair.server.poll_transmit(&mut buf) {
                to_client.push(buf[..len].to_vec());
            }
            to_server.shuffle(&mut net);
            to_client.shuffle(&mut net);
            let moved = to_server.len() + to_client.len();
            for datagram in to_server {
                pair.server_receive(&datagram);
            }
            for datagram in to_client {
                let lost = burst < 2 && net.random_ratio(1, 4);
                burst = if lost { burst + 1 } else { 0 };
                if !lost {
                    pair.client.receive(pair.now, &datagram);
                }
            }

            pair.server_events
                .extend(std::iter::from_fn(|| pair.server.poll_event()));
            if pair.client.completed && pair.server.is_connected() {
                break;
            }
            if moved == 0 {
                pair.drive(1);
            }
        }
        assert!(
            pair.server.is_connected(),
            "seed {seed}: {:?}",
            pair.server_events
        );
        // Three client datagrams is the loss-free handshake; more means a repeat was needed.
        lost_any |= pair.client_sent.len() > 3;
        pair.assert_same_keys(SrtpProfile::AeadAes128Gcm);
    }
    assert!(lost_any, "no seed needed a retransmission");
}

/// A well-formed plaintext DTLS 1.2 handshake record holding one fragment: what anyone who
/// can send from the peer's address can forge, since nothing is authenticated before
/// Finished.
fn forged_handshake_record(record_seq: u64, message_seq: u16, offset: u32, body: &[u8]) -> Vec<u8> {
    const CERTIFICATE: u8 = 11;
    const MESSAGE_LEN: u32 = 4000;
    let mut record = vec![22, 0xfe, 0xfd, 0, 0];
    record.extend_from_slice(&record_seq.to_be_bytes()[2..]);
    record.extend_from_slice(&(12 + body.len() as u16).to_be_bytes());
    record.push(CERTIFICATE);
    record.extend_from_slice(&MESSAGE_LEN.to_be_bytes()[1..]);
    record.extend_from_slice(&message_seq.to_be_bytes());
    record.extend_from_slice(&offset.to_be_bytes()[1..]);
    record.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    record.extend_from_slice(body);
    record
}

/// The forgeries of one round: fragments numbered beyond the handshake's last plaintext
/// message (each at its own offset, so none is a duplicate of another) and plaintext
/// application data. Before they were recognised, 30 of them filled the engine's receive
/// queue and the 31st failed the handshake with `QueueFull`.
fn forged_flood(noise: &mut ChaCha20Rng, record_seq: &mut u64) -> Vec<Vec<u8>> {
    let mut flood = Vec::new();
    for _ in 0..60 {
        *record_seq += 1;
        let message_seq = 8 + (rand::RngCore::next_u32(noise) % 1000) as u16;
        let offset = rand::RngCore::next_u32(noise) % 3900;
        let mut body = [0u8; 64];
        rand::RngCore::fill_bytes(noise, &mut body);
        flood.push(forged_handshake_record(
            *record_seq,
            message_seq,
            offset,
            &body,
        ));
    }
    for _ in 0..5 {
        *record_seq += 1;
        let mut record = forged_handshake_record(*record_seq, 2, 0, &[0x5a; 40]);
        record[0] = 23;
        flood.push(record);
    }
    flood
}

#[test]
fn a_flood_of_forged_handshake_records_is_dropped_and_the_handshake_completes() {
    let mut pair = Pair::new(vec![SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm]);
    let mut noise = ChaCha20Rng::seed_from_u64(14);
    let mut record_seq = 1000;
    let mut forged = 0;
    for _ in 0..50 {
        // Before each round's real datagrams, a flood from the peer's address.
        for datagram in forged_flood(&mut noise, &mut record_seq) {
            pair.server_receive(&datagram);
            forged += 1;
        }
        if pair.exchange() == 0 {
            if pair.client.completed && pair.server.is_connected() {
                break;
            }
            pair.drive(1);
        }
    }
    pair.assert_same_keys(SrtpProfile::AeadAes128Gcm);
    assert!(
        forged >= 3 * 65,
        "the flood ran through the handshake: {forged}"
    );
    assert_eq!(pair.server.dropped_datagrams(), forged);
}

#[test]
fn a_full_receive_queue_drops_the_datagram_instead_of_failing_the_handshake() {
    let mut pair = Pair::new(vec![SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm]);
    // ClientHello -> HelloVerifyRequest; the server now waits for the ClientHello with the
    // cookie (message_seq 1).
    pair.exchange();
    // Forged fragments of a later message of the same flight range are plausible, so they
    // reach the engine, which queues 30 datagrams and refuses the rest.
    for i in 0..40u32 {
        let datagram = forged_handshake_record(100 + u64::from(i), 3, i * 64, &[7; 64]);
        assert_eq!(pair.server.handle_datagram(pair.now, &datagram), Ok(()));
    }
    assert_eq!(pair.server.dropped_datagrams(), 10);
    assert_eq!(pair.server.poll_event(), None, "no failure");
    assert!(pair.server.poll_timeout().is_some(), "still handshaking");
}
