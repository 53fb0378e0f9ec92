//! The transport of one peer connection: its ICE agent, its DTLS-SRTP endpoint, the SRTP
//! contexts once keys are exported, the address media goes to, and the deadline by which it
//! must have connected.
//!
//! Sans-IO, with the contract of the rest of the media plane: feed it with
//! [`PeerTransport::handle_datagram`] (or the `handle_stun` / `handle_dtls` / `handle_srtp`
//! parts when the caller has already classified the datagram) and
//! [`PeerTransport::handle_timeout`], then drain [`PeerTransport::poll_output`] until it
//! returns [`Output::Timeout`]:
//!
//! ```
//! # use std::time::Instant;
//! # use media_plane::peer::{Output, PeerTransport, Received};
//! # fn drive(transport: &mut PeerTransport, now: Instant, source: std::net::SocketAddr,
//! #          datagram: &mut [u8], send: &mut dyn FnMut(std::net::SocketAddr, &[u8])) {
//! match transport.handle_datagram(now, source, datagram) {
//!     Received::Rtp(len) | Received::Rtcp(len) => { /* plaintext in datagram[..len] */ }
//!     Received::Handled | Received::Dropped(_) => {}
//! }
//! let mut buf = [0u8; 1500];
//! loop {
//!     match transport.poll_output(&mut buf) {
//!         Output::Transmit { destination, len } => send(destination, &buf[..len]),
//!         Output::Event(event) => { /* Connected, Ended(reason), ... */ }
//!         Output::Timeout(_next) => break,
//!     }
//! }
//! # }
//! ```
//!
//! Two ICE roles share it: the ICE-lite agent of a server session (it answers checks) and
//! the checking client of the load generator and of tests (it sends checks to the server's
//! candidates and keeps consent; see [`crate::ice_client`]).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use ice_lite::{BindingOutcome, DatagramKind, IceEvent, IceLiteAgent, StunMessage, classify};
use rtc_core::dtls::{DtlsCertificate, DtlsEndpoint, DtlsError, DtlsEvent, DtlsRole, Fingerprint};
use rtc_core::srtp::{SrtpError, SrtpSession};

use crate::ice_client::IceClient;

/// Events kept until polled; a transport whose owner never polls stays bounded.
const MAX_EVENTS: usize = 16;

/// STUN messages (responses, client checks) kept until polled.
const MAX_PENDING_STUN: usize = 8;

/// Why a peer connection ended, as the session's log line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndReason {
    /// Signaling closed it (the participant left, a WHIP or WHEP resource was deleted).
    Closed,
    /// The peer closed DTLS (close_notify).
    PeerClosed,
    /// ICE consent freshness expired: the peer stopped answering (RFC 7675).
    ConsentExpired,
    /// The DTLS handshake failed or its keys could not be used.
    DtlsFailed,
    /// The peer's DTLS certificate did not match the fingerprint in its SDP.
    FingerprintMismatch,
    /// DTLS had not completed by the setup deadline.
    NeverConnected,
    /// The publisher a WHEP player played left.
    PublisherLeft,
    /// The media plane shut down.
    Shutdown,
    /// Its offer was refused after the session was set up for it.
    OfferRefused,
}

impl EndReason {
    /// The reason as logs and metrics label it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::PeerClosed => "peer closed",
            Self::ConsentExpired => "consent expired",
            Self::DtlsFailed => "dtls failure",
            Self::FingerprintMismatch => "dtls fingerprint mismatch",
            Self::NeverConnected => "never connected",
            Self::PublisherLeft => "publisher left",
            Self::Shutdown => "shutdown",
            Self::OfferRefused => "offer refused",
        }
    }
}

/// What the transport reports to its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerEvent {
    /// An address passed an ICE check: its DTLS and media belong to this peer.
    AddressValidated(SocketAddr),
    /// Media and DTLS now go to this address (nomination, renomination or migration).
    RemoteChanged(SocketAddr),
    /// DTLS completed and SRTP keys are installed.
    Connected,
    /// The connection is over (consent expired, DTLS failed or closed, setup took too long);
    /// it takes no more input. Reported once.
    Ended(EndReason),
    /// A STUN request failed the agent's checks; at most a small error response went back.
    StunRefused,
}

/// What [`PeerTransport::poll_output`] has for the owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Send the first `len` bytes of the buffer given to `poll_output` to `destination`.
    Transmit {
        /// Where the datagram goes.
        destination: SocketAddr,
        /// Its length in the caller's buffer.
        len: usize,
    },
    /// Something happened.
    Event(PeerEvent),
    /// Nothing more for now: call [`PeerTransport::handle_timeout`] at this time (`None`:
    /// no deadline).
    Timeout(Option<Instant>),
}

/// What [`PeerTransport::handle_datagram`] made of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// STUN or DTLS, taken in; its consequences come out of `poll_output`.
    Handled,
    /// Authenticated RTP, unprotected in place: the plaintext is the first `len` bytes.
    Rtp(usize),
    /// Authenticated RTCP, unprotected in place: the plaintext is the first `len` bytes.
    Rtcp(usize),
    /// Not taken; the reason says why.
    Dropped(PeerDrop),
}

/// Why the transport did not take a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerDrop {
    /// Not STUN, DTLS, RTP or RTCP by its first byte.
    UnknownProtocol,
    /// A STUN message that did not parse.
    MalformedStun,
    /// DTLS or media from an address that passed no ICE check.
    UnvalidatedSource,
    /// Media before the DTLS handshake produced keys.
    NoKeysYet,
    /// SRTP or SRTCP that failed to unprotect (authentication, replay, ...).
    Srtp(SrtpError),
    /// The connection has ended.
    Ended,
}

/// The ICE side of a transport.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "the lite agent is what every server session holds, read per media packet; a box would add a pointer chase there"
)]
enum IceAgent {
    /// A server session: answers checks, never sends them.
    Lite(IceLiteAgent),
    /// A client: checks the server's candidates, keeps consent.
    Client(IceClient),
}

/// A STUN message waiting for `poll_output`.
#[derive(Debug)]
struct PendingStun {
    destination: SocketAddr,
    bytes: Vec<u8>,
}

/// The transport of one peer connection.
#[derive(Debug)]
pub struct PeerTransport {
    ice: IceAgent,
    dtls: Option<DtlsEndpoint>,
    srtp: Option<SrtpSession>,
    /// Where DTLS and media go: the nominated address, or the first validated one before.
    remote: Option<SocketAddr>,
    /// Until DTLS completes, the connection must have by then.
    setup_deadline: Option<Instant>,
    ended: bool,
    events: VecDeque<PeerEvent>,
    stun_out: VecDeque<PendingStun>,
    /// Emptied STUN buffers, for reuse.
    stun_spare: Vec<Vec<u8>>,
}

impl PeerTransport {
    /// A server-side transport answering checks with `agent`; it ends unless DTLS completes
    /// by `setup_deadline`.
    pub fn new_lite(agent: IceLiteAgent, setup_deadline: Instant) -> Self {
        Self::new(IceAgent::Lite(agent), Some(setup_deadline))
    }

    /// A client-side transport checking the server's candidates with `client`.
    pub fn new_client(client: IceClient) -> Self {
        Self::new(IceAgent::Client(client), None)
    }

    fn new(ice: IceAgent, setup_deadline: Option<Instant>) -> Self {
        PeerTransport {
            ice,
            dtls: None,
            srtp: None,
            remote: None,
            setup_deadline,
            ended: false,
            events: VecDeque::new(),
            stun_out: VecDeque::new(),
            stun_spare: Vec::new(),
        }
    }

    /// Starts DTLS-SRTP once the peer's fingerprint is known: as the `role` the negotiation
    /// chose. A client sends its first flight once ICE has given it an address.
    pub fn start_dtls(
        &mut self,
        now: Instant,
        certificate: &DtlsCertificate,
        remote_fingerprint: Fingerprint,
        role: DtlsRole,
    ) {
        self.dtls = Some(match role {
            DtlsRole::Client => DtlsEndpoint::new_client(certificate, remote_fingerprint, now),
            DtlsRole::Server => DtlsEndpoint::new_server(certificate, remote_fingerprint, now),
        });
    }

    /// Whether DTLS has started (the peer's fingerprint is known).
    pub fn has_dtls(&self) -> bool {
        self.dtls.is_some()
    }

    /// Whether SRTP keys are installed.
    pub fn is_connected(&self) -> bool {
        self.srtp.is_some()
    }

    /// Whether the connection has ended.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Where DTLS and media go, once ICE has chosen.
    pub fn remote(&self) -> Option<SocketAddr> {
        self.remote
    }

    /// Forgets the remote address (its TCP connection closed): nothing is sent until a check
    /// selects one again.
    pub fn clear_remote(&mut self) {
        self.remote = None;
    }

    /// The ICE-lite agent of a server-side transport.
    pub fn lite_agent(&self) -> Option<&IceLiteAgent> {
        match &self.ice {
            IceAgent::Lite(agent) => Some(agent),
            IceAgent::Client(_) => None,
        }
    }

    /// The ICE-lite agent, to restart it or give it the peer's credentials.
    pub fn lite_agent_mut(&mut self) -> Option<&mut IceLiteAgent> {
        match &mut self.ice {
            IceAgent::Lite(agent) => Some(agent),
            IceAgent::Client(_) => None,
        }
    }

    /// The SRTP contexts, once keys are installed: the owner protects what it sends with
    /// `outbound`.
    pub fn srtp_mut(&mut self) -> Option<&mut SrtpSession> {
        self.srtp.as_mut()
    }

    /// Takes the SRTP contexts out, for an owner that keeps them next to its forwarding
    /// tables; the transport still reports itself connected and keeps ICE and DTLS running.
    pub fn take_srtp(&mut self) -> Option<SrtpSession> {
        self.srtp.take().inspect(|_| self.setup_deadline = None)
    }

    /// DTLS datagrams the handshake has dropped (records DTLS 1.2 never sends before keys,
    /// or a full receive queue).
    pub fn dropped_dtls(&self) -> u64 {
        self.dtls
            .as_ref()
            .map_or(0, DtlsEndpoint::dropped_datagrams)
    }

    /// Classifies a datagram by its first byte (RFC 7983) and handles it.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        datagram: &mut [u8],
    ) -> Received {
        match classify(datagram) {
            DatagramKind::Stun => match StunMessage::parse(datagram) {
                Ok(message) => {
                    self.handle_stun(now, source, &message);
                    Received::Handled
                }
                Err(_) => Received::Dropped(PeerDrop::MalformedStun),
            },
            DatagramKind::Dtls => self.handle_dtls(now, source, datagram),
            DatagramKind::Rtp => self.handle_srtp(now, source, datagram, false),
            DatagramKind::Rtcp => self.handle_srtp(now, source, datagram, true),
            _ => Received::Dropped(PeerDrop::UnknownProtocol),
        }
    }

    /// Handles a parsed STUN message from `source`: a check answered (or refused) by the
    /// lite agent, or a client's response or incoming check.
    pub fn handle_stun(
        &mut self,
        now: Instant,
        source: SocketAddr,
        message: &StunMessage<'_>,
    ) -> BindingOutcome {
        if self.ended {
            return BindingOutcome::Ignored;
        }
        let mut buf = self.stun_spare.pop().unwrap_or_default();
        buf.resize(STUN_RESPONSE_CAPACITY, 0);
        let outcome = match &mut self.ice {
            IceAgent::Lite(agent) => {
                let outcome = agent.handle_binding_request(now, source, message, &mut buf);
                if agent.is_validated(source) {
                    self.push_event(PeerEvent::AddressValidated(source));
                    if self.remote.is_none() {
                        self.set_remote(source);
                    }
                }
                outcome
            }
            IceAgent::Client(client) => {
                let (outcome, selected) = client.handle_stun(now, source, message, &mut buf);
                if let Some(address) = selected {
                    self.push_event(PeerEvent::AddressValidated(address));
                    self.set_remote(address);
                }
                outcome
            }
        };
        if outcome.is_refused() {
            self.push_event(PeerEvent::StunRefused);
        }
        match outcome.response_len() {
            Some(len) => {
                buf.truncate(len);
                self.queue_stun(source, buf);
            }
            None => self.stun_spare.push(buf),
        }
        self.drain_ice_events();
        outcome
    }

    /// Feeds a DTLS datagram from `source`, which must be a validated address.
    pub fn handle_dtls(&mut self, now: Instant, source: SocketAddr, datagram: &[u8]) -> Received {
        if self.ended {
            return Received::Dropped(PeerDrop::Ended);
        }
        if !self.is_validated(source) {
            return Received::Dropped(PeerDrop::UnvalidatedSource);
        }
        let Some(dtls) = self.dtls.as_mut() else {
            return Received::Handled;
        };
        // A failure surfaces as an event below; the datagram itself needs no answer.
        let _ = dtls.handle_datagram(now, datagram);
        self.drain_dtls_events();
        Received::Handled
    }

    /// Unprotects SRTP (`rtcp`: SRTCP) from `source` in place. Authenticated media counts as
    /// consent like a check does (RFC 7675 allows it), so peers that check only while a path
    /// is idle are not cut off.
    pub fn handle_srtp(
        &mut self,
        now: Instant,
        source: SocketAddr,
        datagram: &mut [u8],
        rtcp: bool,
    ) -> Received {
        if self.ended {
            return Received::Dropped(PeerDrop::Ended);
        }
        let Some(srtp) = self.srtp.as_mut() else {
            return Received::Dropped(PeerDrop::NoKeysYet);
        };
        let unprotected = if rtcp {
            srtp.inbound.unprotect_rtcp(datagram)
        } else {
            srtp.inbound.unprotect_rtp(datagram)
        };
        let len = match unprotected {
            Ok(len) => len,
            Err(e) => return Received::Dropped(PeerDrop::Srtp(e)),
        };
        match &mut self.ice {
            IceAgent::Lite(agent) => agent.handle_authenticated_media(now, source),
            IceAgent::Client(_) => {}
        }
        if rtcp {
            Received::Rtcp(len)
        } else {
            Received::Rtp(len)
        }
    }

    /// Closes DTLS (close_notify goes out with the next `poll_output`) and ends the
    /// connection for `reason`, reported as an event.
    pub fn close(&mut self, reason: EndReason) {
        if let Some(dtls) = self.dtls.as_mut() {
            dtls.close();
        }
        self.end(reason);
    }

    /// When [`PeerTransport::handle_timeout`] must next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.ended {
            return None;
        }
        let ice = match &self.ice {
            IceAgent::Lite(agent) => agent.poll_timeout(),
            IceAgent::Client(client) => Some(client.poll_timeout()),
        };
        let setup = self.setup_deadline.filter(|_| self.srtp.is_none());
        [
            ice,
            self.dtls.as_ref().and_then(DtlsEndpoint::poll_timeout),
            setup,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Advances the timers that are due: the setup deadline, consent (or the client's
    /// checks), DTLS retransmission.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.ended {
            return;
        }
        if self.srtp.is_none() && self.setup_deadline.is_some_and(|at| at <= now) {
            self.end(EndReason::NeverConnected);
            return;
        }
        match &mut self.ice {
            IceAgent::Lite(agent) => {
                if agent.poll_timeout().is_some_and(|at| at <= now) {
                    agent.handle_timeout(now);
                }
            }
            IceAgent::Client(client) => {
                if client.poll_timeout() <= now {
                    let mut checks = std::mem::take(&mut self.stun_out);
                    client.handle_timeout(now, |destination, bytes| {
                        if checks.len() < MAX_PENDING_STUN {
                            let mut buf = self.stun_spare.pop().unwrap_or_default();
                            buf.clear();
                            buf.extend_from_slice(bytes);
                            checks.push_back(PendingStun {
                                destination,
                                bytes: buf,
                            });
                        }
                    });
                    self.stun_out = checks;
                }
            }
        }
        self.drain_ice_events();
        if let Some(dtls) = self.dtls.as_mut()
            && dtls.poll_timeout().is_some_and(|at| at <= now)
        {
            dtls.handle_timeout(now);
            self.drain_dtls_events();
        }
    }

    /// The next datagram to send (written into `buf`), event, or the next deadline.
    pub fn poll_output(&mut self, buf: &mut [u8]) -> Output {
        if let Some(pending) = self.stun_out.pop_front() {
            let len = pending.bytes.len().min(buf.len());
            if let (Some(to), Some(from)) = (buf.get_mut(..len), pending.bytes.get(..len)) {
                to.copy_from_slice(from);
            }
            let destination = pending.destination;
            self.stun_spare.push(pending.bytes);
            return Output::Transmit { destination, len };
        }
        // As the DTLS client, the first flight waits for an address to send it to.
        if let (Some(destination), Some(dtls)) = (self.remote, self.dtls.as_mut())
            && let Some(len) = dtls.poll_transmit(buf)
        {
            return Output::Transmit { destination, len };
        }
        if let Some(event) = self.events.pop_front() {
            return Output::Event(event);
        }
        Output::Timeout(self.poll_timeout())
    }

    fn is_validated(&self, source: SocketAddr) -> bool {
        match &self.ice {
            IceAgent::Lite(agent) => agent.is_validated(source),
            IceAgent::Client(_) => self.remote == Some(source),
        }
    }

    fn set_remote(&mut self, address: SocketAddr) {
        if self.remote != Some(address) {
            self.remote = Some(address);
            self.push_event(PeerEvent::RemoteChanged(address));
        }
    }

    fn queue_stun(&mut self, destination: SocketAddr, bytes: Vec<u8>) {
        if self.stun_out.len() < MAX_PENDING_STUN {
            self.stun_out.push_back(PendingStun { destination, bytes });
        }
    }

    fn drain_ice_events(&mut self) {
        loop {
            let event = match &mut self.ice {
                IceAgent::Lite(agent) => agent.poll_event(),
                IceAgent::Client(_) => None,
            };
            match event {
                None => return,
                Some(IceEvent::Nominated(address)) => self.set_remote(address),
                Some(IceEvent::SelectedAddressChanged { to, .. }) => self.set_remote(to),
                Some(IceEvent::ConsentExpired) => self.end(EndReason::ConsentExpired),
                // Newer events (the enum is non-exhaustive) change nothing here yet.
                Some(_) => {}
            }
        }
    }

    fn drain_dtls_events(&mut self) {
        while let Some(event) = self.dtls.as_mut().and_then(DtlsEndpoint::poll_event) {
            match event {
                DtlsEvent::Connected(keys) => match SrtpSession::new(&keys) {
                    Ok(srtp) => {
                        self.srtp = Some(srtp);
                        self.setup_deadline = None;
                        self.push_event(PeerEvent::Connected);
                    }
                    Err(_) => self.end(EndReason::DtlsFailed),
                },
                DtlsEvent::Failed(DtlsError::FingerprintMismatch) => {
                    self.end(EndReason::FingerprintMismatch);
                }
                DtlsEvent::Failed(_) => self.end(EndReason::DtlsFailed),
                DtlsEvent::Closed => self.end(EndReason::PeerClosed),
                // Newer events (the enum is non-exhaustive) neither connect nor fail the
                // peer; not logged, as one might carry key material.
                _ => {}
            }
        }
    }

    fn end(&mut self, reason: EndReason) {
        if !self.ended {
            self.ended = true;
            self.push_event(PeerEvent::Ended(reason));
        }
    }

    fn push_event(&mut self, event: PeerEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }
}

/// Room for a STUN response: a success response is a few dozen bytes, an error response
/// with its reason phrase a few more.
const STUN_RESPONSE_CAPACITY: usize = 256;
