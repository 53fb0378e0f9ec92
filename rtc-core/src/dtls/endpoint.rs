//! One DTLS-SRTP association, driven sans-IO: datagrams and time in, datagrams, events and
//! the next deadline out. The DTLS 1.2 state machine is `dimpl`'s; this file adds what
//! WebRTC needs around it: the peer certificate must match the SDP fingerprint before any
//! key is released, and the exported keying material is split into send and receive keys
//! for our role (RFC 5764 section 4.2).

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crate::keying::{SrtpKeyingMaterial, SrtpMasterKey, SrtpProfile};

use super::{DtlsCertificate, DtlsError, Fingerprint};

/// Largest datagram the endpoint sends, and the smallest buffer [`DtlsEndpoint::poll_transmit`]
/// needs. It leaves room for IP, UDP and TURN headers under a 1280-byte IPv6 path.
pub const DTLS_MTU: usize = 1200;

/// Longest datagram accepted. Handshake datagrams stay under the path MTU; refusing larger
/// ones bounds how big a peer certificate can be reassembled (see `SCRATCH_LEN`).
pub const MAX_DATAGRAM_LEN: usize = 1500;

/// Datagrams the engine buffers while reassembling a flight.
const MAX_QUEUED_DATAGRAMS: usize = 30;

/// The highest message_seq a plaintext handshake message can carry in a DTLS 1.2 handshake:
/// a server with the cookie exchange numbers HelloVerifyRequest 0 and ServerHello to
/// ServerHelloDone 1 to 5 (a NewSessionTicket would be 6), a client ClientHello 0 and 1 and
/// Certificate to CertificateVerify 2 to 4; Finished is encrypted. One to spare.
const MAX_PLAINTEXT_HANDSHAKE_SEQ: u16 = 7;

/// The engine copies the peer's certificate into the poll buffer and cannot shrink it, so
/// the buffer must hold the largest certificate that fits in the queued datagrams.
const SCRATCH_LEN: usize = MAX_QUEUED_DATAGRAMS * MAX_DATAGRAM_LEN;

/// Which side of the DTLS handshake this endpoint plays (SDP `a=setup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtlsRole {
    /// Waits for the ClientHello (`a=setup:passive`, what an SFU answers to browsers).
    Server,
    /// Sends the ClientHello (`a=setup:active`).
    Client,
}

/// What the endpoint reports to its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DtlsEvent {
    /// The handshake completed and the peer matched the expected fingerprint.
    Connected(SrtpKeyingMaterial),
    /// The association ended in an orderly way (close_notify sent or received).
    Closed,
    /// The handshake failed; the endpoint ignores all further input.
    Failed(DtlsError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshaking,
    Connected,
    Closed,
    Failed(DtlsError),
}

/// A DTLS-SRTP endpoint for one peer.
///
/// Run loop: after every [`handle_datagram`](Self::handle_datagram) or
/// [`handle_timeout`](Self::handle_timeout), send what
/// [`poll_transmit`](Self::poll_transmit) yields until it returns `None`, then take
/// [`poll_event`](Self::poll_event)s and arm a timer for [`poll_timeout`](Self::poll_timeout).
///
/// ```no_run
/// use std::time::Instant;
/// use rtc_core::dtls::{DTLS_MTU, DtlsCertificate, DtlsEndpoint, DtlsEvent, Fingerprint};
///
/// fn on_datagram(endpoint: &mut DtlsEndpoint, now: Instant, datagram: &[u8], send: impl Fn(&[u8])) {
///     // An error is also queued as DtlsEvent::Failed, handled below.
///     let _ = endpoint.handle_datagram(now, datagram);
///     let mut buf = [0u8; DTLS_MTU];
///     while let Some(len) = endpoint.poll_transmit(&mut buf) {
///         send(&buf[..len]);
///     }
///     while let Some(event) = endpoint.poll_event() {
///         match event {
///             DtlsEvent::Connected(keys) => { /* set up SRTP with `keys` */ let _ = keys; }
///             DtlsEvent::Closed | DtlsEvent::Failed(_) => { /* tear the session down */ }
///             _ => { /* a newer event: log it */ }
///         }
///     }
///     let _wake_at = endpoint.poll_timeout(); // then call handle_timeout(wake_at)
/// }
///
/// fn start(cert: &DtlsCertificate, sdp_fingerprint: &str, now: Instant) -> Option<DtlsEndpoint> {
///     let remote: Fingerprint = sdp_fingerprint.parse().ok()?;
///     Some(DtlsEndpoint::new_server(cert, remote, now))
/// }
/// ```
///
/// Randomness: dimpl draws the handshake random, the cookie secret, record nonces and
/// retransmission jitter from `rand`'s thread-local CSPRNG, and ephemeral ECDHE keys from
/// aws-lc-rs. It cannot take an injected generator (its only hook is a 64-bit seed, too
/// little entropy for a cookie secret), so this is the documented exception to rtc-core's
/// rule that entropy is handed in.
pub struct DtlsEndpoint {
    engine: dimpl::Dtls,
    role: DtlsRole,
    expected_remote: Fingerprint,
    state: State,
    peer_verified: bool,
    /// The engine reported the handshake complete; keys must have arrived with it.
    engine_connected: bool,
    /// Keys exported by the engine, held until the peer certificate check is settled.
    pending_keys: Option<SrtpKeyingMaterial>,
    /// One datagram the engine has produced but the caller has not taken yet.
    held_datagram_len: Option<usize>,
    scratch: Vec<u8>,
    events: VecDeque<DtlsEvent>,
    next_timeout: Option<Instant>,
    /// Datagrams dropped because they could not be part of the handshake or found the
    /// engine's receive queue full.
    dropped: u64,
}

impl std::fmt::Debug for DtlsEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsEndpoint")
            .field("role", &self.role)
            .field("state", &self.state)
            .field("expected_remote", &self.expected_remote)
            .finish_non_exhaustive()
    }
}

impl DtlsEndpoint {
    /// A server endpoint that will accept only a peer whose certificate hashes to
    /// `expected_remote` (the fingerprint from the peer's SDP).
    pub fn new_server(cert: &DtlsCertificate, expected_remote: Fingerprint, now: Instant) -> Self {
        Self::new(DtlsRole::Server, cert, expected_remote, now, true)
    }

    /// A server that skips the cookie exchange, so a fuzzer's ClientHello reaches the
    /// certificate flight and its later flights reach the certificate parser.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn new_server_without_cookie(
        cert: &DtlsCertificate,
        expected_remote: Fingerprint,
        now: Instant,
    ) -> Self {
        Self::new(DtlsRole::Server, cert, expected_remote, now, false)
    }

    /// A client endpoint; its ClientHello is ready in [`poll_transmit`](Self::poll_transmit)
    /// right away.
    pub fn new_client(cert: &DtlsCertificate, expected_remote: Fingerprint, now: Instant) -> Self {
        Self::new(DtlsRole::Client, cert, expected_remote, now, true)
    }

    fn new(
        role: DtlsRole,
        cert: &DtlsCertificate,
        expected_remote: Fingerprint,
        now: Instant,
        use_server_cookie: bool,
    ) -> Self {
        let config = engine_config(use_server_cookie);
        #[expect(
            clippy::disallowed_methods,
            reason = "the documented exception (see the type's doc and clippy.toml): the DTLS \
                      engine draws its handshake and cookie secrets from the OS"
        )]
        let engine = dimpl::Dtls::new_12(config, cert.engine_form.clone(), now);
        let mut endpoint = DtlsEndpoint {
            engine,
            role,
            expected_remote,
            state: State::Handshaking,
            peer_verified: false,
            engine_connected: false,
            pending_keys: None,
            held_datagram_len: None,
            scratch: vec![0; SCRATCH_LEN],
            events: VecDeque::with_capacity(2),
            next_timeout: None,
            dropped: 0,
        };
        if role == DtlsRole::Client {
            endpoint.engine.set_active(true);
        }
        // The engine takes the time of its handshake random and first flight from here.
        if let Err(error) = endpoint.engine.handle_timeout(now) {
            endpoint.fail(map_engine_error(&error));
        }
        endpoint.pump();
        endpoint
    }

    /// Our role in the handshake.
    pub fn role(&self) -> DtlsRole {
        self.role
    }

    /// True once the handshake has completed and keys were released.
    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// Datagrams dropped without harm to the association: plaintext records that cannot
    /// belong to a DTLS 1.2 handshake, and datagrams that arrived while the engine's receive
    /// queue was full (see [`handle_datagram`](Self::handle_datagram)).
    pub fn dropped_datagrams(&self) -> u64 {
        self.dropped
    }

    /// Feeds one received DTLS datagram (first byte 20..=63 per RFC 7983).
    ///
    /// Malformed, replayed and out-of-window records, and datagrams longer than
    /// [`MAX_DATAGRAM_LEN`], are dropped without error. So is a datagram that finds the
    /// engine's receive queue full, and one with a plaintext record no DTLS 1.2 handshake
    /// contains (a handshake message numbered beyond the last, or unencrypted application
    /// data), which would otherwise hold a queue slot for the rest of the handshake:
    /// handshake records are unauthenticated until Finished, so anyone who can send from
    /// the peer's address can send them, and a full queue must not end the handshake. Those
    /// two are counted in [`dropped_datagrams`](Self::dropped_datagrams).
    ///
    /// An error means the association failed (the same reason is also queued as
    /// [`DtlsEvent::Failed`]); after that, and after close, input is ignored.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) -> Result<(), DtlsError> {
        if !self.accepts_input() {
            return Ok(());
        }
        if datagram.len() > MAX_DATAGRAM_LEN {
            return Ok(());
        }
        if !could_be_handshake(datagram) {
            self.dropped += 1;
            return Ok(());
        }
        let result = self
            .engine
            .handle_timeout(now)
            .and_then(|()| self.engine.handle_packet(datagram));
        match result {
            Ok(()) => {}
            // The engine refuses the datagram before it changes any state (dimpl 0.9 checks
            // the queue's length first and recycles the buffer), so dropping it is safe.
            Err(dimpl::Error::ReceiveQueueFull) => self.dropped += 1,
            Err(error) => self.fail(map_engine_error(&error)),
        }
        self.pump();
        match self.state {
            State::Failed(error) => Err(error),
            _ => Ok(()),
        }
    }

    /// Advances time: retransmits a lost flight or gives up on a dead handshake.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.accepts_input() {
            return;
        }
        if let Err(error) = self.engine.handle_timeout(now) {
            self.fail(map_engine_error(&error));
        }
        self.pump();
    }

    /// Starts an orderly shutdown: a close_notify goes out through
    /// [`poll_transmit`](Self::poll_transmit) and [`DtlsEvent::Closed`] is queued.
    pub fn close(&mut self) {
        if !self.accepts_input() {
            return;
        }
        // Closing never fails in a way that matters: either way nothing more is exchanged.
        let _ = self.engine.close();
        self.enter_closed();
        self.pump();
    }

    /// Writes the next datagram to send into `buf` and returns its length.
    ///
    /// `buf` should be at least [`DTLS_MTU`] long; a datagram that does not fit stays queued.
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<usize> {
        let len = self.held_datagram_len?;
        let (datagram, out) = (self.scratch.get(..len)?, buf.get_mut(..len)?);
        out.copy_from_slice(datagram);
        self.held_datagram_len = None;
        self.pump();
        Some(len)
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<DtlsEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next; `None` once the
    /// association is over.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Handshaking | State::Connected => self.next_timeout,
            State::Closed | State::Failed(_) => None,
        }
    }

    fn accepts_input(&self) -> bool {
        matches!(self.state, State::Handshaking | State::Connected)
    }

    /// Drains the engine's outputs until it yields a datagram (held for the caller) or its
    /// next deadline, settling certificate checks and keys on the way.
    fn pump(&mut self) {
        // After the handshake the engine emits no peer certificate any more (renegotiation is
        // refused); what remains are records from one accepted datagram at most.
        if self.state == State::Connected
            && self.held_datagram_len.is_none()
            && self.scratch.len() > MAX_DATAGRAM_LEN
        {
            self.scratch.truncate(MAX_DATAGRAM_LEN);
            self.scratch.shrink_to_fit();
        }
        let mut drained = false;
        while self.held_datagram_len.is_none() && !matches!(self.state, State::Failed(_)) {
            match self.engine.poll_output(&mut self.scratch) {
                dimpl::Output::Packet(datagram) => self.held_datagram_len = Some(datagram.len()),
                dimpl::Output::PeerCert(der) => {
                    if Fingerprint::of_certificate_der(der) == self.expected_remote {
                        self.peer_verified = true;
                    } else {
                        self.fail(DtlsError::FingerprintMismatch);
                    }
                }
                dimpl::Output::KeyingMaterial(material, profile) => {
                    match split_keying_material(&material, profile, self.role) {
                        Ok(keys) => self.pending_keys = Some(keys),
                        Err(error) => self.fail(error),
                    }
                }
                dimpl::Output::Connected => self.engine_connected = true,
                dimpl::Output::CloseNotify => self.enter_closed(),
                dimpl::Output::Timeout(deadline) => {
                    self.next_timeout = Some(deadline);
                    drained = true;
                    break;
                }
                // Nothing larger than the scratch buffer exists by construction; stop rather
                // than spin if that ever changes.
                dimpl::Output::BufferTooSmall { .. } => {
                    self.fail(DtlsError::InternalBufferTooSmall);
                }
                // Data channels run over SCTP elsewhere; stray application data is dropped.
                dimpl::Output::ApplicationData(_) => {}
                _ => {}
            }
        }
        self.release_keys(drained);
    }

    /// Keys go out only after the peer proved it holds the certificate from the SDP.
    /// `drained`: the engine has no output left, so keys that have not come never will.
    fn release_keys(&mut self, drained: bool) {
        if self.state != State::Handshaking {
            return;
        }
        let Some(pending) = self.pending_keys.take() else {
            if self.engine_connected && drained {
                // The peer left out use_srtp: a DTLS session without SRTP is useless here.
                self.fail(DtlsError::SrtpProfileUnsupported);
            }
            return;
        };
        if !self.peer_verified {
            // The engine requires a client certificate, so this only happens if it changes.
            self.fail(DtlsError::PeerCertificateMissing);
            return;
        }
        self.state = State::Connected;
        self.events.push_back(DtlsEvent::Connected(pending));
    }

    fn enter_closed(&mut self) {
        if self.accepts_input() {
            self.state = State::Closed;
            self.pending_keys = None;
            self.events.push_back(DtlsEvent::Closed);
        }
    }

    fn fail(&mut self, error: DtlsError) {
        if matches!(self.state, State::Failed(_)) {
            return;
        }
        self.state = State::Failed(error);
        self.pending_keys = None;
        self.held_datagram_len = None;
        self.next_timeout = None;
        self.events.push_back(DtlsEvent::Failed(error));
    }
}

/// The engine configuration, built once per process for each cookie setting: building one
/// runs the crypto provider's self-checks (about 11 M instructions), which would otherwise
/// be paid by every session. A configuration holds settings only; secrets such as the cookie
/// key live in each engine.
fn engine_config(use_server_cookie: bool) -> Arc<dimpl::Config> {
    static WITH_COOKIE: OnceLock<Arc<dimpl::Config>> = OnceLock::new();
    static WITHOUT_COOKIE: OnceLock<Arc<dimpl::Config>> = OnceLock::new();
    let cell = if use_server_cookie {
        &WITH_COOKIE
    } else {
        &WITHOUT_COOKIE
    };
    Arc::clone(cell.get_or_init(|| build_engine_config(use_server_cookie)))
}

fn build_engine_config(use_server_cookie: bool) -> Arc<dimpl::Config> {
    let config = dimpl::Config::builder()
        .mtu(DTLS_MTU)
        .max_queue_rx(MAX_QUEUED_DATAGRAMS)
        // Both directions must present a certificate: it is what the fingerprint pins.
        .require_client_certificate(true)
        // Cookie exchange keeps a spoofed ClientHello from drawing a certificate flight.
        .use_server_cookie(use_server_cookie)
        .build();
    match config {
        Ok(config) => Arc::new(config),
        // The builder only fails on inconsistent settings, and ours are fixed.
        Err(_) => Arc::new(dimpl::Config::default()),
    }
}

/// False when `datagram` holds a plaintext (epoch 0) record that no DTLS 1.2 handshake
/// sends: a handshake message whose message_seq is beyond [`MAX_PLAINTEXT_HANDSHAKE_SEQ`],
/// or application data. What it cannot parse is left to the engine, which drops it.
fn could_be_handshake(datagram: &[u8]) -> bool {
    // Record header: type (1), version (2), epoch (2), sequence number (6), length (2).
    const RECORD_HEADER: usize = 13;
    // Handshake header: type (1), length (3), message_seq (2), offset (3), fragment length (3).
    const HANDSHAKE_HEADER: usize = 12;
    const CONTENT_HANDSHAKE: u8 = 22;
    const CONTENT_APPLICATION_DATA: u8 = 23;
    let be = |bytes: Option<&[u8]>| {
        bytes.map_or(0, |b| {
            b.iter().fold(0usize, |n, &byte| n << 8 | usize::from(byte))
        })
    };
    let mut rest = datagram;
    while let Some((header, after)) = rest.split_at_checked(RECORD_HEADER) {
        let Some((mut fragment, next)) = after.split_at_checked(be(header.get(11..13))) else {
            return true;
        };
        rest = next;
        if be(header.get(3..5)) != 0 {
            continue;
        }
        match header.first() {
            Some(&CONTENT_APPLICATION_DATA) => return false,
            Some(&CONTENT_HANDSHAKE) => {
                // A record may carry several handshake fragments back to back.
                while let Some((handshake, body)) = fragment.split_at_checked(HANDSHAKE_HEADER) {
                    if be(handshake.get(4..6)) > usize::from(MAX_PLAINTEXT_HANDSHAKE_SEQ) {
                        return false;
                    }
                    let Some((_, following)) = body.split_at_checked(be(handshake.get(9..12)))
                    else {
                        break;
                    };
                    fragment = following;
                }
            }
            _ => {}
        }
    }
    true
}

/// Splits `client_key | server_key | client_salt | server_salt` (RFC 5764 section 4.2) into
/// the keys we send with and the keys we receive with.
fn split_keying_material(
    material: &[u8],
    profile: dimpl::SrtpProfile,
    role: DtlsRole,
) -> Result<SrtpKeyingMaterial, DtlsError> {
    let profile = match profile {
        dimpl::SrtpProfile::AEAD_AES_256_GCM => SrtpProfile::AeadAes256Gcm,
        dimpl::SrtpProfile::AEAD_AES_128_GCM => SrtpProfile::AeadAes128Gcm,
        dimpl::SrtpProfile::AES128_CM_SHA1_80 => SrtpProfile::AesCm128HmacSha1_80,
        _ => return Err(DtlsError::SrtpProfileUnsupported),
    };
    let key_len = profile.master_key_len();
    let salt_len = profile.master_salt_len();
    if material.len() != 2 * (key_len + salt_len) {
        return Err(DtlsError::KeyingMaterialLength);
    }
    let (client_key, rest) = material
        .split_at_checked(key_len)
        .ok_or(DtlsError::KeyingMaterialLength)?;
    let (server_key, rest) = rest
        .split_at_checked(key_len)
        .ok_or(DtlsError::KeyingMaterialLength)?;
    let (client_salt, server_salt) = rest
        .split_at_checked(salt_len)
        .ok_or(DtlsError::KeyingMaterialLength)?;
    let client = master_key(client_key, client_salt)?;
    let server = master_key(server_key, server_salt)?;
    let (local, remote) = match role {
        DtlsRole::Server => (server, client),
        DtlsRole::Client => (client, server),
    };
    Ok(SrtpKeyingMaterial {
        profile,
        local,
        remote,
    })
}

/// Copies one direction's key and salt into the fixed-size contract fields; the bytes past
/// the profile's lengths stay zero.
fn master_key(key: &[u8], salt: &[u8]) -> Result<SrtpMasterKey, DtlsError> {
    let mut master = SrtpMasterKey {
        key: [0; 32],
        salt: [0; 14],
    };
    master
        .key
        .get_mut(..key.len())
        .ok_or(DtlsError::KeyingMaterialLength)?
        .copy_from_slice(key);
    master
        .salt
        .get_mut(..salt.len())
        .ok_or(DtlsError::KeyingMaterialLength)?
        .copy_from_slice(salt);
    Ok(master)
}

/// Reduces the engine's (allocating, non-`Copy`) error to the reason the owner can act on.
fn map_engine_error(error: &dimpl::Error) -> DtlsError {
    match error {
        dimpl::Error::Timeout(_) => DtlsError::HandshakeTimeout,
        dimpl::Error::CertificateError(_) => DtlsError::PeerCertificateInvalid,
        dimpl::Error::SecurityError(_) => DtlsError::SecurityPolicy,
        dimpl::Error::CryptoError(_) => DtlsError::Crypto,
        dimpl::Error::ReceiveQueueFull
        | dimpl::Error::TransmitQueueFull
        | dimpl::Error::TransmitHistoryFull => DtlsError::QueueFull,
        dimpl::Error::ConnectionClosed => DtlsError::Closed,
        _ => DtlsError::Protocol,
    }
}
